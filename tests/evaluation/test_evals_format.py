"""load_evals_jsonl: openai/evals samples as examples; the package's public surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import finetune_web.evaluation as evaluation
from finetune_web.errors import RecordError, SourceError
from finetune_web.evaluation import load_evals_jsonl
from finetune_web.records import Message


def _write(path: Path, *rows: object) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_samples_become_examples_with_the_ideal_as_the_answer(tmp_path: Path) -> None:
    """Chat input + ideal -> messages + assistant answer; string input -> a user message."""
    path = _write(
        tmp_path / "s.jsonl",
        {
            "input": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "ideal": "A",
        },
        "",
        {"input": "2+2=", "ideal": ["4", "four"], "source": "math"},
    )
    first, second = load_evals_jsonl(path)
    assert first.messages == (
        Message(role="system", content="S"),
        Message(role="user", content="Q"),
        Message(role="assistant", content="A"),
    )
    assert (first.id, first.location.line if first.location else None) == ("s.jsonl#0", 1)
    assert second.messages[-1].text == "4"
    assert second.metadata == {"ideal": ["4", "four"], "source": "math"}
    assert second.location is not None and second.location.line == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid_json"),
        (json.dumps({"input": "x"}), "missing_field"),
        (json.dumps({"input": [], "ideal": "A"}), "invalid_input"),
        (json.dumps({"input": [{"role": "robot", "content": "x"}], "ideal": "A"}), "invalid_input"),
        (json.dumps({"input": "x", "ideal": []}), "invalid_ideal"),
    ],
)
def test_bad_lines_raise_record_errors_naming_the_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    """A bad sample is a RecordError with a reason code, the file and the line number."""
    path = _write(tmp_path / "bad.jsonl", {"input": "ok", "ideal": "A"}, line)
    with pytest.raises(RecordError) as info:
        load_evals_jsonl(path)
    assert info.value.reason == reason
    assert (info.value.context.path, info.value.context.line) == (str(path), 2)


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    """A file that cannot be read is a SourceError naming it."""
    with pytest.raises(SourceError, match="cannot read"):
        load_evals_jsonl(tmp_path / "absent.jsonl")


def test_all_is_sorted_and_importable() -> None:
    """finetune_web.evaluation's __all__ is sorted (RUF022 order), unique, and every name exists."""

    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    names = list(evaluation.__all__)
    assert names == sorted(names, key=key) and len(set(names)) == len(names)
    assert [n for n in names if not hasattr(evaluation, n)] == []


def test_importing_evaluation_loads_no_metric_library() -> None:
    """sacrebleu, rouge-score and nltk are imported only when a metric needs them."""
    code = (
        "import sys, finetune_web.evaluation; "
        "print(sorted(m for m in ('sacrebleu', 'rouge_score', 'nltk') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
