"""Select and rewrite the texts of records, shared by the text-curation steps.

A curation step works on:

- a :class:`~finetune_web.records.Document`'s ``text`` and the string values
  of the chosen ``fields`` of its ``data`` (dotted paths reach into nested
  objects; a list of strings is handled item by item);
- the message contents of an :class:`~finetune_web.records.Example` or
  :class:`~finetune_web.records.Preference` whose role is among the chosen
  ``roles`` (the ``text`` of every content part, for multimodal contents).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

import attrs

from finetune_web._types import ROLES
from finetune_web.errors import ConfigError
from finetune_web.records import Document, Message, Preference, Record, Rejection

__all__ = [
    "ALL_ROLES",
    "TEXT_ROLES",
    "check_fields",
    "check_roles",
    "map_message",
    "map_texts",
    "reject",
    "selected_texts",
    "where",
]

#: Every chat role.
ALL_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool", "function")

#: The roles that hold prose (tool and function results often hold JSON).
TEXT_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant")

TextFn = Callable[[str], str]


def check_roles(value: Iterable[str] | str) -> tuple[str, ...]:
    """Converter: a non-empty tuple of chat roles.

    Raises:
        ConfigError: a role is unknown or none is given.
    """
    roles = (value,) if isinstance(value, str) else tuple(value)
    unknown = sorted(set(roles) - ROLES)
    if unknown or not roles:
        raise ConfigError(f"roles must be chat roles from {sorted(ROLES)}, got {list(roles)!r}")
    return roles


def check_fields(value: Iterable[str] | str) -> tuple[str, ...]:
    """Converter: a tuple of dotted data paths (``"description"``, ``"details.summary"``).

    Raises:
        ConfigError: a path is empty or has an empty part.
    """
    fields = (value,) if isinstance(value, str) else tuple(value)
    for path in fields:
        if not isinstance(path, str) or not all(path.split(".")):
            raise ConfigError(f"fields must be dotted paths like 'details.summary', got {path!r}")
    return fields


def where(record: Record) -> str:
    """Return ``<id> (<location>)`` for messages, or the id when the location is unknown."""
    if record.location is None:
        return f"record {record.id}"
    return f"record {record.id} ({record.location.describe()})"


def reject(
    step: str, record: Record, reason: str, message: str, details: dict[str, Any] | None = None
) -> Rejection:
    """Return the rejection of ``record`` by ``step``, its message prefixed with where it is."""
    return Rejection(
        record_id=record.id,
        step=step,
        reason=reason,
        message=f"{where(record)}: {message}",
        location=record.location,
        details=details or {},
    )


def _value_texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        yield from (item for item in value if isinstance(item, str))


def _path_texts(data: Any, keys: Sequence[str]) -> Iterator[str]:
    if not isinstance(data, dict) or keys[0] not in data:
        return
    if len(keys) == 1:
        yield from _value_texts(data[keys[0]])
    else:
        yield from _path_texts(data[keys[0]], keys[1:])


def _message_texts(message: Message) -> Iterator[str]:
    content = message.content
    if isinstance(content, str):
        yield content
    elif content is not None:
        yield from (part["text"] for part in content if isinstance(part.get("text"), str))


def selected_texts(
    record: Record, *, roles: Collection[str], fields: Sequence[str]
) -> Iterator[str]:
    """Yield the texts a curation step looks at, in record order.

    Args:
        record: a document, example or preference.
        roles: for examples and preferences, the roles whose contents count.
        fields: for documents, the dotted data paths whose strings count.

    Returns:
        The document text (when not ``None``) then each chosen field's strings;
        or the content of each message in a chosen role.
    """
    if isinstance(record, Document):
        if record.text is not None:
            yield record.text
        for path in fields:
            yield from _path_texts(record.data, path.split("."))
        return
    messages = record.messages
    if isinstance(record, Preference):
        messages = (*messages, record.preferred, record.non_preferred)
    for message in messages:
        if message.role in roles:
            yield from _message_texts(message)


def _map_value(value: Any, fn: TextFn) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list | tuple):
        mapped = [fn(item) if isinstance(item, str) else item for item in value]
        return mapped if mapped != list(value) else value
    return value


def _map_path(data: dict[str, Any], keys: Sequence[str], fn: TextFn) -> dict[str, Any]:
    head = keys[0]
    if head not in data:
        return data
    value = data[head]
    if len(keys) == 1:
        new = _map_value(value, fn)
    elif isinstance(value, dict):
        new = _map_path(value, keys[1:], fn)
    else:
        return data
    if new is value or new == value:
        return data
    return {**data, head: new}


def map_message(message: Message, fn: TextFn) -> Message:
    """Return ``message`` with ``fn`` applied to its content (each text part of a list)."""
    content = message.content
    if isinstance(content, str):
        new = fn(content)
        return message if new == content else attrs.evolve(message, content=new)
    if content is None:
        return message
    parts = tuple(
        {**part, "text": fn(part["text"])} if isinstance(part.get("text"), str) else part
        for part in content
    )
    return message if parts == content else attrs.evolve(message, content=parts)


def map_texts(
    record: Record, fn: TextFn, *, roles: Collection[str], fields: Sequence[str]
) -> Record:
    """Return ``record`` with ``fn`` applied to every text :func:`selected_texts` yields.

    ``fn`` is called once per text, in the order :func:`selected_texts` yields
    them.  The record itself is returned when no text changes.

    Args:
        record: a document, example or preference.
        fn: the rewrite.
        roles: for examples and preferences, the roles whose contents are rewritten.
        fields: for documents, the dotted data paths whose strings are rewritten.

    Returns:
        The rewritten record (same id, location and metadata).
    """
    if isinstance(record, Document):
        text = fn(record.text) if record.text is not None else None
        data = record.data
        if data is not None:
            for path in fields:
                data = _map_path(data, path.split("."), fn)
        if text == record.text and data is record.data:
            return record
        return attrs.evolve(record, text=text, data=data)

    def rewrite(message: Message) -> Message:
        return map_message(message, fn) if message.role in roles else message

    messages = tuple(rewrite(m) for m in record.messages)
    if isinstance(record, Preference):
        preferred, non_preferred = rewrite(record.preferred), rewrite(record.non_preferred)
        if (messages, preferred, non_preferred) == (
            record.messages,
            record.preferred,
            record.non_preferred,
        ):
            return record
        return attrs.evolve(
            record, messages=messages, preferred=preferred, non_preferred=non_preferred
        )
    if messages == record.messages:
        return record
    return attrs.evolve(record, messages=messages)
