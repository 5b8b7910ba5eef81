"""The records of a base-versus-tuned comparison: per-metric figures, paired answers, retention.

:class:`Comparison` holds both models' results on the same examples, one
:class:`MetricComparison` per metric and one :class:`SamplePair` per example;
:class:`Retention` holds the check on a general held-out set.
"""

from __future__ import annotations

from typing import Any

import attrs

from finetune_web.evaluation.bootstrap import BootstrapInterval
from finetune_web.records import EvalResult

__all__ = [
    "Comparison",
    "MetricComparison",
    "Retention",
    "SamplePair",
    "result_higher_is_better",
]


def result_higher_is_better(result: EvalResult) -> bool:
    """Return whether a higher score is better (true unless the result's details say not)."""
    return result.details.get("higher_is_better", True) is not False


@attrs.frozen(kw_only=True)
class MetricComparison:
    """One metric on both models, the paired difference and the per-example tally.

    Attributes:
        metric: the metric's name.
        base: the base model's result.
        tuned: the tuned model's result.
        interval: the difference (tuned - base) and its bootstrap interval.
        wins: examples where the tuned model did better (scored higher, or
            lower for a metric where lower is better, such as a loss).
        losses: examples where it did worse.
        ties: examples where both scored the same.
    """

    metric: str
    base: EvalResult
    tuned: EvalResult
    interval: BootstrapInterval
    wins: int
    losses: int
    ties: int

    @property
    def difference(self) -> float:
        """The observed difference, tuned - base."""
        return self.interval.difference

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.interval.significant

    @property
    def higher_is_better(self) -> bool:
        """False for a metric where lower is better (``details["higher_is_better"]`` of a loss)."""
        return result_higher_is_better(self.tuned)

    @property
    def improved(self) -> bool:
        """True when the tuned model did better on this metric (the difference's good side)."""
        return self.difference > 0 if self.higher_is_better else self.difference < 0


@attrs.frozen(kw_only=True)
class SamplePair:
    """One example as both models answered it (for reports).

    Attributes:
        index: the example's position in the evaluated sequence.
        example_id: its id.
        prompt: the prompt as text (system message left out).
        reference: the reference answer.
        base_output: the base model's answer (``None`` if no evaluator asked it).
        tuned_output: the tuned model's answer.
    """

    index: int
    example_id: str
    prompt: str
    reference: str
    base_output: str | None
    tuned_output: str | None


@attrs.frozen(kw_only=True)
class Retention:
    """A knowledge-retention check: both models on a general held-out set.

    Attributes:
        comparison: the comparison on the general set.
        tolerance: the drop allowed, in each metric's own units.
        regressions: metrics whose whole interval lies below ``-tolerance``:
            the tuned model is worse there beyond what noise explains.
    """

    comparison: Comparison
    tolerance: float
    regressions: tuple[str, ...]

    @property
    def regressed(self) -> bool:
        """True when any metric regressed."""
        return bool(self.regressions)


@attrs.frozen(kw_only=True)
class Comparison:
    """A base and a tuned model scored on exactly the same examples.

    Attributes:
        base_model: the base model's id.
        tuned_model: the tuned model's id.
        metrics: one entry per evaluator, in the order given.
        samples: every example with both answers, in input order.
        seed: the bootstrap seed.
        n_resamples: bootstrap resamples per metric.
        confidence: the intervals' level.
        retention: the retention check, when a general set was given.
    """

    base_model: str
    tuned_model: str
    metrics: tuple[MetricComparison, ...]
    samples: tuple[SamplePair, ...]
    seed: int
    n_resamples: int
    confidence: float
    retention: Retention | None = None

    def metric(self, name: str) -> MetricComparison:
        """Return the comparison of one metric.

        Raises:
            KeyError: no metric has that name.
        """
        for item in self.metrics:
            if item.metric == name:
                return item
        raise KeyError(f"no metric {name!r}; compared: {[m.metric for m in self.metrics]}")

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary: settings and per-metric figures, no example texts."""
        out: dict[str, Any] = {
            "base_model": self.base_model,
            "tuned_model": self.tuned_model,
            "n_examples": len(self.samples),
            "seed": self.seed,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "metrics": [
                {
                    "metric": m.metric,
                    "higher_is_better": m.higher_is_better,
                    "base": m.base.score,
                    "tuned": m.tuned.score,
                    "difference": m.difference,
                    "low": m.interval.low,
                    "high": m.interval.high,
                    "significant": m.significant,
                    "n_pairs": m.interval.n_pairs,
                    "wins": m.wins,
                    "losses": m.losses,
                    "ties": m.ties,
                }
                for m in self.metrics
            ],
        }
        if self.retention is not None:
            out["retention"] = {
                "tolerance": self.retention.tolerance,
                "regressions": list(self.retention.regressions),
                "regressed": self.retention.regressed,
                "general": self.retention.comparison.to_json(),
            }
        return out

    def scores(self) -> dict[str, dict[str, float]]:
        """Return ``{model id: {metric: score}}`` for both models (e.g. for a model registry)."""
        return {
            self.base_model: {m.metric: m.base.score for m in self.metrics},
            self.tuned_model: {m.metric: m.tuned.score for m in self.metrics},
        }
