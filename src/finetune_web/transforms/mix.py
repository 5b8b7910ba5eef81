"""Mix general-purpose records into a domain stream at a target fraction."""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Callable, Iterable, Iterator

import attrs

from finetune_web.errors import ConfigError
from finetune_web.formats.models import resolve_model
from finetune_web.formats.tokens import TokenCounter
from finetune_web.interfaces import Source
from finetune_web.records import (
    Document,
    Example,
    MetricMode,
    Preference,
    Record,
    Rejection,
    StepMetric,
    messages_of,
)

__all__ = ["MixBy", "MixWith", "record_tokens"]


class MixBy(enum.Enum):
    """What the general fraction of :class:`MixWith` counts."""

    #: Records: a fraction of 0.2 makes one output record in five a general one.
    EXAMPLES = "examples"
    #: Tokens, as :class:`~finetune_web.formats.TokenCounter` counts them.
    TOKENS = "tokens"


def record_tokens(record: Record, counter: TokenCounter) -> int:
    """Return the tokens of any record.

    An example counts as the service counts it; a preference pair as an
    example of its prompt and both answers; a document as its text (or the
    compact JSON of its data).

    Args:
        record: the record.
        counter: the token counter.

    Returns:
        The number of tokens.
    """
    if isinstance(record, Example):
        return counter.count_example(record).total
    if isinstance(record, Preference):
        example = Example(messages=messages_of(record), tools=record.tools, id=record.id)
        return counter.count_example(example).total
    if isinstance(record, Document):
        if record.text is not None:
            return counter.count_text(record.text)
        return counter.count_text(json.dumps(record.data, ensure_ascii=False, sort_keys=True))
    raise TypeError(f"not a record: {type(record).__name__}")


def _by(value: MixBy | str) -> MixBy:
    try:
        return MixBy(value)
    except ValueError:
        raise ConfigError(f'by must be "examples" or "tokens", not {value!r}') from None


def _check_fraction(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"general_fraction must be in [0, 1), not {value!r}")


def _check_source(_: object, __: attrs.Attribute[Source], value: Source) -> None:
    if not isinstance(value, Source):
        raise ConfigError(f"general must be a Source with a read() method, not {value!r}")


def _check_buffer(_: object, __: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ConfigError(f"shuffle_buffer must be 0 or more, not {value!r}")


def _check_model(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        resolve_model(value)


@attrs.define
class _General:
    """The general source as one run reads it: lazily, through an optional shuffle buffer."""

    source: Source
    rng: random.Random
    buffer_size: int
    reader: Iterator[Record | Rejection] | None = None
    buffer: list[Record] = attrs.field(factory=list)
    done: bool = False
    rejections: list[Rejection] = attrs.field(factory=list)

    def take(self) -> Record | None:
        """Return the next general record (``None`` when the source is exhausted)."""
        if self.reader is None:
            self.reader = iter(self.source.read())
        want = max(1, self.buffer_size)
        while not self.done and len(self.buffer) < want:
            item = next(self.reader, None)
            if item is None:
                self.done = True
            elif isinstance(item, Rejection):
                self.rejections.append(item)
            else:
                self.buffer.append(item)
        if not self.buffer:
            return None
        if self.buffer_size <= 1:
            return self.buffer.pop()
        at = self.rng.randrange(len(self.buffer))
        self.buffer[at], self.buffer[-1] = self.buffer[-1], self.buffer[at]
        return self.buffer.pop()

    def close(self) -> None:
        """Close the source's iterator, if it was opened and can be closed."""
        close = getattr(self.reader, "close", None)
        if callable(close):
            close()


@attrs.frozen(kw_only=True)
class MixWith:
    """Interleave records from a general source with the stream, at a target fraction.

    Every record of the stream (the domain data) passes through, in order.
    After each one, general records are inserted while the general share of
    the output so far is below ``general_fraction``, counted in records or in
    tokens.  The k-th general record is due once the domain records read so
    far call for ``k - 1 + u`` of them, with ``u`` drawn from a generator
    seeded by ``seed``: the positions are jittered but the same seed gives the
    same output.  At every point the general count is within one record
    (``by="examples"``) or one general record's tokens (``by="tokens"``) of
    the target, so the achieved fraction over ``N`` output records is within
    ``1/N`` of ``general_fraction``.

    The general source is read lazily, only as its records are needed (with
    ``shuffle_buffer=B``, at most ``B`` records ahead, drawn at random from
    that buffer).  General records keep their own ids; rejections the
    general source yields are passed on.  When it runs out before the
    target is reached, the output simply has fewer general records: the
    step reports ``mix.general_exhausted`` = 1 and the shortfall.

    Metrics: ``mix.domain_records``, ``mix.general_records``,
    ``mix.domain_tokens`` and ``mix.general_tokens`` (by tokens),
    ``mix.achieved_general_fraction`` (last value), ``mix.general_exhausted``
    (1 or 0) and ``mix.general_shortfall`` (records or tokens missing).

    Attributes:
        general: the source of general records.
        general_fraction: the target share of general records in the output, in [0, 1).
        by: ``"examples"`` (count records) or ``"tokens"``.
        seed: seeds the positions and the shuffle buffer.
        shuffle_buffer: how many general records to read ahead and draw from
            at random (0: take them in source order).
        model: for ``by="tokens"``, count with this model's counter.
        encoding: for ``by="tokens"`` without a model (default o200k_base).
        name: the step's name in reports.
    """

    general: Source = attrs.field(validator=_check_source)
    general_fraction: float = attrs.field(validator=_check_fraction)
    by: MixBy = attrs.field(default=MixBy.EXAMPLES, converter=_by)
    seed: int = 0
    shuffle_buffer: int = attrs.field(default=0, validator=_check_buffer)
    model: str | None = attrs.field(default=None, validator=_check_model)
    encoding: str | None = None
    name: str = "mix"

    def _weigher(self) -> Callable[[Record], int]:
        if self.by is MixBy.EXAMPLES:
            return lambda _: 1
        if self.model is not None:
            counter = TokenCounter.for_model(self.model)
        else:
            counter = TokenCounter(encoding_name=self.encoding or "o200k_base")
        return lambda record: record_tokens(record, counter)

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield the stream's records with general records interleaved, then the metrics."""
        rng = random.Random(self.seed)
        weigh = self._weigher()
        general = _General(self.general, random.Random(self.seed + 1), self.shuffle_buffer)
        ratio = self.general_fraction / (1.0 - self.general_fraction)
        domain_n = domain_w = general_n = general_w = 0
        jitter = rng.random()
        exhausted = False
        try:
            for record in records:
                yield record
                domain_n += 1
                domain_w += weigh(record)
                target = ratio * domain_w
                # the jitter's scale: one general record (its mean size; 0 before the first)
                unit = general_w / general_n if general_n else float(self.by is MixBy.EXAMPLES)
                while not exhausted and general_w + jitter * unit < target:
                    extra = general.take()
                    yield from general.rejections
                    general.rejections.clear()
                    if extra is None:
                        exhausted = True
                        break
                    yield extra
                    general_n += 1
                    general_w += weigh(extra)
                    unit = general_w / general_n
                    jitter = rng.random()
        finally:
            general.close()
        yield from self._metrics(domain_n, domain_w, general_n, general_w, exhausted, ratio)

    def _metrics(
        self,
        domain_n: int,
        domain_w: int,
        general_n: int,
        general_w: int,
        exhausted: bool,
        ratio: float,
    ) -> Iterator[StepMetric]:
        total = domain_w + general_w
        achieved = general_w / total if total else 0.0
        yield StepMetric(name="mix.domain_records", value=domain_n)
        yield StepMetric(name="mix.general_records", value=general_n)
        if self.by is MixBy.TOKENS:
            yield StepMetric(name="mix.domain_tokens", value=domain_w)
            yield StepMetric(name="mix.general_tokens", value=general_w)
        yield StepMetric(name="mix.achieved_general_fraction", value=achieved, mode=MetricMode.LAST)
        yield StepMetric(
            name="mix.general_exhausted", value=1.0 if exhausted else 0.0, mode=MetricMode.LAST
        )
        shortfall = max(0.0, ratio * domain_w - general_w) if exhausted else 0.0
        yield StepMetric(name="mix.general_shortfall", value=shortfall)
