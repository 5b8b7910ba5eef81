"""A seeded paired bootstrap: the difference between two models with a confidence interval."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import attrs

from finetune_web.errors import ConfigError

__all__ = ["BootstrapInterval", "paired_bootstrap"]


@attrs.frozen(kw_only=True)
class BootstrapInterval:
    """The observed difference (tuned - base) and its percentile bootstrap interval.

    Attributes:
        difference: the difference on the examples as they are.
        low: the lower bound of the interval.
        high: the upper bound.
        confidence: the interval's level (0.95 = 95%).
        n_pairs: how many examples both models could be scored on.
        n_resamples: how many bootstrap resamples were drawn.
        seed: the seed of the resampling.
    """

    difference: float
    low: float
    high: float
    confidence: float
    n_pairs: int
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0: the difference is unlikely to be noise."""
        return self.low > 0.0 or self.high < 0.0


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile of sorted values, interpolating linearly (numpy's default)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    if fraction == 0.0 or ordered[below] == ordered[above]:
        return ordered[below]
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def paired_bootstrap(
    base: Sequence[float | None],
    tuned: Sequence[float | None],
    *,
    seed: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    statistic: Callable[[Sequence[int]], float] | None = None,
) -> BootstrapInterval:
    """Resample examples with replacement, keeping pairs together, and bound the difference.

    Each resample draws as many examples as there are pairs (the same draw for
    both models) and computes the difference of the statistic; the interval
    holds the central ``confidence`` share of those differences.  Pairs where
    either score is ``None`` (not scorable) are left out.  The same inputs and
    seed give the same interval.

    Args:
        base: per-example scores of the base model.
        tuned: per-example scores of the tuned model, in the same order.
        seed: seeds the resampling (a private ``random.Random``).
        n_resamples: how many resamples to draw.
        confidence: the interval's level, between 0 and 1.
        statistic: the difference (tuned - base) for a resample given as
            positions into ``base``/``tuned`` (repeats allowed); the default is
            the mean of the per-example differences.  Corpus metrics (BLEU)
            pass one that recomputes both corpus scores.

    Returns:
        The observed difference and its interval.

    Raises:
        ConfigError: the sequences differ in length, or the settings are out of range.
    """
    if len(base) != len(tuned):
        raise ConfigError(
            f"paired scores differ in length ({len(base)} vs {len(tuned)}): both models must "
            "be scored on exactly the same examples"
        )
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ConfigError(
            f"n_resamples must be >= 1 and confidence in (0, 1), not {n_resamples}, {confidence}"
        )
    gaps = {
        i: t - b
        for i, (b, t) in enumerate(zip(base, tuned, strict=True))
        if b is not None and t is not None
    }
    pairs = list(gaps)
    if statistic is None:

        def statistic(indices: Sequence[int]) -> float:
            return math.fsum(gaps[i] for i in indices) / len(indices)

    if not pairs:
        return BootstrapInterval(
            difference=0.0,
            low=0.0,
            high=0.0,
            confidence=confidence,
            n_pairs=0,
            n_resamples=n_resamples,
            seed=seed,
        )
    observed = statistic(pairs)
    rng = random.Random(seed)
    draws = sorted(statistic(rng.choices(pairs, k=len(pairs))) for _ in range(n_resamples))
    tail = (1.0 - confidence) / 2.0
    return BootstrapInterval(
        difference=observed,
        low=_quantile(draws, tail),
        high=_quantile(draws, 1.0 - tail),
        confidence=confidence,
        n_pairs=len(pairs),
        n_resamples=n_resamples,
        seed=seed,
    )
