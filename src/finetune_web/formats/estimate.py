"""Dataset statistics, default epochs, billed tokens and training cost.

The figures follow OpenAI's chat data-prep guide: the service bills
``sum(min(max_tokens_per_example, tokens))`` per epoch (longer examples are
cut), and picks the number of epochs from the number of examples with
:func:`default_epochs`.  Percentiles are numpy's default (linear) quantiles;
the guide prints its 10th/90th percentiles under the labels p5/p95, we label
them truthfully ``p10``/``p90``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import attrs

from finetune_web._types import StrPath
from finetune_web.errors import ConfigError, ErrorContext, ValidationError, error_context
from finetune_web.formats.chat import read_training_file
from finetune_web.formats.models import PRICES_AS_OF, ModelSpec, resolve_model
from finetune_web.formats.tokens import ExampleTokens, TokenCounter
from finetune_web.records import Example, Rejection

__all__ = [
    "MAX_DEFAULT_EPOCHS",
    "MAX_EPOCHS",
    "MAX_TARGET_EXAMPLES",
    "MIN_DEFAULT_EPOCHS",
    "MIN_TARGET_EXAMPLES",
    "TARGET_EPOCHS",
    "Distribution",
    "Estimate",
    "EstimateBuilder",
    "default_epochs",
    "estimate_examples",
    "estimate_file",
]

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
#: The largest ``n_epochs`` the fine-tuning API accepts.
MAX_EPOCHS = 50


def default_epochs(examples: int) -> int:
    """Return the number of epochs the service picks for a dataset of this size.

    It aims at about ``TARGET_EPOCHS * examples`` trained examples, raising
    the epochs (up to ``MAX_DEFAULT_EPOCHS``) for small datasets so that at
    least ``MIN_TARGET_EXAMPLES`` are seen, and lowering them (down to
    ``MIN_DEFAULT_EPOCHS``) for large ones so that about ``MAX_TARGET_EXAMPLES`` are.

    Raises:
        ValueError: ``examples`` is not positive.
    """
    if examples < 1:
        raise ValueError(f"a dataset needs at least one example, not {examples}")
    seen = examples * TARGET_EPOCHS
    if seen < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // examples)
    if seen > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // examples)
    return TARGET_EPOCHS


def _quantile(ordered: Sequence[float], q: float) -> float:
    """numpy's default ("linear") quantile of sorted values, rounding included."""
    position = (len(ordered) - 1) * q
    if position >= len(ordered) - 1:
        return float(ordered[-1])
    below = math.floor(position)
    low, high = ordered[below], ordered[below + 1]
    fraction = position - below
    step = high - low
    # numpy interpolates from the nearer end, which decides the last bit.
    return float(high - step * (1 - fraction) if fraction >= 0.5 else low + step * fraction)


@attrs.frozen(kw_only=True)
class Distribution:
    """Summary of a list of numbers (equal to numpy's min/max/mean/median/quantile)."""

    min: float
    max: float
    mean: float
    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        """Summarise ``values``.

        Raises:
            ValueError: ``values`` is empty.
        """
        ordered = sorted(values)
        if not ordered:
            raise ValueError("cannot summarise an empty list of values")
        middle = len(ordered) // 2
        median = (
            float(ordered[middle])
            if len(ordered) % 2
            else (ordered[middle - 1] + ordered[middle]) / 2
        )
        return cls(
            min=ordered[0],
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
            median=median,
            p10=_quantile(ordered, 0.1),
            p90=_quantile(ordered, 0.9),
        )

    def to_json(self) -> dict[str, float]:
        """Return ``{min, max, mean, median, p10, p90}``."""
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class Estimate:
    """What fine-tuning a file will cost, and the statistics behind it.

    Attributes:
        model: the model name as given.
        encoding: the tiktoken encoding used.
        examples: valid examples counted.
        rejected: lines that could not be read as examples (not counted).
        tokens_per_example: each example's tokens, in file order.
        total_tokens: distribution of ``tokens_per_example``.
        assistant_tokens: distribution of assistant tokens per example.
        messages_per_example: distribution of messages per example.
        max_tokens_per_example: the model's limit; longer examples are cut.
        over_limit: examples longer than the limit.
        billed_tokens_per_epoch: ``sum(min(limit, tokens))``.
        epochs: the epochs given, or :func:`default_epochs`.
        billed_tokens: ``billed_tokens_per_epoch * epochs``.
        price_per_1m: the model's training price per million tokens (``None``: unpublished).
        estimated_cost_usd: ``billed_tokens * price_per_1m / 1e6`` (``None``: no price).
        prices_as_of: the date of the price table.
    """

    model: str
    encoding: str
    examples: int
    rejected: int
    tokens_per_example: tuple[int, ...]
    total_tokens: Distribution
    assistant_tokens: Distribution
    messages_per_example: Distribution
    max_tokens_per_example: int
    over_limit: int
    billed_tokens_per_epoch: int
    epochs: int
    billed_tokens: int
    price_per_1m: float | None
    estimated_cost_usd: float | None
    prices_as_of: date

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict with stable keys.

        The scalar attributes keep their names (``prices_as_of`` as an ISO
        date); the three distributions sit under ``distributions``.
        """
        return {
            "model": self.model,
            "encoding": self.encoding,
            "examples": self.examples,
            "rejected": self.rejected,
            "tokens_per_example": list(self.tokens_per_example),
            "distributions": {
                "total_tokens": self.total_tokens.to_json(),
                "assistant_tokens": self.assistant_tokens.to_json(),
                "messages_per_example": self.messages_per_example.to_json(),
            },
            "max_tokens_per_example": self.max_tokens_per_example,
            "over_limit": self.over_limit,
            "billed_tokens_per_epoch": self.billed_tokens_per_epoch,
            "epochs": self.epochs,
            "billed_tokens": self.billed_tokens,
            "price_per_1m": self.price_per_1m,
            "estimated_cost_usd": self.estimated_cost_usd,
            "prices_as_of": self.prices_as_of.isoformat(),
        }


@attrs.define
class EstimateBuilder:
    """Accumulates token counts one example at a time, then builds an :class:`Estimate`.

    It keeps three integers per example, never the examples themselves.

    Attributes:
        spec: the model.
        model: the name shown in the estimate (defaults to ``spec.name``).
    """

    spec: ModelSpec
    model: str = ""
    _totals: list[int] = attrs.field(factory=list, init=False)
    _assistant: list[int] = attrs.field(factory=list, init=False)
    _messages: list[int] = attrs.field(factory=list, init=False)
    _rejected: int = attrs.field(default=0, init=False)

    @property
    def examples(self) -> int:
        """The number of examples added so far."""
        return len(self._totals)

    def add(self, tokens: ExampleTokens) -> None:
        """Count one example."""
        self._totals.append(tokens.total)
        self._assistant.append(tokens.assistant)
        self._messages.append(tokens.messages)

    def add_rejection(self) -> None:
        """Count one line that could not be read as an example."""
        self._rejected += 1

    def build(self, *, epochs: int | None = None) -> Estimate:
        """Return the estimate of everything added so far.

        Args:
            epochs: the epochs to bill for; :func:`default_epochs` when ``None``.

        Raises:
            ConfigError: ``epochs`` is outside 1-50.
            ValidationError: no example was added.
        """
        if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
            raise ConfigError(f"epochs must be between 1 and {MAX_EPOCHS}, not {epochs}")
        if not self._totals:
            raise ValidationError(
                f"no valid example to estimate ({self._rejected} line(s) rejected)",
                ErrorContext(step="estimate"),
            )
        limit = self.spec.max_tokens_per_example
        per_epoch = sum(min(limit, total) for total in self._totals)
        chosen = default_epochs(len(self._totals)) if epochs is None else epochs
        billed = per_epoch * chosen
        price = self.spec.training_price_per_1m_usd
        return Estimate(
            model=self.model or self.spec.name,
            encoding=self.spec.encoding,
            examples=len(self._totals),
            rejected=self._rejected,
            tokens_per_example=tuple(self._totals),
            total_tokens=Distribution.of(self._totals),
            assistant_tokens=Distribution.of(self._assistant),
            messages_per_example=Distribution.of(self._messages),
            max_tokens_per_example=limit,
            over_limit=sum(total > limit for total in self._totals),
            billed_tokens_per_epoch=per_epoch,
            epochs=chosen,
            billed_tokens=billed,
            price_per_1m=price,
            estimated_cost_usd=None if price is None else billed * price / 1_000_000,
            prices_as_of=PRICES_AS_OF,
        )


def estimate_examples(
    records: Iterable[Example | Rejection],
    model: str | ModelSpec,
    *,
    epochs: int | None = None,
    batch_size: int = 256,
) -> Estimate:
    """Estimate the cost of training ``model`` on a stream of examples.

    Args:
        records: examples (rejections are counted, not billed).
        model: a model name (snapshots and ``ft:`` names resolve) or spec.
        epochs: the epochs to bill for; the service's default when ``None``.
        batch_size: examples tokenized per batch.

    Raises:
        UnknownModelError: the model is not in the table.
        ValidationError: there is no valid example.
    """
    spec = resolve_model(model) if isinstance(model, str) else model
    builder = EstimateBuilder(spec=spec, model=model if isinstance(model, str) else spec.name)
    counter = TokenCounter.for_model(spec)
    for item in counter.count_stream(records, batch_size=batch_size):
        if isinstance(item, Rejection):
            builder.add_rejection()
        else:
            builder.add(item[1])
    return builder.build(epochs=epochs)


def estimate_file(
    path: StrPath,
    model: str | ModelSpec,
    *,
    epochs: int | None = None,
    encoding: str | None = None,
) -> Estimate:
    """Estimate the cost of training ``model`` on a JSONL file, streaming it.

    The file is read in the model's format (chat, or prompt/completion for
    babbage-002 / davinci-002).

    Raises:
        SourceError: the file cannot be read.
        UnknownModelError: the model is not in the table.
        ValidationError: the file has no valid example.
    """
    spec = resolve_model(model) if isinstance(model, str) else model
    records = read_training_file(path, format=spec.format, encoding=encoding)
    with error_context(path=str(path)):
        return estimate_examples(records, model, epochs=epochs)
