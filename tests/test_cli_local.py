"""The chat and eval commands with local models: a tiny base model and an untrained LoRA adapter."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from finetune_web.cli import main
from finetune_web.records import Message

pytest.importorskip("torch")

from tests.backends.local.test_chat_model import make_adapter


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random chat model, built offline."""
    from finetune_web.backends.local import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("cli-base"))


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained LoRA adapter (random weights) saved for ``base``."""
    return make_adapter(base, tmp_path_factory.mktemp("cli-adapter"))


@pytest.fixture
def heldout(tmp_path: Path) -> Path:
    """Six multiple-choice questions in openai/evals form."""
    path = tmp_path / "heldout.jsonl"
    rows = [
        {
            "input": [
                {"role": "system", "content": "Answer with the letter."},
                {"role": "user", "content": f"Item {n}?\nA. a lamp\nB. a kettle\nC. a desk"},
            ],
            "ideal": "ABC"[n % 3],
        }
        for n in range(6)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


def test_chat_with_a_local_model_keeps_the_conversation(base: Path) -> None:
    """chat --model local:DIR prints the greedy replies the library gives for the conversation."""
    from finetune_web.backends.local.chat import LocalChatModel

    argv = ["chat", "--model", f"local:{base}", "--device", "cpu", "--max-new-tokens", "6"]
    code, output = _run([*argv, "--system", "Be brief."], "Hello\n\nDescribe the lamp.\n")
    assert code == 0
    replies = output.split("\n")[:2]
    model = LocalChatModel(model=str(base), device="cpu", max_new_tokens=6)
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Hello")]
    first = model.complete(messages)
    messages += [first, Message(role="user", content="Describe the lamp.")]
    assert replies == [first.text, model.complete(messages).text]


def test_chat_finds_the_base_of_an_adapter(base: Path, adapter: Path) -> None:
    """An adapter directory alone, and local:BASE --adapter DIR, load the same fine-tune."""
    options = ["--device", "cpu", "--max-new-tokens", "6"]
    found = _run(["chat", "--model", str(adapter), *options], "Hello\n")
    explicit = _run(
        ["chat", "--model", f"local:{base}", "--adapter", str(adapter), *options], "Hello\n"
    )
    assert found[0] == explicit[0] == 0
    assert found[1] == explicit[1]


def test_eval_compares_a_local_fine_tune_with_its_base(
    base: Path, adapter: Path, heldout: Path, tmp_path: Path
) -> None:
    """eval with local models and log-likelihood and token metrics writes the report."""
    code, output = _run(
        [
            "eval",
            "--model",
            f"local:{adapter}",
            "--baseline",
            f"local:{base}",
            "--data",
            str(heldout),
            "--metric",
            "loglik_acc,token_loss",
            "--metric",
            "loglik_acc_norm",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "report"),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(output)
    assert summary["tuned_model"] == f"{base}+{adapter}" and summary["base_model"] == str(base)
    metrics = {m["metric"]: m for m in summary["metrics"]}
    assert list(metrics) == ["loglik_acc", "token_loss", "loglik_acc_norm"]
    assert metrics["token_loss"]["higher_is_better"] is False
    assert metrics["token_loss"]["base"] != metrics["token_loss"]["tuned"]
    assert (tmp_path / "report" / "eval_report.html").is_file()


def test_eval_of_one_local_model(base: Path, heldout: Path) -> None:
    """Without a baseline, eval prints the local model's scores."""
    code, output = _run(
        ["eval", "--model", f"local:{base}", "--data", str(heldout), "--metric", "token_accuracy"]
    )
    assert code == 0
    assert output.startswith(f"{base} on 6 examples:") and "token_accuracy:" in output


def test_local_metrics_and_adapters_need_local_models(adapter: Path, heldout: Path) -> None:
    """A log-likelihood metric on an API model, or --adapter on one, exits 2 with the reason."""
    code, output = _run(
        ["eval", "--model", "gpt-4o-mini", "--data", str(heldout), "--metric", "loglik_acc"]
    )
    assert code == 2 and output == ""
    code, _ = _run(["chat", "--model", "gpt-4o-mini", "--adapter", str(adapter)], "Hi\n")
    assert code == 2


def test_local_errors_are_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local model directory that holds no model gives exit code 2 and a readable message."""
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _ = _run(["chat", "--model", f"local:{empty}", "--device", "cpu"], "Hi\n")
    assert code == 2
    assert "cannot load" in capsys.readouterr().err
