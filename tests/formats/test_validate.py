"""Tests for provider-style validation of training files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from finetune_web.errors import ValidationError
from finetune_web.formats import (
    MODEL_TABLE,
    Issue,
    TokenCounter,
    ValidationBuilder,
    ValidationReport,
    validate_examples,
    validate_file,
)
from finetune_web.records import Example, Location, Message

EARLY = date(2026, 6, 1)  # no model shuts down within 90 days, job creation still open
GOOD: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
}


def _codes(issues: tuple[Issue, ...]) -> list[str]:
    return [issue.code for issue in issues]


def test_toy_file_reports_like_the_cookbook(toy_chat: Path) -> None:
    """The toy file: too few examples, one truncated example on line 5, missing system/user."""
    report = validate_file(toy_chat, "gpt-3.5-turbo-0613", today=EARLY)
    assert report.examples == 5
    assert _codes(report.errors) == ["too_few_examples"]
    assert str(toy_chat) in report.errors[0].message
    assert _codes(report.warnings) == [
        "over_token_limit",
        "missing_system_message",
        "missing_user_message",
    ]
    over = report.warnings[0].message
    assert "1 example(s) over gpt-3.5-turbo-0613's 4,096-token limit" in over
    assert over.endswith("line 5")
    assert "1 example(s)" in report.warnings[1].message
    assert "1 example(s)" in report.warnings[2].message
    assert validate_file(toy_chat, "gpt-3.5-turbo-0613", today=EARLY, min_examples=5).ok


def test_clean_file_is_ok_with_a_few_examples_warning(write_lines: Callable[..., Path]) -> None:
    """Twelve good examples pass, with a warning that 50 are recommended."""
    path = write_lines([GOOD] * 12)
    report = validate_file(path, "gpt-4o-mini", today=EARLY)
    assert report.ok
    assert report.errors == ()
    assert _codes(report.warnings) == ["few_examples"]
    report.raise_for_errors()  # no error: does not raise


def test_bad_lines_are_errors_naming_file_and_line(write_lines: Callable[..., Path]) -> None:
    """Every bad line is one error naming file:line; examples + errors == non-blank lines."""
    lines: list[Any] = [
        GOOD,
        "{bad json",
        [1, 2],
        '"str"',
        {"no": "messages"},
        {"messages": []},
        {"messages": [{"role": "user", "content": 5}, GOOD["messages"][2]]},
        {"messages": [{"role": "wizard", "content": "x"}, GOOD["messages"][2]]},
        {"messages": [{"role": "user", "content": "x"}]},
        b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}',
        "",
        *[GOOD] * 10,
    ]
    path = write_lines(lines, name="bad.jsonl")
    report = validate_file(path, "gpt-4o", today=EARLY)
    assert not report.ok
    assert report.examples + len(report.errors) == 20
    assert [(issue.code, issue.line) for issue in report.errors] == [
        ("invalid_json", 2),
        ("data_type", 3),
        ("data_type", 4),
        ("missing_messages_list", 5),
        ("empty_messages", 6),
        ("missing_content", 7),
        ("unrecognized_role", 8),
        ("example_missing_assistant_message", 9),
        ("invalid_encoding", 10),
    ]
    for issue in report.errors:
        assert f"{path}:{issue.line}" in issue.message
        assert issue.path == str(path)
        assert issue.to_json()["line"] == issue.line
    with pytest.raises(ValidationError, match="9 error"):
        report.raise_for_errors()


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    """A file with no non-blank line reports empty_file (and not also too_few_examples)."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    report = validate_file(path, "gpt-4o", today=EARLY)
    assert _codes(report.errors) == ["empty_file"]
    assert str(path) in report.errors[0].message


def test_special_tokens_are_errors(write_lines: Callable[..., Path]) -> None:
    """Scraped <|endoftext|> / <|fim_suffix|> give a special_token error on their line."""
    scraped = {
        "messages": [
            {"role": "user", "content": "page text <|endoftext|> more"},
            {"role": "assistant", "content": "code <|fim_suffix|>"},
        ]
    }
    path = write_lines([*[GOOD] * 10, scraped], name="scraped.jsonl")
    report = validate_file(path, "gpt-4.1-mini", today=EARLY)
    assert [(issue.code, issue.line) for issue in report.errors] == [("special_token", 11)]
    message = report.errors[0].message
    assert f"{path}:11" in message
    assert "<|endoftext|>" in message
    assert "<|fim_suffix|>" in message


def test_model_and_job_creation_warnings() -> None:
    """Shut-down, soon-shut-down and job-creation-end warnings depend on `today`."""
    examples = [Example(messages=[Message(**m) for m in GOOD["messages"]])] * 60
    gone = validate_examples(examples, "gpt-3.5-turbo", today=date(2026, 11, 1))
    assert _codes(gone.warnings) == ["model_shut_down", "job_creation_ending"]
    assert "2026-10-23" in gone.warnings[0].message
    soon = validate_examples(examples, "gpt-4o-mini-2024-07-18", today=date(2026, 11, 1))
    assert _codes(soon.warnings) == ["model_shutdown_soon", "job_creation_ending"]
    assert "2027-01-14" in soon.warnings[0].message
    ended = validate_examples(examples, "gpt-4o", today=date(2027, 2, 1))
    assert _codes(ended.warnings) == ["model_shut_down", "job_creation_ended"]
    assert validate_examples(examples, "gpt-4o", today=EARLY).warnings == ()


def test_validation_streams_a_one_shot_generator() -> None:
    """A generator is read once, in small batches, and every example is counted."""

    def generate() -> Iterator[Example]:
        for n in range(1000):
            yield Example(
                messages=[
                    Message(role="user", content=f"question {n}"),
                    Message(role="assistant", content="answer"),
                ]
            )

    report = validate_examples(generate(), "gpt-4o", today=EARLY, batch_size=16)
    assert report.examples == 1000
    assert _codes(report.warnings) == ["missing_system_message"]
    assert "1000 example(s)" in report.warnings[0].message


def test_over_limit_names_at_most_twenty_places() -> None:
    """Many truncated examples are counted in full but only the first 20 are named."""
    long = Message(role="assistant", content="word " * 70_000)
    examples = [Example(messages=[Message(role="user", content="q"), long])] * 25
    report = validate_examples(examples, "gpt-4o", today=EARLY)
    (warning,) = [w for w in report.warnings if w.code == "over_token_limit"]
    assert warning.message.startswith("25 example(s)")
    assert warning.message.endswith("record #19 and 5 more")


def test_completion_model_validates_prompt_completion(write_lines: Callable[..., Path]) -> None:
    """babbage-002 reads prompt/completion lines; a chat line there is an unrecognized key."""
    path = write_lines([{"prompt": "a", "completion": "b"}] * 10 + [GOOD])
    report = validate_file(path, "babbage-002", today=EARLY)
    assert report.examples == 10
    assert [(issue.code, issue.line) for issue in report.errors] == [("unrecognized_key", 11)]
    assert "missing_system_message" not in _codes(report.warnings)


def test_report_json() -> None:
    """to_json gives model, path, examples, ok and issue dicts with code, line and message."""
    report = ValidationReport(
        model="gpt-4o",
        path="x.jsonl",
        examples=0,
        errors=(Issue(code="empty_file", message="x.jsonl: empty", path="x.jsonl"),),
        warnings=(),
    )
    data = report.to_json()
    assert data == {
        "model": "gpt-4o",
        "path": "x.jsonl",
        "examples": 0,
        "ok": False,
        "errors": [
            {
                "code": "empty_file",
                "message": "x.jsonl: empty",
                "line": None,
                "index": None,
                "path": "x.jsonl",
            }
        ],
        "warnings": [],
    }
    assert json.loads(json.dumps(data)) == data
    assert report.errors[0].describe() == "x.jsonl: empty"


def test_builder_names_the_line_of_the_file_being_written() -> None:
    """ValidationBuilder.add(line=...) reports issues at that line of its own path."""
    builder = ValidationBuilder(spec=MODEL_TABLE["gpt-4o"], path="out/train.jsonl", today=EARLY)
    counter = TokenCounter.for_model("gpt-4o")
    scraped = Example(
        messages=[
            Message(role="user", content="<|endoftext|>"),
            Message(role="assistant", content="ok"),
        ],
        location=Location(origin="source.jsonl", line=99, index=98),
    )
    builder.add(scraped, counter.count_example(scraped), line=3)
    assert builder.examples == 1
    report = builder.build()
    special = report.errors[0]
    assert (special.code, special.path, special.line) == ("special_token", "out/train.jsonl", 3)
    assert special.message.startswith("out/train.jsonl:3 ")
    assert report.errors[1].code == "too_few_examples"


def test_builder_equals_validate_examples() -> None:
    """Feeding the builder by hand gives the same report as validate_examples."""
    examples = [Example(messages=[Message(**m) for m in GOOD["messages"]])] * 11
    counter = TokenCounter.for_model("gpt-4.1")
    builder = ValidationBuilder(spec=MODEL_TABLE["gpt-4.1"], model="gpt-4.1", today=EARLY)
    for example in examples:
        builder.add(example, counter.count_example(example))
    assert validate_examples(examples, "gpt-4.1", today=EARLY) == builder.build()
