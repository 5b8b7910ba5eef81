"""The demo's last stage: LoRA fine-tuning on the prepared data, then base vs fine-tuned.

Reads ``train.jsonl`` and ``validation.jsonl`` written by ``finetune-web prepare``,
trains a LoRA adapter with :class:`~finetune_web.backends.local.LocalPEFTBackend`,
prints the validation loss before and after, and writes a base-vs-fine-tuned
report (token loss, token accuracy and ROUGE-L of greedy answers, with
bootstrap intervals) next to the adapter.

Usage::

    python examples/demo/local_finetune.py [--model ID_OR_DIR] [--data demo-output]

``--model`` takes any Hugging Face id or model directory.  Without it the demo
tries a small instruct model from the Hugging Face cache; when none is there
(offline, nothing cached) it builds a tiny random model on the spot, and every
figure it prints is labelled as coming from that smoke-test model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from finetune_web.backends.local import (
    LocalChatModel,
    LocalPEFTBackend,
    build_tiny_model,
    is_smoke_test_model,
)
from finetune_web.evaluation import RougeEvaluator, TokenLossEvaluator, compare, write_report
from finetune_web.records import Example, MetricEvent
from finetune_web.sources import ChatJsonlSource

#: Tried when no --model is given; used only if it is already in the local Hugging Face cache.
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _examples(path: Path) -> list[Example]:
    return [item for item in ChatJsonlSource(path).read() if isinstance(item, Example)]


def _pick_model(requested: str | None, workdir: Path) -> tuple[str, bool]:
    """Return the model to train and whether it is the smoke-test model."""
    if requested is not None:
        return requested, is_smoke_test_model(requested)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(DEFAULT_MODEL, local_files_only=True), False
    except Exception:  # not cached, or offline: fall back to the tiny model
        corpus = (workdir.parent / "train.jsonl").read_text(encoding="utf-8").splitlines()
        return str(build_tiny_model(workdir / "smoke-test-model", corpus=corpus, seed=0)), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a Hugging Face id or model directory")
    parser.add_argument("--data", default="demo-output", help="where prepare wrote its files")
    parser.add_argument("--epochs", type=int, help="default: 3, or 10 on the smoke-test model")
    args = parser.parse_args(argv)

    data = Path(args.data)
    workdir = data / "local"
    train, validation = _examples(data / "train.jsonl"), _examples(data / "validation.jsonl")
    model, smoke = _pick_model(args.model, workdir)
    label = model
    if smoke:
        label = "SMOKE-TEST MODEL (random weights: the figures only prove the path works)"
    print(f"local fine-tune: {len(train)} train / {len(validation)} validation examples on {label}")

    loss = TokenLossEvaluator()
    base = LocalChatModel(model=model, max_new_tokens=48)
    before = loss.evaluate(base, validation).score

    shutil.rmtree(workdir / "run", ignore_errors=True)  # the demo always trains afresh
    started = time.perf_counter()
    events: list[MetricEvent] = []
    backend = LocalPEFTBackend(
        model=model,
        output_dir=workdir / "run",
        epochs=args.epochs or (10 if smoke else 3),
        batch_size=2,
        seq_len=512,
        learning_rate=3e-3 if smoke else 2e-4,
        resume=None,
        progress=False,
    )
    result = backend.fine_tune(train, validation, callbacks=[events.append])
    seconds = time.perf_counter() - started

    tuned = LocalChatModel(model=model, adapter=result.model_id, max_new_tokens=48)
    after = loss.evaluate(tuned, validation).score
    print(f"validation loss before training: {before:.4f}")
    print(f"validation loss after training:  {after:.4f}   ({len(events)} steps, {seconds:.1f} s)")
    print(f"adapter: {result.model_id}")

    comparison = compare(
        base,
        tuned,
        validation,
        [loss, TokenLossEvaluator.accuracy(), RougeEvaluator()],
        seed=7,
        n_resamples=300,
    )
    title = "Base vs LoRA fine-tune" + (" (smoke-test model)" if smoke else f" of {model}")
    files = write_report(comparison, workdir, training=events, title=title)
    for metric in comparison.metrics:
        print(
            f"  {metric.metric:<16} base {metric.base.score:.4f}  tuned {metric.tuned.score:.4f}"
            f"  diff {metric.difference:+.4f}"
            f"  95% CI [{metric.interval.low:+.4f}, {metric.interval.high:+.4f}]"
        )
    print(f"report: {files.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
