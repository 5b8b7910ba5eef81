"""Hypothesis strategies for finetune_web records, shared by the whole test suite."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from finetune_web.records import Example, Message, ToolCall

__all__ = [
    "chat_examples",
    "contents",
    "conversations",
    "json_arguments",
    "names",
    "tool_definitions",
]

#: Non-empty message text, any Unicode (surrogates excluded, as in real JSON text).
contents = st.text(min_size=1, max_size=30)

#: Participant and function names.
names = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd"), max_codepoint=0x24F),
    min_size=1,
    max_size=12,
)

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=10))

#: A tool call's arguments: a JSON object as a string.
json_arguments = st.dictionaries(st.text(max_size=8), _scalars, max_size=3).map(
    lambda value: json.dumps(value, ensure_ascii=False)
)


@st.composite
def tool_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """A ``{"type": "function", "function": {...}}`` tool definition."""
    function: dict[str, Any] = {"name": draw(names)}
    if draw(st.booleans()):
        function["description"] = draw(contents)
    if draw(st.booleans()):
        properties = draw(st.dictionaries(names, st.just({"type": "string"}), max_size=3))
        function["parameters"] = {"type": "object", "properties": properties}
    return {"type": "function", "function": function}


def _user_content() -> st.SearchStrategy[Any]:
    parts = st.lists(
        contents.map(lambda text: {"type": "text", "text": text}), min_size=1, max_size=3
    )
    return st.one_of(contents, parts)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    """A valid chat conversation: system?, then turns ending with an assistant answer.

    Turns may call tools (assistant ``tool_calls`` answered by ``tool`` messages),
    carry ``name`` and ``weight``, and use content-part lists for user text.
    """
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(Message(role="system", content=draw(contents)))
    for turn in range(draw(st.integers(1, 3))):
        name = draw(st.none() | names)
        messages.append(Message(role="user", content=draw(_user_content()), name=name))
        if draw(st.booleans()):
            count = draw(st.integers(1, 2))
            calls = [
                ToolCall(id=f"call_{turn}_{n}", name=draw(names), arguments=draw(json_arguments))
                for n in range(count)
            ]
            messages.append(
                Message(role="assistant", content=draw(st.none() | contents), tool_calls=calls)
            )
            messages.extend(
                Message(role="tool", content=draw(contents), tool_call_id=call.id) for call in calls
            )
        messages.append(
            Message(
                role="assistant",
                content=draw(contents),
                name=draw(st.none() | names),
                weight=draw(st.sampled_from([None, 0, 1])),
            )
        )
    return tuple(messages)


@st.composite
def chat_examples(draw: st.DrawFn) -> Example:
    """A valid chat fine-tuning example (no id or location: as parsed without context)."""
    return Example(
        messages=draw(conversations()),
        tools=draw(st.none() | st.lists(tool_definitions(), max_size=2)),
        parallel_tool_calls=draw(st.none() | st.booleans()),
    )
