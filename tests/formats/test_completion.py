"""Tests for legacy prompt/completion JSONL and the chat-to-completion conversion."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetune_web.errors import RecordError
from finetune_web.formats import (
    completion_from_json,
    example_to_completion,
    read_completion_jsonl,
    write_completion_jsonl,
)
from finetune_web.records import Example, Message, Rejection, ToolCall


def test_line_becomes_a_two_message_example() -> None:
    """A prompt/completion line is a user message followed by an assistant message."""
    example = completion_from_json({"prompt": "2+2=", "completion": " 4"}, record_id="c#0")
    assert example.messages == (
        Message(role="user", content="2+2="),
        Message(role="assistant", content=" 4"),
    )
    assert example.id == "c#0"
    assert example_to_completion(example) == {"prompt": "2+2=", "completion": " 4"}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ("x", "data_type"),
        ({"prompt": "a", "completion": "b", "extra": 1}, "unrecognized_key"),
        ({"completion": "b"}, "missing_prompt"),
        ({"prompt": 1, "completion": "b"}, "missing_prompt"),
        ({"prompt": "a"}, "missing_completion"),
        ({"prompt": "a", "completion": ""}, "missing_completion"),
    ],
)
def test_invalid_lines_get_reasons(obj: Any, reason: str) -> None:
    """Each malformed prompt/completion line raises RecordError with its reason code."""
    with pytest.raises(RecordError) as info:
        completion_from_json(obj)
    assert info.value.reason == reason


def test_system_message_is_put_before_the_prompt() -> None:
    """[system, user, assistant] converts with the system text and a blank line first."""
    example = Example(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hi"),
            Message(role="assistant", content="Hello"),
        ]
    )
    assert example_to_completion(example) == {"prompt": "Be brief.\n\nHi", "completion": "Hello"}


@pytest.mark.parametrize(
    "messages",
    [
        [Message(role="user", content="a")],
        [
            Message(role="user", content="a"),
            Message(role="assistant", content="b"),
            Message(role="user", content="c"),
            Message(role="assistant", content="d"),
        ],
        [
            Message(role="user", content="a"),
            Message(role="assistant", tool_calls=[ToolCall(id="c", name="f", arguments="{}")]),
        ],
        [Message(role="user", content="a", name="bob"), Message(role="assistant", content="b")],
        [Message(role="user", content="a"), Message(role="assistant", content="b", weight=0)],
        [
            Message(role="user", content=[{"type": "text", "text": "a"}]),
            Message(role="assistant", content="b"),
        ],
    ],
)
def test_unconvertible_examples_raise(messages: list[Message]) -> None:
    """Multi-turn, tool, named, weight-0 and content-part examples have no completion form."""
    with pytest.raises(RecordError) as info:
        example_to_completion(Example(messages=messages, id="e#1"))
    assert info.value.reason == "not_convertible"


def test_read_write_round_trip(write_lines: Callable[..., Path], tmp_path: Path) -> None:
    """Reading then writing a prompt/completion file reproduces its valid lines exactly."""
    lines = [{"prompt": "Q: ünïcode?\nA:", "completion": " yes"}, {"prompt": "", "completion": "x"}]
    path = write_lines([*lines, {"prompt": "no completion"}], name="legacy.jsonl")
    records = list(read_completion_jsonl(path))
    assert isinstance(records[2], Rejection)
    assert f"{path}:3" in records[2].message
    out = tmp_path / "out.jsonl"
    write_completion_jsonl([r for r in records if isinstance(r, Example)], out)
    expected = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    assert expected.encode("utf-8") == out.read_bytes()


def test_write_refuses_unconvertible_and_leaves_no_file(tmp_path: Path) -> None:
    """A multi-turn example stops the write with not_convertible; no partial file remains."""
    bad = Example(messages=[Message(role="user", content="a")] * 2)
    out = tmp_path / "out.jsonl"
    with pytest.raises(RecordError):
        write_completion_jsonl([bad], out)
    assert list(tmp_path.iterdir()) == []
