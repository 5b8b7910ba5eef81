"""Turn structured records into chat examples with declarative templates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Example, Message, Record, Rejection

__all__ = ["TemplateTransformer", "lookup_field"]

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FIELD = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*\??")


@attrs.frozen
class _Slot:
    alternatives: tuple[str, ...]
    optional: bool

    @property
    def label(self) -> str:
        return "|".join(self.alternatives)


_Part = str | _Slot


def _parse(template: str, where: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
            continue
        body = match.group(1)
        if body is None:
            raise ConfigError(
                f"{where}: unmatched {token!r} at column {match.start() + 1}; "
                "write {{ or }} for a literal brace"
            )
        optional = body.endswith("?")
        names = tuple(name.strip() for name in body.rstrip("?").split("|"))
        if not names or not all(_FIELD.fullmatch(name) for name in names):
            raise ConfigError(
                f"{where}: bad placeholder {{{body}}}: use {{field}}, {{a|b}} (a, else b), "
                "{field?} (optional) or dotted paths like {details.weight}"
            )
        parts.append(_Slot(alternatives=names, optional=optional))
    parts.append(template[position:])
    return tuple(part for part in parts if part != "")


def lookup_field(record: Document, path: str) -> Any:
    """Return the value at a dotted ``path`` in a document, or ``None``.

    Looks in ``record.data`` first; ``text`` and ``id`` fall back to the
    document's own attributes and ``metadata.<key>`` reads its metadata.
    List items are addressed by index (``images.0``).
    """
    head, _, rest = path.partition(".")
    value: Any
    if record.data is not None and head in record.data:
        value = record.data[head]
    elif head == "metadata":
        value = record.metadata
    elif head in ("text", "id"):
        value = getattr(record, head)
    else:
        return None
    for key in rest.split(".") if rest else ():
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip()


def _caps(value: Mapping[str, int]) -> dict[str, int]:
    return dict(value)


def _joins(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen(kw_only=True)
class TemplateTransformer:
    """Build an :class:`Example` from each document with text templates.

    Templates use ``{field}`` placeholders filled from the document's
    structured data (dotted paths reach into nested objects): ``{a|b}``
    takes ``a`` and falls back to ``b``; ``{field?}`` may be missing (it
    becomes empty); ``{{`` and ``}}`` are literal braces.  Lists are joined
    with ``list_separator`` (or a per-field separator from ``joins``);
    objects are written as compact JSON.  A required field that is missing
    or empty turns the record into a ``missing_field`` rejection.

    Attributes:
        user: template of the user message.
        assistant: template of the assistant message (e.g. ``"{description}"``).
        system: template of the system message, or ``None`` for none.
        list_separator: joins list values.
        joins: per-field list separators, overriding ``list_separator``.
        max_chars: per-field length caps, cut at a word boundary.
        name: the step's name in reports.
    """

    user: str
    assistant: str
    system: str | None = None
    list_separator: str = "; "
    joins: dict[str, str] = attrs.field(factory=dict, converter=_joins)
    max_chars: dict[str, int] = attrs.field(factory=dict, converter=_caps)
    name: str = "template"

    def __attrs_post_init__(self) -> None:
        for role, template in self._templates():
            _parse(template, f"{role} template")
        for field, limit in self.max_chars.items():
            if limit < 1:
                raise ConfigError(f"max_chars[{field!r}] must be at least 1, not {limit}")

    def _templates(self) -> list[tuple[str, str]]:
        items = [("user", self.user), ("assistant", self.assistant)]
        if self.system is not None:
            items.insert(0, ("system", self.system))
        return items

    def _render_value(self, field: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            text = value.strip()
        elif isinstance(value, list):
            separator = self.joins.get(field, self.list_separator)
            items = (self._render_value(field, item) for item in value)
            text = separator.join(item for item in items if item)
        elif isinstance(value, Mapping):
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        else:
            text = str(value)
        limit = self.max_chars.get(field)
        return _cut(text, limit) if limit is not None else text

    def _fill(self, parts: tuple[_Part, ...], document: Document) -> str | _Slot:
        pieces: list[str] = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            rendered = ""
            for field in part.alternatives:
                rendered = self._render_value(field, lookup_field(document, field))
                if rendered:
                    break
            if not rendered and not part.optional:
                return part
            pieces.append(rendered)
        return "".join(pieces).strip()

    def transform(self, records: Iterable[Record]) -> Iterator[Example | Rejection]:
        """Yield one example per document, or a rejection naming the missing field."""
        parsed = [(role, _parse(text, f"{role} template")) for role, text in self._templates()]
        for record in records:
            if not isinstance(record, Document):
                yield Rejection(
                    record_id=record.id,
                    step=self.name,
                    reason="wrong_record_type",
                    message=f"{type(record).__name__} {record.id}: templates apply to documents",
                    location=record.location,
                )
                continue
            messages: list[Message] = []
            for role, parts in parsed:
                filled = self._fill(parts, record)
                if isinstance(filled, _Slot):
                    where = record.location.describe() if record.location else record.id
                    yield Rejection(
                        record_id=record.id,
                        step=self.name,
                        reason="missing_field",
                        message=(
                            f"{where}: no value for {{{filled.label}}} in the {role} template"
                        ),
                        location=record.location,
                        record=record.data if record.data is not None else record.text,
                        details={"fields": list(filled.alternatives), "role": role},
                    )
                    break
                messages.append(Message(role=role, content=filled))  # type: ignore[arg-type]
            else:
                yield Example(
                    messages=messages,
                    id=record.id,
                    parent_id=record.id,
                    location=record.location,
                )
