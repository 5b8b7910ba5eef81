"""The demo's web inputs and its local fine-tune stage run end to end on the bundled data."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

from finetune_web.cli import main
from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / "examples" / "demo"


def _rejects(directory: Path) -> list[dict[str, object]]:
    lines = (directory / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _count(path: Path) -> int:
    """Lines in a written JSONL file (a split with nothing in it writes no file)."""
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_web_pages_become_examples_and_bad_pages_are_rejected(tmp_path: Path) -> None:
    """The saved pages yield one example per section; the empty and broken pages are rejects.

    The job exits 0: enough examples for the provider's minimum, so `make demo` passes.

    The cp1252 page's accented words survive decoding, so the charset was read from its meta tag.
    """
    pytest.importorskip("trafilatura")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["prepare", str(DEMO / "web_pages.toml"), "--output", str(tmp_path)]) == 0
    reasons = sorted(str(item["reason"]) for item in _rejects(tmp_path))
    assert reasons == ["empty_body", "no_main_text"]
    written = (tmp_path / "train.jsonl").read_text(encoding="utf-8") + (
        tmp_path / "validation.jsonl"
    ).read_text(encoding="utf-8")
    assert "café" in written and "naïve" in written
    assert _count(tmp_path / "train.jsonl") + _count(tmp_path / "validation.jsonl") == 20


def test_captioned_talk_becomes_continuation_examples(tmp_path: Path) -> None:
    """Every passage of the demo talk becomes a continue-the-transcript example; none is lost.

    The job exits 0 (enough examples for the provider's minimum), so `make demo` passes.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["prepare", str(DEMO / "talk.toml"), "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    written = _count(tmp_path / "train.jsonl") + _count(tmp_path / "validation.jsonl")
    assert _rejects(tmp_path) == []
    assert written == report["steps"][0]["records_out"] > 1
    first = json.loads((tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["messages"][1]["content"].startswith("Continue this transcript.")


@pytest.mark.slow
def test_local_fine_tune_stage_reports_before_and_after(tmp_path: Path) -> None:
    """The demo's training stage runs offline on the smoke-test model and writes its report.

    It labels the model as a smoke test, prints the validation loss before and
    after training, and the fine-tuned loss on the validation set is lower.
    """
    pytest.importorskip("peft")
    with contextlib.redirect_stdout(io.StringIO()):
        main(["prepare", str(DEMO / "demo.toml"), "--output", str(tmp_path)])
    spec = importlib.util.spec_from_file_location("local_finetune", DEMO / "local_finetune.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert module.main(["--data", str(tmp_path), "--epochs", "3"]) == 0
    printed = out.getvalue()
    assert "SMOKE-TEST MODEL" in printed
    before = float(printed.split("validation loss before training:")[1].split()[0])
    after = float(printed.split("validation loss after training:")[1].split()[0])
    assert after < before
    assert (tmp_path / "local" / "eval_report.html").is_file()
    assert (tmp_path / "local" / "run" / "adapter" / "adapter_config.json").is_file()
