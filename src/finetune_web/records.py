"""Frozen records that flow through a pipeline.

Records are immutable (``attrs.frozen``) and slotted; change them with
:func:`attrs.evolve`.  Sequences are stored as tuples.  Mappings (``data``,
``metadata``) are plain dicts copied on construction: treat them as
read-only.

Every record that travels through a pipeline has an ``id``; a record made
from another one names it in ``parent_id`` so the pipeline can account for
every input of every step.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from finetune_web._types import ROLES, Role

__all__ = [
    "Document",
    "EvalResult",
    "Example",
    "FineTunedModel",
    "Location",
    "Message",
    "MetricEvent",
    "MetricMode",
    "Pack",
    "Preference",
    "Record",
    "Rejection",
    "Split",
    "StepMetric",
    "Tokenized",
    "ToolCall",
    "canonical_content",
    "messages_of",
    "record_location",
]


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value) if value is not None else {}


def _optional_dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _tuple_of_dicts(value: Iterable[Mapping[str, Any]] | None) -> tuple[dict[str, Any], ...] | None:
    return tuple(dict(v) for v in value) if value is not None else None


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _messages(value: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(value)


def _tool_calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(value)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _metrics(value: Iterable[MetricEvent]) -> tuple[MetricEvent, ...]:
    return tuple(value)


def _scores(value: Iterable[float | None]) -> tuple[float | None, ...]:
    return tuple(value)


def _content(
    value: str | Iterable[Mapping[str, Any]] | None,
) -> str | tuple[dict[str, Any], ...] | None:
    if value is None or isinstance(value, str):
        return value
    return tuple(dict(part) for part in value)


class Split(enum.Enum):
    """Which side of a train/validation split an example belongs to."""

    TRAIN = "train"
    VALIDATION = "validation"


@attrs.frozen(kw_only=True)
class Location:
    """Where a record came from.

    Attributes:
        origin: the file path or URL, as given to the source.
        line: 1-based line number in the file, when the format has lines.
        index: 0-based position of the record in its source.
    """

    origin: str
    line: int | None = None
    index: int | None = None

    def describe(self) -> str:
        """Return ``origin:line (record #index)``, omitting unknown parts."""
        text = self.origin if self.line is None else f"{self.origin}:{self.line}"
        if self.index is not None:
            text += f" (record #{self.index})"
        return text

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (unknown parts omitted)."""
        out: dict[str, Any] = {"origin": self.origin}
        if self.line is not None:
            out["line"] = self.line
        if self.index is not None:
            out["index"] = self.index
        return out


@attrs.frozen(kw_only=True)
class Document:
    """A raw web item: a page, a scraped product, a CSV row, a transcript.

    Attributes:
        id: unique within the stream (sources use ``<file name>#<index>``).
        text: main text, when the item is text.
        data: structured fields, when the item is structured (JSON, CSV).
        metadata: anything else worth keeping (URL, title, language...).
        location: where it came from.
        parent_id: id of the record this one was derived from, if any.
    """

    id: str
    text: str | None = None
    data: dict[str, Any] | None = attrs.field(default=None, converter=_optional_dict)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    location: Location | None = None
    parent_id: str | None = None


@attrs.frozen(kw_only=True)
class ToolCall:
    """One function call made by an assistant message."""

    id: str
    name: str
    arguments: str
    type: str = "function"


def _check_role(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in ROLES:
        raise ValueError(f"unknown role {value!r}; expected one of {sorted(ROLES)}")


def _check_weight(_: object, __: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and value not in (0, 1):
        raise ValueError(f"weight must be 0 or 1, not {value!r}")


@attrs.frozen(kw_only=True)
class Message:
    """One chat message in OpenAI's fine-tuning format.

    Attributes:
        role: system, developer, user, assistant, tool or (legacy) function.
        content: the text; ``None`` for an assistant message that only calls tools.
            A list of content parts (multimodal) is kept as a tuple of dicts.
        name: optional participant name.
        tool_calls: calls made by an assistant message.
        tool_call_id: for a tool message, the call it answers.
        weight: for assistant messages, 0 to exclude from training, 1 to include.
    """

    role: Role = attrs.field(validator=_check_role)
    content: str | tuple[dict[str, Any], ...] | None = attrs.field(default=None, converter=_content)
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_tool_calls)
    tool_call_id: str | None = None
    weight: int | None = attrs.field(default=None, validator=_check_weight)

    @property
    def text(self) -> str:
        """The content as plain text (text parts joined; ``""`` when absent)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(part.get("text", "")) for part in self.content)


@attrs.frozen(kw_only=True)
class Example:
    """A supervised chat training example.

    Attributes:
        messages: the conversation.
        tools: function definitions available to the assistant.
        parallel_tool_calls: OpenAI's per-example flag, kept when present.
        id: unique within the stream.
        parent_id: the record this example was made from.
        metadata: anything to keep beside the example (never written to chat JSONL).
        location: where the example (or its parent) came from.
        split: train or validation, once a split step has run.
    """

    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    tools: tuple[dict[str, Any], ...] | None = attrs.field(default=None, converter=_tuple_of_dicts)
    parallel_tool_calls: bool | None = None
    id: str = ""
    parent_id: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    location: Location | None = None
    split: Split | None = None


@attrs.frozen(kw_only=True)
class Preference:
    """A DPO preference pair: one prompt, a preferred and a non-preferred answer."""

    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    preferred: Message
    non_preferred: Message
    tools: tuple[dict[str, Any], ...] | None = attrs.field(default=None, converter=_tuple_of_dicts)
    id: str = ""
    parent_id: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    location: Location | None = None
    split: Split | None = None


#: What flows between the steps of a pipeline.
Record: TypeAlias = "Document | Example | Preference"


@attrs.frozen(kw_only=True)
class Rejection:
    """A record that a step did not pass on, and why.

    Attributes:
        record_id: id of the rejected record (``None`` if it never got one,
            e.g. an unparseable line).
        step: name of the step that rejected it.
        reason: a stable, machine-readable code (``missing_field``, ``invalid_json``...).
        message: a human explanation naming what is wrong and where.
        location: where the record came from.
        record: the record's raw content, so nothing is lost.
        details: extra facts (e.g. ``duplicate_of``).
    """

    record_id: str | None
    step: str
    reason: str
    message: str
    location: Location | None = None
    record: Any = None
    details: dict[str, Any] = attrs.field(factory=dict, converter=_dict)


class MetricMode(enum.Enum):
    """How repeated values of one step metric combine in the run report."""

    #: Add the values up (counts: e.g. e-mail addresses redacted).
    SUM = "sum"
    #: Keep the last value (measurements: e.g. the achieved mixing ratio).
    LAST = "last"


@attrs.frozen(kw_only=True)
class StepMetric:
    """A figure a step reports about its own work, shown in the run report.

    A transformer may yield these among its outputs; the pipeline takes them
    out of the stream and adds them to the step's report.  They are neither
    records nor rejections and do not count in the step's in/out numbers.

    Attributes:
        name: e.g. ``"pii.email"`` or ``"achieved_ratio"``.
        value: the figure.
        mode: how several values of the same name combine.
    """

    name: str
    value: float
    mode: MetricMode = MetricMode.SUM


@attrs.frozen(kw_only=True)
class Tokenized:
    """An example as token ids, with training labels (-100 = not trained on)."""

    id: str
    input_ids: tuple[int, ...] = attrs.field(converter=_int_tuple)
    labels: tuple[int, ...] = attrs.field(converter=_int_tuple)

    @labels.validator
    def _same_length(self, _: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]) -> None:
        if len(value) != len(self.input_ids):
            raise ValueError(
                f"labels has {len(value)} items but input_ids has {len(self.input_ids)}"
            )


@attrs.frozen(kw_only=True)
class Pack:
    """One packed training row: several tokenized examples side by side.

    ``position_ids`` restart at 0 at each example's first token, so attention
    implementations can keep examples apart.
    """

    input_ids: tuple[int, ...] = attrs.field(converter=_int_tuple)
    labels: tuple[int, ...] = attrs.field(converter=_int_tuple)
    position_ids: tuple[int, ...] = attrs.field(converter=_int_tuple)
    example_ids: tuple[str, ...] = attrs.field(converter=_strings)


@attrs.frozen(kw_only=True)
class MetricEvent:
    """A training metric reported by a backend at one step."""

    step: int
    total_steps: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    full_valid_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_mean_token_accuracy: float | None = None
    epoch: float | None = None


@attrs.frozen(kw_only=True)
class FineTunedModel:
    """The result of a fine-tuning job, as stored by the model registry."""

    model_id: str
    base_model: str
    backend: str
    job_id: str | None = None
    trained_tokens: int | None = None
    hyperparameters: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    result_files: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    metrics: tuple[MetricEvent, ...] = attrs.field(default=(), converter=_metrics)
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_dict)


@attrs.frozen(kw_only=True)
class EvalResult:
    """Scores of one metric on one model.

    Attributes:
        metric: name of the metric (``exact_match``, ``bleu``...).
        model: id of the model evaluated.
        score: the aggregate score.
        per_example: one score per example, in input order (``None`` = not scorable).
        details: metric-specific facts (e.g. a sacrebleu signature).
    """

    metric: str
    model: str
    score: float
    per_example: tuple[float | None, ...] = attrs.field(default=(), converter=_scores)
    details: dict[str, Any] = attrs.field(factory=dict, converter=_dict)


def record_location(record: object) -> Location | None:
    """Return the location of any record that has one."""
    location = getattr(record, "location", None)
    return location if isinstance(location, Location) else None


def messages_of(record: Example | Preference) -> Sequence[Message]:
    """Return every message of an example, or a preference's prompt and both answers."""
    if isinstance(record, Preference):
        return (*record.messages, record.preferred, record.non_preferred)
    return record.messages


def _field(parts: list[str], value: object) -> None:
    # Length-prefixed, typed fields: unambiguous, and much cheaper than JSON for long texts.
    if value is None:
        parts.append("n")
    elif isinstance(value, str):
        parts.append(f"s{len(value)}:{value}")
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        parts.append(f"j{len(text)}:{text}")


def _message_fields(parts: list[str], message: Message) -> None:
    _field(parts, message.role)
    _field(
        parts, message.content if isinstance(message.content, str | None) else list(message.content)
    )
    _field(parts, message.name)
    _field(
        parts, [[c.name, c.arguments] for c in message.tool_calls] if message.tool_calls else None
    )
    _field(parts, message.tool_call_id)
    _field(parts, message.weight)


def canonical_content(record: Document | Example | Preference) -> bytes:
    """Return a canonical byte form of a record's content (ids, locations and metadata excluded).

    Two records with the same content give the same bytes, whatever their
    origin; used for content hashing (splits, exact deduplication).  The
    bytes are valid UTF-8.
    """
    parts: list[str] = []
    if isinstance(record, Document):
        parts.append("document")
        _field(parts, record.text)
        _field(parts, record.data)
        return "".join(parts).encode()
    parts.append("preference" if isinstance(record, Preference) else "example")
    parts.append(str(len(record.messages)))
    for message in record.messages:
        _message_fields(parts, message)
    if isinstance(record, Preference):
        _message_fields(parts, record.preferred)
        _message_fields(parts, record.non_preferred)
    _field(parts, list(record.tools) if record.tools is not None else None)
    return "".join(parts).encode()
