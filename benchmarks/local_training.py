"""LoRA training speed on CPU: our local backend against TRL's packed SFT and a padded loop.

What is measured
----------------
One process, one tiny random Llama (``build_tiny_model``: a 4k-token BPE
vocabulary trained on the benchmark's own text, hidden size 256, 4 layers,
8 heads; 4.9 M parameters), one seeded data set and one LoRA setting (r=8,
alpha=16, dropout 0, every linear layer), float32 on CPU with ``--threads``
torch threads.  The data are ``--examples`` chat examples (default 3,000)
from ``benchmarks/_local_data.py``: real sentences from the
article-extraction benchmark's gold texts, with an optional system prompt
and one or two user/assistant exchanges, about 25 to 500 tokens each (mean
about 136); examples over 512 tokens would be left out (and counted).
Every method trains at learning rate 2e-4 (constant) with torch's fused
AdamW (transformers' default optimizer, and our backend's), gradient
clipping at 1.0, rows of at most 512 tokens and about ``4 x 512`` tokens per
optimizer step, for ``--steps`` timed steps after ``--warmup`` untimed ones:

a. **ours**: ``LocalPEFTBackend(...).fine_tune(examples)`` (``batch_size=4``,
   ``seq_len=512``, fp32, no validation data, no gradient checkpointing).  A
   metric callback stamps the clock at each step's :class:`MetricEvent`.  It
   trains one step more than it times: the last step also saves the final
   checkpoint, and that is left out.  Each step's real tokens are recomputed
   from the backend's own row order and checked against the
   ``trained_tokens`` it reports (``ours_tokens_exact``).
b. **TRL**: ``trl.SFTTrainer`` with ``packing=True`` (TRL 1.16's default
   ``bfd`` strategy: rows of 512, flattened padding-free into one sequence
   per batch), ``per_device_train_batch_size=4``, the same model directory,
   tokenizer, LoRA config and learning rate, no evaluation, saving, logging
   or reporting.  TRL 1.16 turns on bf16 autocast and gradient checkpointing
   by default, even on a CPU; both are off here, so that it computes what the
   other methods compute (with its defaults it is about ten times slower
   still).  Its tokenization and packing run at construction and are not
   timed; a ``TrainerCallback`` stamps the clock at ``on_step_end`` and a
   wrapper around its collator counts each batch's tokens.  TRL trains on
   every token (its ``assistant_only_loss`` needs generation markers in the
   template); that changes the loss, not the work per token.
c. **padded**: the same examples encoded by ``ChatEncoder``, shuffled and
   grouped greedily into batches of at most ``4 x 512`` real tokens, each
   padded to its longest example, with an attention mask; peft LoRA and
   AdamW in a plain loop.
d. **packed loop (foundation)**, for reference: ``pack_examples``
   (best-fit decreasing) -> ``collate`` (4 rows a batch) ->
   ``forward_packed`` -> ``token_stats`` in the same plain loop: what the
   backend's step costs with nothing around it.

*Real tokens* are non-padding input tokens fed through forward and backward,
counted the same way for every method.  ``tokens_per_s`` is the real tokens
of the timed steps over their wall-clock seconds (from the end of the last
warm-up step to the end of the last timed step; setup such as model
loading, encoding, packing and TRL's dataset preparation is excluded).  On a
shared machine other work slows some steps down, so the median step's rate
and the rate per CPU second of this process are given too.  With
``--threads 2`` on two cores, any other busy process stalls every parallel
kernel and all figures drop several-fold: run it on a quiet machine, or with
``--threads 1``.  ``--repeat N`` (3 unless given) runs every method N times,
alternating, and keeps each one's fastest run: single runs of ours, the
shortest, move the most.

**Cross-contamination**: one packed row (the one holding the most examples)
goes through a LoRA-wrapped model, its ``lora_B`` weights set to seeded
random values so that the adapters contribute, with ``forward_packed``;
each of its examples also goes through alone.  ``max_logit_diff`` is the
largest absolute difference over every example token (goal <= 1e-5).
``contaminated_logit_diff`` is the same comparison when the row's position
ids do not restart at each example, i.e. what the check would catch.

**Peak RSS** is ``ru_maxrss`` of this process: ``peak_rss_mb`` right after
our backend's first run (setup plus our run, before TRL is imported), and
``peak_rss_total_mb`` at the end (the largest of every method).

Run it (about 4 minutes on two quiet cores; more with ``--threads 1``)::

    .venv/bin/python benchmarks/local_training.py
    .venv/bin/python benchmarks/local_training.py --quick   # smoke run, about 30 s

It prints a table, then, as its last line, one JSON object: ``tokens_per_s``,
``trl_tokens_per_s``, ``padded_tokens_per_s``, ``speedup_vs_trl`` (goal >= 2),
``speedup_vs_padded`` (goal >= 3.5), ``goal_*_met``, ``max_logit_diff``,
``peak_rss_mb``, the median-step and CPU-time speedups, real tokens and
seconds per method, ``n_examples`` and the library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_data import corpus_sentences, make_examples
from _local_methods import (
    ROWS_PER_STEP,
    SEQ_LEN,
    Timing,
    contamination,
    lora_model,
    ours_run,
    packed_loop,
    padded_loop,
    rss_mb,
    trl_run,
)

from finetune_web.backends.local import ChatEncoder, build_tiny_model

MODEL = {"vocab_size": 4096, "hidden_size": 256, "num_layers": 4, "num_heads": 8}
GOAL_VS_TRL = 2.0
GOAL_VS_PADDED = 3.5
GOAL_LOGIT_DIFF = 1e-5


def versions() -> dict[str, str]:
    """Return the versions of the libraries that set the figures."""
    import peft
    import torch
    import transformers

    found = {"torch": torch.__version__, "transformers": transformers.__version__}
    found["peft"] = peft.__version__
    try:
        import trl

        found["trl"] = trl.__version__
    except ImportError:
        found["trl"] = "missing"
    found["python"] = platform.python_version()
    return found


def keep(results: dict[str, tuple[str, Timing]], name: str, label: str, timing: Timing) -> None:
    """Record ``timing`` under ``name`` unless a faster run of that method is already there."""
    if name not in results or timing.rate > results[name][1].rate:
        results[name] = (label, timing)


def _table(results: dict[str, tuple[str, Timing]]) -> None:
    print(
        f"{'method':<30} {'real tokens':>11} {'seconds':>8} {'tokens/s':>9} "
        f"{'median':>7} {'tok/cpu-s':>9} {'ours is':>8}"
    )
    base = results["ours"][1]
    for label, timing in results.values():
        print(
            f"{label:<30} {timing.tokens:>11,} {timing.seconds:>8.2f} {timing.rate:>9,.0f} "
            f"{timing.median_rate:>7,.0f} {timing.tokens / timing.cpu_seconds:>9,.0f} "
            f"{base.rate / timing.rate:>7.2f}x"
        )


def main() -> None:
    """Build the model and data, run every method, print the table and the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="chat examples to generate")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per method")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="smoke: 400 examples, 3 steps, 1 run")
    parser.add_argument("--skip-trl", action="store_true", help="leave TRL out")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of every method (the fastest kept)"
    )
    args = parser.parse_args()
    if args.quick:
        args.examples, args.steps, args.repeat = min(args.examples, 400), min(args.steps, 3), 1
    if min(args.warmup, args.steps, args.repeat) < 1:
        parser.error("--warmup, --steps and --repeat must be at least 1")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.manual_seed(args.seed)
    load_before = os.getloadavg()[0]

    results: dict[str, tuple[str, Timing]] = {}
    with tempfile.TemporaryDirectory(prefix="local-training-bench-") as tmp:
        work = Path(tmp)
        torch.set_num_threads(args.threads)
        sentences = corpus_sentences(args.seed)
        model_dir = build_tiny_model(work / "model", corpus=sentences, seed=args.seed, **MODEL)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        pad_id = int(tokenizer.pad_token_id)
        encoder = ChatEncoder(tokenizer)
        candidates = make_examples(args.examples, seed=args.seed, sentences=sentences)
        pairs = [(e, encoder.encode(e)) for e in candidates]
        examples = [e for e, t in pairs if len(t.input_ids) <= SEQ_LEN]
        tokenized = [t for _, t in pairs if len(t.input_ids) <= SEQ_LEN]
        lengths = [len(t.input_ids) for t in tokenized]
        params = sum(p.numel() for p in lora_model(model_dir).get_base_model().parameters())

        exact = True
        peak_ours = 0.0
        pad_share = 0.0
        for round_ in range(args.repeat):
            torch.set_num_threads(args.threads)
            timing, exact_here = ours_run(
                model_dir,
                examples,
                tokenized,
                work / f"ours-{round_}",
                args.steps,
                args.warmup,
                args.seed,
            )
            exact = exact and exact_here
            keep(results, "ours", "LocalPEFTBackend.fine_tune", timing)
            peak_ours = peak_ours or rss_mb()
            torch.set_num_threads(args.threads)
            timing = packed_loop(model_dir, tokenized, pad_id, args.steps, args.warmup, args.seed)
            keep(results, "loop", "packed loop (foundation)", timing)
            timing, pad_share = padded_loop(
                model_dir, tokenized, pad_id, args.steps, args.warmup, args.seed
            )
            keep(results, "padded", "padded per batch", timing)
            if not args.skip_trl:
                timing = trl_run(model_dir, examples, work, args.steps, args.warmup, args.seed)
                keep(results, "trl", "TRL SFTTrainer(packing=True)", timing)
        check = contamination(model_dir, tokenized, pad_id, args.seed)
        threads_after = torch.get_num_threads()

    print(
        f"model: {params:,} parameters {MODEL}; {len(examples):,} examples "
        f"({len(candidates) - len(examples)} over {SEQ_LEN} tokens left out), "
        f"{sum(lengths):,} tokens, {min(lengths)}-{max(lengths)} per example "
        f"(mean {sum(lengths) / len(lengths):.0f}); {args.steps} timed steps after "
        f"{args.warmup}; threads {args.threads}; load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    _table(results)
    print(
        f"padding share of the padded batches: {100 * pad_share:.1f}%; cross-contamination: "
        f"{check['max_logit_diff']:.2e} over a row of {check['row_examples']} examples "
        f"({check['row_tokens']} tokens), {check['contaminated_logit_diff']:.2f} without "
        f"restarting position ids; peak RSS {peak_ours:.0f} MB after ours, {rss_mb():.0f} MB in all"
    )
    ours = results["ours"][1]
    trl = results["trl"][1] if "trl" in results else None
    padded = results["padded"][1]
    vs_trl = ours.rate / trl.rate if trl else None
    vs_padded = ours.rate / padded.rate
    figures: dict[str, Any] = {
        "tokens_per_s": round(ours.rate, 1),
        "trl_tokens_per_s": round(trl.rate, 1) if trl else None,
        "padded_tokens_per_s": round(padded.rate, 1),
        "packed_loop_tokens_per_s": round(results["loop"][1].rate, 1),
        "speedup_vs_trl": round(vs_trl, 3) if vs_trl is not None else None,
        "speedup_vs_padded": round(vs_padded, 3),
        "goal_vs_trl_met": vs_trl >= GOAL_VS_TRL if vs_trl is not None else None,
        "goal_vs_padded_met": vs_padded >= GOAL_VS_PADDED,
        "median_speedup_vs_trl": round(ours.median_rate / trl.median_rate, 3) if trl else None,
        "median_speedup_vs_padded": round(ours.median_rate / padded.median_rate, 3),
        "cpu_speedup_vs_trl": round(
            trl.cpu_seconds / trl.tokens * ours.tokens / ours.cpu_seconds, 3
        )
        if trl
        else None,
        "cpu_speedup_vs_padded": round(
            padded.cpu_seconds / padded.tokens * ours.tokens / ours.cpu_seconds, 3
        ),
        "max_logit_diff": check["max_logit_diff"],
        "goal_logit_diff_met": check["max_logit_diff"] <= GOAL_LOGIT_DIFF,
        "contaminated_logit_diff": round(check["contaminated_logit_diff"], 4),
        "peak_rss_mb": round(peak_ours, 1),
        "peak_rss_total_mb": round(rss_mb(), 1),
        "ours_label": results["ours"][0],
        "ours_tokens_exact": exact,
        "real_tokens": {name: timing.tokens for name, (_, timing) in results.items()},
        "seconds": {name: round(timing.seconds, 3) for name, (_, timing) in results.items()},
        "median_step_tokens_per_s": {
            name: round(timing.median_rate, 1) for name, (_, timing) in results.items()
        },
        "cpu_tokens_per_s": {
            name: round(timing.tokens / timing.cpu_seconds, 1)
            for name, (_, timing) in results.items()
        },
        "padding_share": round(pad_share, 4),
        "n_examples": len(examples),
        "dataset_tokens": sum(lengths),
        "model_parameters": params,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeat": args.repeat,
        "seq_len": SEQ_LEN,
        "rows_per_step": ROWS_PER_STEP,
        "threads": args.threads,
        "threads_after": threads_after,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "seed": args.seed,
        "versions": versions(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
