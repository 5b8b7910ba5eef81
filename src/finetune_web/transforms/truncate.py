"""Cut examples down to a token limit, longest non-assistant text first."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import attrs

from finetune_web.errors import ConfigError
from finetune_web.formats.models import resolve_model
from finetune_web.formats.tokens import TokenCounter
from finetune_web.records import Example, MetricMode, Record, Rejection, StepMetric

__all__ = ["TruncateToTokens", "utf8_prefix"]

#: Examples counted per tiktoken call; at most this many are read ahead.
_BATCH = 256


def utf8_prefix(text: str, max_bytes: int) -> str:
    """Return the longest prefix of ``text`` whose UTF-8 form is at most ``max_bytes`` long.

    The cut never falls inside a character: a character whose bytes do not
    all fit is dropped whole.

    Args:
        text: the text to cut.
        max_bytes: the most UTF-8 bytes the prefix may take.

    Returns:
        A prefix of ``text`` (at character level).
    """
    data = text.encode("utf-8")
    end = max(0, min(max_bytes, len(data)))
    while 0 < end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte
        end -= 1
    return data[:end].decode("utf-8")


@attrs.frozen
class _Unit:
    """One text that may be cut: a message's content or one text part of it."""

    message: int
    part: int | None
    text: str
    ids: list[int]


def _units(example: Example, assistant: bool, counter: TokenCounter) -> list[_Unit]:
    """Return the cuttable texts of the assistant messages, or of all the others."""
    encode = counter.encoding.encode_ordinary
    units = []
    for number, message in enumerate(example.messages):
        if (message.role == "assistant") is not assistant:
            continue
        if isinstance(message.content, str):
            if message.content:
                units.append(_Unit(number, None, message.content, encode(message.content)))
        elif message.content is not None:
            for index, part in enumerate(message.content):
                text = part.get("text")
                if isinstance(text, str) and text:
                    units.append(_Unit(number, index, text, encode(text)))
    return units


def _caps(lengths: Sequence[int], budget: int, marker: int) -> list[int]:
    """Return how many tokens each text keeps so that their total cost fits ``budget``.

    The longest texts are cut first, down to a common cap (water-filling);
    a cut text also pays ``marker`` tokens, and a text whose cap leaves no
    room beside the marker is emptied (and gets no marker).  Leftover
    budget gives one more token to the earliest cut texts.
    """

    def cost(cap: int) -> int:
        cut = cap if cap - marker >= 1 else 0
        return sum(n if n <= cap else cut for n in lengths)

    low, high = 0, max(lengths, default=0)
    if cost(high) <= budget:
        return list(lengths)
    while low < high:  # the largest cap whose cost fits
        middle = (low + high + 1) // 2
        if cost(middle) <= budget:
            low = middle
        else:
            high = middle - 1
    cap = low
    left = budget - cost(cap)
    keep = []
    for n in lengths:
        if n <= cap:
            keep.append(n)
        elif cap - marker >= 1:
            extra = 1 if left > 0 else 0
            left -= extra
            keep.append(cap - marker + extra)
        else:
            keep.append(0)
    return keep


def _limit(model: str | None, max_tokens: int | None) -> int:
    if max_tokens is not None:
        return max_tokens
    assert model is not None
    return resolve_model(model).max_tokens_per_example


def _check_limit(
    instance: TruncateToTokens, _: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and (isinstance(value, bool) or value < 1):
        raise ConfigError(f"max_tokens must be a positive number of tokens, not {value!r}")
    if value is None and instance.model is None:
        raise ConfigError('TruncateToTokens needs a model (e.g. model="gpt-4o-mini") or max_tokens')


def _check_model(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        resolve_model(value)  # raises UnknownModelError with close names


@attrs.frozen(kw_only=True)
class TruncateToTokens:
    """Cut examples that are over a token limit until they fit.

    Tokens are counted exactly as :class:`~finetune_web.formats.TokenCounter`
    counts them (per-message overheads, names, tool calls and tool
    definitions included), so an example that passes fits the service's
    per-example limit.

    The longest non-assistant text (a message's content, or a text part of
    it) is cut first, down to the length of the next longest, and so on
    until the example fits.  Cuts keep a prefix, never split a character,
    and may append a ``marker``.  Assistant answers are kept whole unless
    ``keep_assistant`` is false; then they are cut last, once every other
    text is empty.  Names, tool calls, tool-call ids and tool definitions are
    never cut.  An example under the limit is passed on as the same object.
    An example that cannot fit even with every cuttable text emptied is
    rejected with reason ``cannot_fit`` and ``details`` ``{"tokens", "limit"}``.
    Documents and preference pairs are rejected with reason ``wrong_record_type``.

    The step reports ``truncate.examples_truncated`` and
    ``truncate.tokens_removed``.

    Attributes:
        model: a model name: its per-example limit and its token counter
            (e.g. ``"gpt-4o-mini"``: 65,536 tokens of o200k_base).
        max_tokens: a token budget; overrides the model's limit when both are given.
        encoding: the tiktoken encoding when no model is given (default o200k_base).
        keep_assistant: never cut assistant answers (the default).
        marker: text appended to every cut text (none by default), e.g. ``" [...]"``.
        name: the step's name in reports.
    """

    model: str | None = attrs.field(default=None, validator=_check_model)
    max_tokens: int | None = attrs.field(default=None, validator=_check_limit)
    encoding: str | None = None
    keep_assistant: bool = True
    marker: str = ""
    name: str = "truncate"

    def __attrs_post_init__(self) -> None:
        if self.model is not None and self.encoding is not None:
            own = resolve_model(self.model).encoding
            if own != self.encoding:
                raise ConfigError(
                    f"{self.model} counts tokens with {own}, not {self.encoding}: "
                    "give a model or an encoding, not both"
                )

    @property
    def limit(self) -> int:
        """The most tokens an example may have."""
        return _limit(self.model, self.max_tokens)

    def counter(self) -> TokenCounter:
        """Return the token counter: the model's, else one for ``encoding``."""
        if self.model is not None:
            return TokenCounter.for_model(self.model)
        return TokenCounter(encoding_name=self.encoding or "o200k_base")

    def truncate(self, example: Example, counter: TokenCounter | None = None) -> Example | None:
        """Return ``example`` cut to fit the limit, or ``None`` when it cannot fit.

        Args:
            example: the example.
            counter: the token counter to use (default :meth:`counter`).

        Returns:
            ``example`` itself when it already fits, a cut copy, or ``None``.
        """
        counter = counter if counter is not None else self.counter()
        total = counter.count_example(example).total
        return self._fit(example, total, counter)[0]

    def _fit(
        self, example: Example, total: int, counter: TokenCounter
    ) -> tuple[Example | None, int]:
        """Fit ``example`` (``total`` tokens) to the limit.

        Returns:
            The fitted example and its token count, or ``None`` and the count
            of the tokens this step cannot cut.
        """
        limit = self.limit
        if total <= limit:
            return example, total
        others = _units(example, False, counter)
        answers = [] if self.keep_assistant else _units(example, True, counter)
        fixed = total - sum(len(u.ids) for u in others) - sum(len(u.ids) for u in answers)
        marker = counter.count_text(self.marker) if self.marker else 0
        budget = limit - fixed
        tries = 0
        while budget >= 0:
            answer_tokens = sum(len(u.ids) for u in answers)
            if budget >= answer_tokens:
                keep = _caps([len(u.ids) for u in others], budget - answer_tokens, marker)
                keep += [len(u.ids) for u in answers]
            else:
                keep = [0] * len(others) + _caps([len(u.ids) for u in answers], budget, marker)
            cut = self._rebuild(example, [*others, *answers], keep, counter)
            new_total = counter.count_example(cut).total
            if new_total <= limit:
                return cut, new_total
            tries += 1  # re-encoding a cut text can cost a few more tokens: cut deeper
            budget -= max(new_total - limit, tries)
        return None, fixed

    def _rebuild(
        self, example: Example, units: list[_Unit], keep: list[int], counter: TokenCounter
    ) -> Example:
        decode = counter.encoding.decode_bytes
        texts: dict[tuple[int, int | None], str] = {}
        for unit, count in zip(units, keep, strict=True):
            if count >= len(unit.ids):
                continue
            prefix = utf8_prefix(unit.text, len(decode(unit.ids[:count]))) if count else ""
            texts[unit.message, unit.part] = prefix + self.marker if prefix else ""
        messages = list(example.messages)
        for number, message in enumerate(messages):
            if (number, None) in texts:
                messages[number] = attrs.evolve(message, content=texts[number, None])
            elif isinstance(message.content, tuple) and any(
                (number, index) in texts for index in range(len(message.content))
            ):
                parts = [
                    {**part, "text": texts[number, index]} if (number, index) in texts else part
                    for index, part in enumerate(message.content)
                ]
                messages[number] = attrs.evolve(message, content=parts)
        return attrs.evolve(example, messages=messages)

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield examples cut to fit, rejections, then the step's two metrics."""
        counter = self.counter()
        limit = self.limit
        truncated = removed = 0
        stream = iter(records)
        while batch := list(islice(stream, _BATCH)):
            examples = [record for record in batch if isinstance(record, Example)]
            counts = iter(counter.count_examples(examples))
            for record in batch:
                if not isinstance(record, Example):
                    yield self._wrong_type(record)
                    continue
                total = next(counts).total
                fitted, count = self._fit(record, total, counter)
                if fitted is None:
                    yield self._cannot_fit(record, total, count, limit)
                    continue
                if fitted is not record:
                    truncated += 1
                    removed += total - count
                yield fitted
        yield StepMetric(name="truncate.examples_truncated", value=truncated, mode=MetricMode.SUM)
        yield StepMetric(name="truncate.tokens_removed", value=removed, mode=MetricMode.SUM)

    def _cannot_fit(self, example: Example, total: int, fixed: int, limit: int) -> Rejection:
        kept = "message overheads, names, tool calls and definitions"
        if self.keep_assistant:
            kept += ", assistant answers"
        return Rejection(
            record_id=example.id,
            step=self.name,
            reason="cannot_fit",
            message=f"example {example.id} has {total} tokens and cannot be cut to the "
            f"{limit}-token limit: what this step never cuts ({kept}) takes {fixed} tokens; "
            "raise the limit, shorten those parts"
            + ("" if not self.keep_assistant else ", or set keep_assistant=False"),
            location=example.location,
            record=example,
            details={"tokens": total, "limit": limit},
        )

    def _wrong_type(self, record: Record) -> Rejection:
        kind = type(record).__name__.lower()
        return Rejection(
            record_id=record.id,
            step=self.name,
            reason="wrong_record_type",
            message=f"{kind} {record.id} reached the truncate step, which cuts chat examples "
            "only: turn documents into examples first (e.g. with a template step)",
            location=record.location,
            record=record,
        )
