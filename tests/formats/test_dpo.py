"""Tests for DPO preference JSONL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from finetune_web.errors import RecordError
from finetune_web.formats import (
    example_to_json,
    preference_from_json,
    preference_to_example,
    preference_to_json,
    read_dpo_jsonl,
    write_dpo_jsonl,
)
from finetune_web.records import Example, Message, Preference, Rejection
from tests.strategies import conversations

GOOD: dict[str, Any] = {
    "input": {
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "tools": [{"type": "function", "function": {"name": "search"}}],
    },
    "preferred_output": [{"role": "assistant", "content": "Paris."}],
    "non_preferred_output": [{"role": "assistant", "content": "Lyon."}],
}


def test_parses_a_preference_pair() -> None:
    """The prompt, both answers and the tools land in a Preference."""
    pref = preference_from_json(GOOD, record_id="p#0")
    assert pref.id == "p#0"
    assert pref.messages == (Message(role="user", content="Capital of France?"),)
    assert pref.preferred == Message(role="assistant", content="Paris.")
    assert pref.non_preferred == Message(role="assistant", content="Lyon.")
    assert pref.tools == ({"type": "function", "function": {"name": "search"}},)


def test_to_json_reproduces_the_line() -> None:
    """preference_to_json gives back the object it was parsed from, in the same key order."""
    out = preference_to_json(preference_from_json(GOOD))
    assert json.dumps(out) == json.dumps(GOOD)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([], "data_type"),
        ({**GOOD, "extra": 1}, "unrecognized_key"),
        ({k: v for k, v in GOOD.items() if k != "input"}, "missing_input"),
        ({**GOOD, "input": {"tools": []}}, "missing_input"),
        ({**GOOD, "input": {"messages": [], "x": 1}}, "unrecognized_key"),
        ({**GOOD, "input": {"messages": []}}, "empty_messages"),
        ({**GOOD, "preferred_output": []}, "invalid_output"),
        ({**GOOD, "preferred_output": [GOOD["preferred_output"][0]] * 2}, "invalid_output"),
        ({**GOOD, "non_preferred_output": [{"role": "user", "content": "x"}]}, "invalid_output"),
        ({**GOOD, "non_preferred_output": [{"role": "assistant"}]}, "message_missing_key"),
    ],
)
def test_invalid_preferences_get_reasons(obj: Any, reason: str) -> None:
    """Each malformed DPO line raises RecordError with its reason code."""
    with pytest.raises(RecordError) as info:
        preference_from_json(obj)
    assert info.value.reason == reason


@settings(max_examples=40, deadline=None)
@given(conversations(), conversations())
def test_round_trip(prompt: tuple[Message, ...], other: tuple[Message, ...]) -> None:
    """preference -> JSON -> preference is the identity for generated conversations."""
    pref = Preference(messages=prompt[:-1], preferred=prompt[-1], non_preferred=other[-1])
    line = json.dumps(preference_to_json(pref), ensure_ascii=False)
    assert preference_from_json(json.loads(line)) == pref


def test_preference_to_example_uses_the_preferred_answer() -> None:
    """The supervised example is the prompt plus the preferred answer, keeping the id."""
    example = preference_to_example(preference_from_json(GOOD, record_id="p#3"))
    assert isinstance(example, Example)
    assert example.id == "p#3"
    assert example_to_json(example) == {
        "messages": [*GOOD["input"]["messages"], *GOOD["preferred_output"]],
        "tools": GOOD["input"]["tools"],
    }


def test_read_and_write(write_lines: Callable[..., Path], tmp_path: Path) -> None:
    """Reading yields preferences and rejections by line; writing reproduces the good lines."""
    path = write_lines([GOOD, "not json", GOOD], name="dpo.jsonl")
    records = list(read_dpo_jsonl(path))
    assert [type(r) for r in records] == [Preference, Rejection, Preference]
    rejection = records[1]
    assert isinstance(rejection, Rejection)
    assert f"{path}:2" in rejection.message
    out = tmp_path / "out.jsonl"
    result = write_dpo_jsonl([r for r in records if isinstance(r, Preference)], out)
    assert result.count == 2
    assert out.read_text(encoding="utf-8").splitlines() == [json.dumps(GOOD)] * 2
