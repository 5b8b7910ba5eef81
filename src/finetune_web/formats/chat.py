"""OpenAI chat fine-tuning JSONL: parse, check, write.

One line holds ``{"messages": [...], "tools"?: [...], "parallel_tool_calls"?: bool}``.
:func:`example_from_json` accepts exactly what the service accepts and
raises :class:`~finetune_web.errors.RecordError` with a stable ``reason``
otherwise.  Reasons shared with OpenAI's data-prep guide: ``data_type``,
``missing_messages_list``, ``message_missing_key``,
``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
``example_missing_assistant_message``.  Our own: ``empty_messages``,
``unrecognized_key``, ``invalid_name``, ``invalid_weight``,
``invalid_tool_calls``, ``tool_message_without_call``, ``invalid_tools``,
``invalid_parallel_tool_calls``; the readers add ``invalid_json``,
``invalid_encoding`` and ``record_too_large``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, cast

from finetune_web._types import ROLES, Role, StrPath
from finetune_web.errors import ErrorContext, RecordError
from finetune_web.formats._jsonl import (
    WriteResult,
    context_of,
    fail,
    json_type,
    read_jsonl,
    write_records,
)
from finetune_web.formats.completion import read_completion_jsonl
from finetune_web.formats.models import ModelFormat
from finetune_web.records import Example, Location, Message, Rejection, ToolCall

__all__ = [
    "example_from_json",
    "example_to_json",
    "message_to_json",
    "messages_from_json",
    "read_chat_jsonl",
    "read_training_file",
    "tools_from_json",
    "write_chat_jsonl",
]

_EXAMPLE_KEYS = frozenset(("messages", "tools", "parallel_tool_calls"))
_MESSAGE_KEYS = frozenset(("role", "content", "name", "tool_calls", "tool_call_id", "weight"))
_CALL_KEYS = frozenset(("id", "type", "function"))
_TOOL_FUNCTION_KEYS = frozenset(("name", "description", "parameters", "strict"))
_HINTS = {
    "function_call": " (legacy function calling: use tool_calls instead)",
    "functions": " (legacy function definitions: use tools instead)",
}


def _unknown_keys(obj: dict[str, Any], allowed: frozenset[str]) -> str | None:
    unknown = sorted(set(obj) - allowed)
    if not unknown:
        return None
    hints = "".join(_HINTS.get(key, "") for key in unknown)
    return f"{', '.join(map(repr, unknown))}{hints}; allowed: {', '.join(sorted(allowed))}"


def _tool_calls(value: object, where: str, ctx: ErrorContext) -> tuple[ToolCall, ...]:
    if not isinstance(value, list) or not value:
        fail("invalid_tool_calls", f"{where}.tool_calls must be a non-empty array", ctx)
    calls = []
    for number, call in enumerate(value):
        at = f"{where}.tool_calls[{number}]"
        if not isinstance(call, dict):
            fail("invalid_tool_calls", f"{at} must be an object, not {json_type(call)}", ctx)
        unknown = _unknown_keys(call, _CALL_KEYS)
        if unknown:
            fail("invalid_tool_calls", f"{at} has unrecognized key(s) {unknown}", ctx)
        call_id, kind, function = call.get("id"), call.get("type"), call.get("function")
        if not isinstance(call_id, str) or not call_id:
            fail("invalid_tool_calls", f"{at}.id must be a non-empty string", ctx)
        if kind != "function":
            fail("invalid_tool_calls", f'{at}.type must be "function", not {kind!r}', ctx)
        if not isinstance(function, dict) or set(function) != {"name", "arguments"}:
            fail("invalid_tool_calls", f"{at}.function must be {{name, arguments}}", ctx)
        name, arguments = function["name"], function["arguments"]
        if not isinstance(name, str) or not name:
            fail("invalid_tool_calls", f"{at}.function.name must be a non-empty string", ctx)
        if not isinstance(arguments, str):
            fail("invalid_tool_calls", f"{at}.function.arguments must be a JSON string", ctx)
        try:
            json.loads(arguments)
        except json.JSONDecodeError as exc:
            fail("invalid_tool_calls", f"{at}.function.arguments is not JSON: {exc.msg}", ctx)
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return tuple(calls)


def _content(value: object, where: str, calls: bool, ctx: ErrorContext) -> Any:
    if value is None or value == "":
        if calls:
            return value or None
        fail("missing_content", f"{where} has no content (only tool-calling assistants may)", ctx)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        for number, part in enumerate(value):
            at = f"{where}.content[{number}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                fail("missing_content", f"{at} must be an object with a string 'type'", ctx)
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                fail("missing_content", f"{at} is a text part without a string 'text'", ctx)
        return value
    raise RecordError(
        f"{where}.content must be a non-empty string or array of parts, not {json_type(value)}",
        ctx,
        reason="missing_content",
    )


def _message(obj: object, where: str, call_ids: set[str], ctx: ErrorContext) -> Message:
    if not isinstance(obj, dict):
        fail("data_type", f"{where} must be an object, not {json_type(obj)}", ctx)
    if "role" not in obj:
        fail("message_missing_key", f"{where} has no 'role'", ctx)
    unknown = _unknown_keys(obj, _MESSAGE_KEYS)
    if unknown:
        fail("message_unrecognized_key", f"{where} has unrecognized key(s) {unknown}", ctx)
    role = obj["role"]
    if not isinstance(role, str) or role not in ROLES:
        fail("unrecognized_role", f"{where} has role {role!r}; use one of {sorted(ROLES)}", ctx)
    calls: tuple[ToolCall, ...] = ()
    if "tool_calls" in obj:
        if role != "assistant":
            fail("invalid_tool_calls", f"{where} is a {role} message: only assistants call", ctx)
        calls = _tool_calls(obj["tool_calls"], where, ctx)
    if "content" not in obj and not calls:
        fail("message_missing_key", f"{where} has no 'content'", ctx)
    content = _content(obj.get("content"), where, bool(calls), ctx)
    name = obj.get("name")
    if "name" in obj and (not isinstance(name, str) or not name):
        fail("invalid_name", f"{where}.name must be a non-empty string", ctx)
    weight = obj.get("weight")
    if "weight" in obj and (role != "assistant" or type(weight) is not int or weight not in (0, 1)):
        fail("invalid_weight", f"{where}.weight must be 0 or 1, on assistant messages only", ctx)
    call_id = obj.get("tool_call_id")
    if "tool_call_id" in obj and (role != "tool" or not isinstance(call_id, str)):
        fail(
            "message_unrecognized_key",
            f"{where}.tool_call_id belongs on tool messages only, as a string",
            ctx,
        )
    if role == "tool" and call_id not in call_ids:
        problem = "has no tool_call_id" if call_id is None else f"answers unknown call {call_id!r}"
        fail(
            "tool_message_without_call",
            f"{where} {problem}; it must answer an earlier assistant tool call",
            ctx,
        )
    call_ids.update(call.id for call in calls)
    return Message(
        role=cast(Role, role),
        content=content,
        name=name,
        tool_calls=calls,
        tool_call_id=call_id,
        weight=weight,
    )


def messages_from_json(
    value: object, ctx: ErrorContext, *, where: str = "messages", call_ids: set[str] | None = None
) -> tuple[Message, ...]:
    """Parse and check a JSON array of chat messages.

    Args:
        value: the decoded ``messages`` value.
        ctx: where the record is, for errors.
        where: the path of the array in the record, for messages.
        call_ids: tool-call ids made earlier in the record (updated in place).

    Returns:
        The messages, in order.

    Raises:
        RecordError: the array or one of its messages is invalid.
    """
    if not isinstance(value, list):
        fail("missing_messages_list", f"'{where}' must be an array, not {json_type(value)}", ctx)
    if not value:
        fail("empty_messages", f"'{where}' is an empty array: add the conversation", ctx)
    seen = call_ids if call_ids is not None else set()
    return tuple(_message(item, f"{where}[{n}]", seen, ctx) for n, item in enumerate(value))


def tools_from_json(value: object, ctx: ErrorContext) -> tuple[dict[str, Any], ...]:
    """Parse and check a JSON array of tool definitions.

    Raises:
        RecordError: ``invalid_tools`` naming the first bad definition.
    """
    if not isinstance(value, list):
        fail("invalid_tools", f"'tools' must be an array, not {json_type(value)}", ctx)
    for number, tool in enumerate(value):
        at = f"tools[{number}]"
        if not isinstance(tool, dict) or set(tool) != {"type", "function"}:
            fail("invalid_tools", f'{at} must be {{"type": "function", "function": {{...}}}}', ctx)
        function = tool["function"]
        if tool["type"] != "function" or not isinstance(function, dict):
            fail("invalid_tools", f'{at} must be {{"type": "function", "function": {{...}}}}', ctx)
        unknown = _unknown_keys(function, _TOOL_FUNCTION_KEYS)
        if unknown:
            fail("invalid_tools", f"{at}.function has unrecognized key(s) {unknown}", ctx)
        if not isinstance(function.get("name"), str) or not function["name"]:
            fail("invalid_tools", f"{at}.function.name must be a non-empty string", ctx)
        if not isinstance(function.get("description", ""), str):
            fail("invalid_tools", f"{at}.function.description must be a string", ctx)
        if not isinstance(function.get("parameters", {}), dict):
            fail("invalid_tools", f"{at}.function.parameters must be a JSON schema object", ctx)
    return tuple(value)


def example_from_json(
    obj: object,
    *,
    location: Location | None = None,
    index: int | None = None,
    record_id: str = "",
) -> Example:
    """Build an :class:`~finetune_web.records.Example` from one decoded chat JSONL line.

    Args:
        obj: the decoded JSON value.
        location: where the line is (kept on the example, named in errors).
        index: the record's 0-based position, for errors (defaults to ``location.index``).
        record_id: the id given to the example.

    Returns:
        The example.

    Raises:
        RecordError: the value is not a valid chat example; ``reason`` says why.
    """
    ctx = context_of(location, index, record_id)
    if not isinstance(obj, dict):
        fail("data_type", f"each line must be a JSON object, not {json_type(obj)}", ctx)
    if "messages" not in obj:
        fail("missing_messages_list", "the object has no 'messages' array", ctx)
    unknown = _unknown_keys(obj, _EXAMPLE_KEYS)
    if unknown:
        fail("unrecognized_key", f"the example has unrecognized key(s) {unknown}", ctx)
    messages = messages_from_json(obj["messages"], ctx)
    if not any(message.role == "assistant" for message in messages):
        fail("example_missing_assistant_message", "the example has no assistant message", ctx)
    tools = tools_from_json(obj["tools"], ctx) if "tools" in obj else None
    parallel = obj.get("parallel_tool_calls")
    if "parallel_tool_calls" in obj and not isinstance(parallel, bool):
        fail("invalid_parallel_tool_calls", "'parallel_tool_calls' must be true or false", ctx)
    return Example(
        messages=messages,
        tools=tools,
        parallel_tool_calls=parallel,
        id=record_id,
        location=location,
    )


def message_to_json(message: Message) -> dict[str, Any]:
    """Return a message as OpenAI JSON, keys in a fixed order, absent fields left out."""
    out: dict[str, Any] = {"role": message.role}
    if isinstance(message.content, tuple):
        out["content"] = [dict(part) for part in message.content]
    elif message.content is not None:
        out["content"] = message.content
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": call.type,
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.weight is not None:
        out["weight"] = message.weight
    return out


def example_to_json(example: Example) -> dict[str, Any]:
    """Return an example as one chat JSONL object: messages, then tools, then the flag.

    ``id``, ``metadata``, ``location`` and ``split`` are not part of the format
    and are left out.
    """
    out: dict[str, Any] = {"messages": [message_to_json(m) for m in example.messages]}
    if example.tools is not None:
        out["tools"] = [dict(tool) for tool in example.tools]
    if example.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = example.parallel_tool_calls
    return out


def read_chat_jsonl(path: StrPath, *, encoding: str | None = None) -> Iterator[Example | Rejection]:
    """Stream the examples of a chat JSONL file, one per non-blank line.

    Example ``i`` gets the id ``<file name>#<i>`` and its location; a line that
    cannot be decoded, parsed or accepted becomes a
    :class:`~finetune_web.records.Rejection` naming the file and line.

    Args:
        path: the file.
        encoding: its codec; detected when ``None``.

    Raises:
        SourceError: the file cannot be opened.
    """
    return read_jsonl(
        path,
        lambda obj, loc, rid: example_from_json(obj, location=loc, record_id=rid),
        step="read_chat_jsonl",
        encoding=encoding,
    )


def write_chat_jsonl(records: Iterable[Example], path: StrPath) -> WriteResult:
    """Write examples as chat JSONL (canonical bytes: same examples, same file).

    Returns:
        The count, size and SHA-256 of the file.
    """
    return write_records(records, example_to_json, path)


def read_training_file(
    path: StrPath, *, format: ModelFormat = "chat", encoding: str | None = None
) -> Iterator[Example | Rejection]:
    """Stream a training file in a model's format (chat, or legacy prompt/completion).

    Raises:
        SourceError: the file cannot be opened.
    """
    if format == "completion":
        return read_completion_jsonl(path, encoding=encoding)
    return read_chat_jsonl(path, encoding=encoding)
