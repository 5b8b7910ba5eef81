"""Tests for chat JSONL parsing, checking, reading and writing."""

from __future__ import annotations

import hashlib
import json
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings

from finetune_web.errors import ConfigError, RecordError
from finetune_web.formats import (
    JsonlWriter,
    example_from_json,
    example_to_json,
    read_chat_jsonl,
    write_chat_jsonl,
)
from finetune_web.formats._jsonl import write_jsonl
from finetune_web.records import Example, Location, Message, Rejection, ToolCall
from tests.strategies import chat_examples

USER = {"role": "user", "content": "Hi"}
ANSWER = {"role": "assistant", "content": "Hello"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _reason(obj: Any) -> str:
    with pytest.raises(RecordError) as info:
        example_from_json(obj, location=Location(origin="d.jsonl", line=7, index=3))
    assert "d.jsonl:7" in str(info.value)
    return info.value.reason


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1, 2], "data_type"),
        ("str", "data_type"),
        ({"messages": [USER, "not a message", ANSWER]}, "data_type"),
        ({"prompt": "x"}, "missing_messages_list"),
        ({"messages": {"role": "user"}}, "missing_messages_list"),
        ({"messages": []}, "empty_messages"),
        ({"messages": [{"content": "x"}, ANSWER]}, "message_missing_key"),
        ({"messages": [{"role": "user"}, ANSWER]}, "message_missing_key"),
        ({"messages": [USER, {**ANSWER, "extra": 1}]}, "message_unrecognized_key"),
        ({"messages": [USER, {**ANSWER, "function_call": {}}]}, "message_unrecognized_key"),
        ({"messages": [{"role": "robot", "content": "x"}, ANSWER]}, "unrecognized_role"),
        ({"messages": [{"role": ["user"], "content": "x"}, ANSWER]}, "unrecognized_role"),
        ({"messages": [{"role": "user", "content": 5}, ANSWER]}, "missing_content"),
        ({"messages": [{"role": "user", "content": ""}, ANSWER]}, "missing_content"),
        ({"messages": [{"role": "user", "content": None}, ANSWER]}, "missing_content"),
        ({"messages": [{"role": "user", "content": []}, ANSWER]}, "missing_content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}, ANSWER]},
            "missing_content",
        ),
        ({"messages": [USER]}, "example_missing_assistant_message"),
        ({"messages": [USER, ANSWER], "functions": []}, "unrecognized_key"),
        ({"messages": [USER, {**ANSWER, "name": ""}]}, "invalid_name"),
        ({"messages": [USER, {**ANSWER, "weight": 2}]}, "invalid_weight"),
        ({"messages": [USER, {**ANSWER, "weight": True}]}, "invalid_weight"),
        ({"messages": [{**USER, "weight": 1}, ANSWER]}, "invalid_weight"),
        ({"messages": [USER, {"role": "assistant", "tool_calls": []}]}, "invalid_tool_calls"),
        ({"messages": [{**USER, "tool_calls": [CALL]}, ANSWER]}, "invalid_tool_calls"),
        (
            {"messages": [USER, {"role": "assistant", "tool_calls": [{**CALL, "type": "x"}]}]},
            "invalid_tool_calls",
        ),
        (
            {
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{"}}],
                    },
                ]
            },
            "invalid_tool_calls",
        ),
        (
            {"messages": [USER, {"role": "tool", "content": "r", "tool_call_id": "nope"}, ANSWER]},
            "tool_message_without_call",
        ),
        (
            {"messages": [USER, {"role": "tool", "content": "r"}, ANSWER]},
            "tool_message_without_call",
        ),
        ({"messages": [{**USER, "tool_call_id": "x"}, ANSWER]}, "message_unrecognized_key"),
        ({"messages": [USER, ANSWER], "tools": {}}, "invalid_tools"),
        ({"messages": [USER, ANSWER], "tools": [{"type": "function"}]}, "invalid_tools"),
        (
            {"messages": [USER, ANSWER], "tools": [{"type": "function", "function": {}}]},
            "invalid_tools",
        ),
        ({"messages": [USER, ANSWER], "parallel_tool_calls": "yes"}, "invalid_parallel_tool_calls"),
    ],
)
def test_invalid_examples_get_precise_reasons(obj: Any, reason: str) -> None:
    """Each kind of invalid example raises RecordError with its code and names file:line."""
    assert _reason(obj) == reason


def test_tool_calling_example_is_valid() -> None:
    """Assistant with null content + tool_calls, tool answer, weight, name, tools, flag: valid."""
    obj = {
        "messages": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Paris?", "name": "bob"},
            {"role": "assistant", "content": None, "tool_calls": [CALL], "weight": 0},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
            {"role": "assistant", "content": "Sunny.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "parallel_tool_calls": False,
    }
    example = example_from_json(obj, record_id="x#0")
    assert example.id == "x#0"
    assert example.messages[2].tool_calls == (ToolCall(id="call_1", name="f", arguments="{}"),)
    assert example.messages[2].content is None
    assert example.messages[3].tool_call_id == "call_1"
    assert example.parallel_tool_calls is False
    assert example.tools == ({"type": "function", "function": {"name": "f", "parameters": {}}},)


def test_example_to_json_has_a_stable_key_order() -> None:
    """messages first; in a message role, content, name, tool_calls, tool_call_id, weight."""
    message = Message(
        role="assistant",
        content="x",
        name="n",
        tool_calls=[ToolCall(id="c", name="f", arguments="{}")],
        weight=1,
    )
    example = Example(messages=[message], tools=[], parallel_tool_calls=True)
    out = example_to_json(example)
    assert list(out) == ["messages", "tools", "parallel_tool_calls"]
    assert list(out["messages"][0]) == ["role", "content", "name", "tool_calls", "weight"]
    assert out["messages"][0]["tool_calls"] == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert list(example_to_json(Example(messages=[Message(role="user", content="q")]))) == [
        "messages"
    ]


@settings(max_examples=150, deadline=None)
@given(chat_examples())
def test_json_line_round_trip_is_identity(example: Example) -> None:
    """example -> JSON line -> example gives the same example (tools, calls, weight, unicode)."""
    line = json.dumps(example_to_json(example), ensure_ascii=False)
    assert example_from_json(json.loads(line)) == example


@settings(max_examples=30, deadline=None)
@given(chat_examples())
def test_file_round_trip_and_canonical_bytes(example: Example) -> None:
    """Writing then reading gives the examples back, and rewriting gives identical bytes."""
    with tempfile.TemporaryDirectory() as folder:
        first, second = Path(folder) / "a.jsonl", Path(folder) / "b.jsonl"
        result = write_chat_jsonl([example, example], first)
        read = list(read_chat_jsonl(first))
        assert [r for r in read if isinstance(r, Rejection)] == []
        bare = [attrs.evolve(r, id="", location=None) for r in read if isinstance(r, Example)]
        assert bare == [example, example]
        write_chat_jsonl(read, second)  # type: ignore[arg-type]
        assert first.read_bytes() == second.read_bytes()
        assert result.count == 2
        assert result.bytes == first.stat().st_size
        assert result.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()


def test_write_style_is_canonical(tmp_path: Path) -> None:
    """Lines use ", "/": " separators, raw UTF-8 (no \\u escapes) and \\n endings."""
    example = Example(
        messages=[
            Message(role="user", content="Grüß 東京"),
            Message(role="assistant", content="ok"),
        ]
    )
    path = tmp_path / "out.jsonl"
    write_chat_jsonl([example], path)
    expected = (
        '{"messages": [{"role": "user", "content": "Grüß 東京"}, '
        '{"role": "assistant", "content": "ok"}]}\n'
    )
    assert path.read_bytes() == expected.encode("utf-8")
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_lone_surrogate_is_escaped_and_reads_back(tmp_path: Path) -> None:
    """A string that cannot be UTF-8 (lone surrogate) is written escaped and reads back equal."""
    example = Example(
        messages=[
            Message(role="user", content="bad \ud800 char"),
            Message(role="assistant", content="ok"),
        ]
    )
    path = tmp_path / "s.jsonl"
    write_chat_jsonl([example], path)
    assert b"\\ud800" in path.read_bytes()
    (read,) = read_chat_jsonl(path)
    assert isinstance(read, Example)
    assert read.messages == example.messages


def test_reader_sets_ids_and_locations(write_lines: Callable[..., Path]) -> None:
    """Ids are <name>#<index> over non-blank lines; locations keep the 1-based line."""
    good = {"messages": [USER, ANSWER]}
    path = write_lines([good, "", "   ", good], name="set.jsonl")
    records = list(read_chat_jsonl(path))
    assert [r.id for r in records if isinstance(r, Example)] == ["set.jsonl#0", "set.jsonl#1"]
    assert [r.location for r in records] == [
        Location(origin=str(path), line=1, index=0),
        Location(origin=str(path), line=4, index=1),
    ]


def test_bad_lines_become_rejections_and_no_line_is_lost(write_lines: Callable[..., Path]) -> None:
    """Every malformed line is a rejection naming file:line, keeping its text; none is lost."""
    good = {"messages": [USER, ANSWER]}
    lines: list[Any] = [
        good,
        '{"messages": [',
        [1, 2],
        '"str"',
        {"nothing": 1},
        {"messages": []},
        {"messages": [{"role": "user", "content": 5}, ANSWER]},
        {"messages": [{"role": "robot", "content": "x"}, ANSWER]},
        {"messages": [USER]},
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',
        "",
        good,
    ]
    path = write_lines(lines, name="bad.jsonl")
    records = list(read_chat_jsonl(path))
    rejections = [r for r in records if isinstance(r, Rejection)]
    examples = [r for r in records if isinstance(r, Example)]
    assert len(examples) + len(rejections) == 11  # non-blank lines
    assert [r.reason for r in rejections] == [
        "invalid_json",
        "data_type",
        "data_type",
        "missing_messages_list",
        "empty_messages",
        "missing_content",
        "unrecognized_role",
        "example_missing_assistant_message",
        "invalid_encoding",
    ]
    for rejection, line in zip(rejections, range(2, 11), strict=True):
        assert f"{path}:{line}" in rejection.message
        assert rejection.location == Location(origin=str(path), line=line, index=line - 1)
        assert rejection.step == "read_chat_jsonl"
    assert rejections[0].record == '{"messages": ['
    assert rejections[-1].record is None  # undecodable bytes have no text
    assert pickle.loads(pickle.dumps(rejections[0])) == rejections[0]


def test_empty_file_reads_nothing(tmp_path: Path) -> None:
    """An empty file yields no record (validation reports it as empty_file)."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(read_chat_jsonl(path)) == []


def test_jsonl_writer_numbers_lines_and_matches_write_jsonl(tmp_path: Path) -> None:
    """write() returns 1-based line numbers; the result equals the one-shot writer's."""
    objects = [{"a": 1}, {"b": "ü"}, {"c": [1, 2]}]
    with JsonlWriter(tmp_path / "w.jsonl") as writer:
        lines = [writer.write(obj) for obj in objects]
    assert lines == [1, 2, 3]
    assert writer.kept
    one_shot = write_jsonl(objects, tmp_path / "o.jsonl")
    assert (writer.count, writer.bytes, writer.sha256) == (
        one_shot.count,
        one_shot.bytes,
        one_shot.sha256,
    )
    assert (tmp_path / "w.jsonl").read_bytes() == (tmp_path / "o.jsonl").read_bytes()


def test_jsonl_writer_is_atomic_and_can_skip_empty_files(tmp_path: Path) -> None:
    """An exception leaves no file (old content kept); keep_empty=False writes no empty file."""
    target = tmp_path / "t.jsonl"
    target.write_text("old\n", encoding="utf-8")

    def fill_then_fail() -> None:
        with JsonlWriter(target) as writer:
            writer.write({"new": True})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fill_then_fail()
    assert target.read_text(encoding="utf-8") == "old\n"
    with JsonlWriter(tmp_path / "empty.jsonl", keep_empty=False) as empty:
        pass
    assert not empty.kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
    with pytest.raises(ConfigError, match="not open"):
        JsonlWriter(tmp_path / "x.jsonl").write({})
