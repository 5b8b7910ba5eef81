"""Legacy prompt/completion JSONL (``{"prompt": ..., "completion": ...}``).

babbage-002 and davinci-002 take this format.  A line is represented as a
two-message :class:`~finetune_web.records.Example` (user = prompt,
assistant = completion), so the rest of the package handles one record type.
Reasons: ``data_type``, ``unrecognized_key``, ``missing_prompt``,
``missing_completion``; :func:`example_to_completion` raises ``not_convertible``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from finetune_web._types import StrPath
from finetune_web.formats._jsonl import (
    WriteResult,
    context_of,
    fail,
    json_type,
    read_jsonl,
    write_records,
)
from finetune_web.records import Example, Location, Message, Rejection

__all__ = [
    "completion_from_json",
    "example_to_completion",
    "read_completion_jsonl",
    "write_completion_jsonl",
]

_KEYS = frozenset(("prompt", "completion"))


def completion_from_json(
    obj: object,
    *,
    location: Location | None = None,
    index: int | None = None,
    record_id: str = "",
) -> Example:
    """Build a two-message example from one decoded prompt/completion line.

    Args:
        obj: the decoded JSON value.
        location: where the line is.
        index: the record's 0-based position, for errors.
        record_id: the id given to the example.

    Returns:
        An example with a user message (the prompt) and an assistant message
        (the completion).

    Raises:
        RecordError: the value is not ``{"prompt": str, "completion": non-empty str}``.
    """
    ctx = context_of(location, index, record_id)
    if not isinstance(obj, dict):
        fail("data_type", f"each line must be a JSON object, not {json_type(obj)}", ctx)
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        fail("unrecognized_key", f"unrecognized key(s) {unknown}; allowed: completion, prompt", ctx)
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if not isinstance(prompt, str):
        fail("missing_prompt", f"'prompt' must be a string, not {json_type(prompt)}", ctx)
    if not isinstance(completion, str) or not completion:
        fail("missing_completion", "'completion' must be a non-empty string", ctx)
    return Example(
        messages=(
            Message(role="user", content=prompt),
            Message(role="assistant", content=completion),
        ),
        id=record_id,
        location=location,
    )


def example_to_completion(example: Example) -> dict[str, Any]:
    """Return an example as ``{"prompt", "completion"}``.

    The example must be ``[system?, user, assistant]`` with plain-text
    content and no names, tools or tool calls; a system message is put
    before the user's text, separated by a blank line.

    Raises:
        RecordError: ``not_convertible``, saying what stands in the way.
    """
    ctx = context_of(example.location, None, example.id)
    messages = list(example.messages)
    system = messages.pop(0).content if messages and messages[0].role == "system" else None
    roles = [message.role for message in messages]
    if roles != ["user", "assistant"]:
        fail("not_convertible", f"needs [system?, user, assistant] messages, got {roles}", ctx)
    if example.tools or any(
        m.tool_calls or m.name is not None or m.weight == 0 or not isinstance(m.content, str)
        for m in example.messages
    ):
        fail(
            "not_convertible",
            "names, tools, weight 0 and content parts have no prompt/completion form",
            ctx,
        )
    prompt = messages[0].text if system is None else f"{system}\n\n{messages[0].text}"
    return {"prompt": prompt, "completion": messages[1].text}


def read_completion_jsonl(
    path: StrPath, *, encoding: str | None = None
) -> Iterator[Example | Rejection]:
    """Stream a prompt/completion JSONL file as two-message examples.

    Ids, locations and rejections work as in
    :func:`~finetune_web.formats.read_chat_jsonl`.

    Raises:
        SourceError: the file cannot be opened.
    """
    return read_jsonl(
        path,
        lambda obj, loc, rid: completion_from_json(obj, location=loc, record_id=rid),
        step="read_completion_jsonl",
        encoding=encoding,
    )


def write_completion_jsonl(records: Iterable[Example], path: StrPath) -> WriteResult:
    """Write examples as prompt/completion JSONL.

    Raises:
        RecordError: an example has no prompt/completion form (the file is not written).
    """
    return write_records(records, example_to_completion, path)
