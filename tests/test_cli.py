"""The finetune-web command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from finetune_web.cli import main
from tests.conftest import REPO_ROOT


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_estimate_reproduces_the_cookbook_oracle(realdata: Path) -> None:
    """estimate --json on the cookbook's toy file prints the cookbook's printed figures."""
    code, out = _run(
        "estimate",
        str(realdata / "toy_chat_fine_tuning.jsonl"),
        "--model",
        "gpt-3.5-turbo-0613",
        "--json",
    )
    data = json.loads(out)
    assert code == 0
    assert data["encoding"] == "cl100k_base"
    assert data["tokens_per_example"] == [45, 111, 26, 28, 8032]
    assert (data["billed_tokens_per_epoch"], data["epochs"], data["billed_tokens"]) == (
        4306,
        20,
        86120,
    )
    assert data["estimated_cost_usd"] == pytest.approx(86120 * 8 / 1e6)
    assert {"examples", "errors", "warnings", "estimated_cost_usd"} <= set(data)
    assert [e["code"] for e in data["errors"]] == ["too_few_examples"]
    assert "over_token_limit" in {w["code"] for w in data["warnings"]}


def test_estimate_human_output(realdata: Path) -> None:
    """The human output states tokens, epochs, billed tokens and labels percentiles p10/p90."""
    code, out = _run(
        "estimate", str(realdata / "toy_chat_fine_tuning.jsonl"), "--model", "gpt-4o-mini"
    )
    assert code == 0
    assert "epochs: 20" in out and "p10" in out and "p90" in out and "estimated cost: $" in out


def test_validate_exit_codes_and_file_line_errors(tmp_path: Path) -> None:
    """validate exits 1 and names file:line for each bad line; exits 0 on a clean file."""
    good = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    lines = [json.dumps(good)] * 10 + [
        "{not json",
        json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    code, out = _run("validate", str(bad), "--model", "gpt-4o-mini")
    assert code == 1
    assert f"{bad}:11" in out and f"{bad}:12" in out
    code, out = _run("validate", str(bad), "--model", "gpt-4o-mini", "--json")
    data = json.loads(out)
    assert [(e["code"], e["line"]) for e in data["errors"]] == [
        ("invalid_json", 11),
        ("unrecognized_role", 12),
    ]
    clean = tmp_path / "good.jsonl"
    clean.write_text("\n".join([json.dumps(good)] * 10) + "\n")
    assert _run("validate", str(clean), "--model", "gpt-4.1-mini")[0] == 0


def test_unreadable_input_and_unknown_model_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file or an unknown model is exit code 2 with a message on stderr."""
    assert _run("validate", str(tmp_path / "missing.jsonl"), "--model", "gpt-4o-mini")[0] == 2
    assert "missing.jsonl" in capsys.readouterr().err
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    assert _run("estimate", str(path), "--model", "gpt-5-ultra")[0] == 2
    assert "gpt-5-ultra" in capsys.readouterr().err


def test_prepare_runs_the_demo_config(tmp_path: Path) -> None:
    """prepare writes the dataset, rejects, report and manifest and prints the summary."""
    code, out = _run(
        "prepare", str(REPO_ROOT / "examples" / "demo" / "demo.toml"), "--output", str(tmp_path)
    )
    assert code == 0
    assert "exact_dedup" in out and "gpt-4.1-mini" in out
    assert {p.name for p in tmp_path.iterdir()} >= {
        "train.jsonl",
        "rejects.jsonl",
        "report.json",
        "manifest.json",
    }
    code, _ = _run(
        "prepare",
        str(REPO_ROOT / "examples" / "demo" / "demo.toml"),
        "--output",
        str(tmp_path),
        "--strict",
    )
    assert code == 1  # the demo data holds broken records on purpose


def test_plugins_lists_families() -> None:
    """plugins lists each family with its registered names."""
    code, out = _run("plugins")
    assert code == 0
    assert "transforms:" in out and "template" in out
