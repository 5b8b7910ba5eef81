"""OpenAI DPO (preference) JSONL: parse, check, write, convert.

One line holds ``{"input": {"messages": [...], "tools"?: [...]},
"preferred_output": [assistant message], "non_preferred_output": [assistant message]}``.
Messages are checked as in :mod:`finetune_web.formats.chat`; DPO adds the
reasons ``missing_input`` and ``invalid_output``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from finetune_web._types import StrPath
from finetune_web.errors import ErrorContext
from finetune_web.formats._jsonl import (
    WriteResult,
    context_of,
    fail,
    json_type,
    read_jsonl,
    write_records,
)
from finetune_web.formats.chat import message_to_json, messages_from_json, tools_from_json
from finetune_web.records import Example, Location, Message, Preference, Rejection

__all__ = [
    "preference_from_json",
    "preference_to_example",
    "preference_to_json",
    "read_dpo_jsonl",
    "write_dpo_jsonl",
]

_KEYS = frozenset(("input", "preferred_output", "non_preferred_output"))
_INPUT_KEYS = frozenset(("messages", "tools"))


def _output(obj: dict[str, Any], key: str, call_ids: set[str], ctx: ErrorContext) -> Message:
    value = obj.get(key)
    if not isinstance(value, list) or len(value) != 1:
        fail("invalid_output", f"'{key}' must be an array of exactly one assistant message", ctx)
    (message,) = messages_from_json(value, ctx, where=key, call_ids=set(call_ids))
    if message.role != "assistant":
        fail("invalid_output", f"'{key}' holds a {message.role} message, not an assistant", ctx)
    return message


def preference_from_json(
    obj: object,
    *,
    location: Location | None = None,
    index: int | None = None,
    record_id: str = "",
) -> Preference:
    """Build a :class:`~finetune_web.records.Preference` from one decoded DPO line.

    Args:
        obj: the decoded JSON value.
        location: where the line is.
        index: the record's 0-based position, for errors.
        record_id: the id given to the preference.

    Returns:
        The preference pair.

    Raises:
        RecordError: the value is not a valid DPO example; ``reason`` says why.
    """
    ctx = context_of(location, index, record_id)
    if not isinstance(obj, dict):
        fail("data_type", f"each line must be a JSON object, not {json_type(obj)}", ctx)
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        fail("unrecognized_key", f"unrecognized key(s) {unknown}; allowed: {sorted(_KEYS)}", ctx)
    prompt = obj.get("input")
    if not isinstance(prompt, dict) or "messages" not in prompt:
        fail("missing_input", "'input' must be an object with a 'messages' array", ctx)
    unknown = sorted(set(prompt) - _INPUT_KEYS)
    if unknown:
        fail("unrecognized_key", f"'input' has unrecognized key(s) {unknown}", ctx)
    call_ids: set[str] = set()
    messages = messages_from_json(
        prompt["messages"], ctx, where="input.messages", call_ids=call_ids
    )
    tools = tools_from_json(prompt["tools"], ctx) if "tools" in prompt else None
    return Preference(
        messages=messages,
        preferred=_output(obj, "preferred_output", call_ids, ctx),
        non_preferred=_output(obj, "non_preferred_output", call_ids, ctx),
        tools=tools,
        id=record_id,
        location=location,
    )


def preference_to_json(preference: Preference) -> dict[str, Any]:
    """Return a preference as one DPO JSONL object, keys in a fixed order."""
    prompt: dict[str, Any] = {"messages": [message_to_json(m) for m in preference.messages]}
    if preference.tools is not None:
        prompt["tools"] = [dict(tool) for tool in preference.tools]
    return {
        "input": prompt,
        "preferred_output": [message_to_json(preference.preferred)],
        "non_preferred_output": [message_to_json(preference.non_preferred)],
    }


def preference_to_example(preference: Preference) -> Example:
    """Return the supervised example of a preference: the prompt and the preferred answer.

    The example keeps the preference's id, metadata, location and split.
    """
    return Example(
        messages=(*preference.messages, preference.preferred),
        tools=preference.tools,
        id=preference.id,
        parent_id=preference.parent_id,
        metadata=preference.metadata,
        location=preference.location,
        split=preference.split,
    )


def read_dpo_jsonl(
    path: StrPath, *, encoding: str | None = None
) -> Iterator[Preference | Rejection]:
    """Stream the preference pairs of a DPO JSONL file, one per non-blank line.

    Ids, locations and rejections work as in
    :func:`~finetune_web.formats.read_chat_jsonl`.

    Raises:
        SourceError: the file cannot be opened.
    """
    return read_jsonl(
        path,
        lambda obj, loc, rid: preference_from_json(obj, location=loc, record_id=rid),
        step="read_dpo_jsonl",
        encoding=encoding,
    )


def write_dpo_jsonl(records: Iterable[Preference], path: StrPath) -> WriteResult:
    """Write preference pairs as DPO JSONL (canonical bytes).

    Returns:
        The count, size and SHA-256 of the file.
    """
    return write_records(records, preference_to_json, path)
