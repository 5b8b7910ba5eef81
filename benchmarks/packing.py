"""Rows and speed of :class:`BestFitPacker` against TRL's ``pack_dataset``, side by side.

What is measured
----------------
Ten seeded length distributions (below), each at row lengths S = 512, 2048
and 8192.  Lengths are clipped to ``[1, S]``: TRL's default ``"bfd"``
strategy truncates longer sequences while ours would split them, so the two
packers get exactly the same tokens.  For each case, in this process:

1. **ours**: ``BestFitPacker(S).pack(examples)`` over ``Tokenized`` records,
   consumed to the last row (every row built as a ``Pack`` of tuples).  The
   examples are built before timing, with the first fifth of each (its
   prompt) labelled -100 as in chat fine-tuning; examples of one length
   share their tuples to keep memory low.  Each row is built in full:
   ``input_ids``, ``labels`` and ``position_ids`` as Python tuples.
   ``plan_s`` times the placement alone (``plan_rows`` on the lengths).
2. **TRL**: ``trl.pack_dataset(dataset, S, strategy="bfd")`` on an in-memory
   ``datasets.Dataset`` with one ``input_ids`` column (its own default:
   best-fit decreasing per ``map`` batch of 1,000 rows, segment tree in
   Python, token data moved by pyarrow; it outputs ``input_ids`` and
   ``seq_lengths``, with no labels to mask).  The dataset is built before
   timing.
   When ``trl`` cannot be imported, a re-implementation of that algorithm
   (best-fit decreasing on each batch of 1,000 sequences, labelled
   ``trl-reimpl``) gives the row count and no time.

Each side is timed ``--repeat`` times (default 1) and the fastest run kept,
since other work on a shared machine only ever slows a run down; the
headline case is always timed at least three times.

For each case the table shows rows, efficiency (tokens / (rows x S)), the
lower bound (:func:`finetune_web.packing.pack_bound`, Martello-Toth L2,
never below ``ceil(tokens / S)`` nor the count of sequences over S/2) and the
seconds of both.  The last line is one JSON object: ``max_rows_over_trl``
(ours minus TRL's rows, worst case; goal <= 0), ``max_rows_over_bound_pct``,
``seconds_100k`` / ``trl_seconds_100k`` / ``speedup`` on the headline case
(``chat_like`` at S=2048, 100,000 sequences), ``min_speedup`` and
``median_speedup`` over every case, ``plan_speedup`` (placement alone vs
TRL) and ``cpu_speedup`` (process CPU seconds, steadier than wall-clock
when other work shares the machine) on the headline case.

Run it (about 5 minutes on two cores; up to 7 GB of memory at S=8192)::

    .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install trl datasets
    .venv/bin/python benchmarks/packing.py
    .venv/bin/python benchmarks/packing.py --n 20000   # quicker
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from finetune_web.packing import BestFitPacker, pack_bound, plan_rows
from finetune_web.records import Tokenized

SEQ_LENS = (512, 2048, 8192)
HEADLINE = ("chat_like", 2048)
TRL_BATCH = 1000

Lengths = Callable[[np.random.Generator, int, int], np.ndarray]


def _lognormal(median: float, sigma: float) -> Lengths:
    return lambda rng, n, s: rng.lognormal(np.log(median), sigma, n)


def _bimodal(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    short = rng.normal(s / 16, s / 64, n)
    long = rng.normal(s * 0.6, s / 10, n)
    return np.where(rng.random(n) < 0.7, short, long)


#: name -> lengths(rng, n, S) before clipping to [1, S].
DISTRIBUTIONS: dict[str, Lengths] = {
    "uniform_short": lambda rng, n, s: rng.integers(1, s // 8 + 1, n),
    "uniform_wide": lambda rng, n, s: rng.integers(1, s + 1, n),
    "lognormal": lambda rng, n, s: rng.lognormal(np.log(s / 8), 1.0, n),
    "exponential": lambda rng, n, s: rng.exponential(s / 6, n),
    "bimodal": _bimodal,
    "near_half": lambda rng, n, s: rng.integers(int(s * 0.45), int(s * 0.55) + 1, n),
    "all_tiny": lambda rng, n, s: rng.integers(1, 17, n),
    "chat_like": _lognormal(350, 0.9),
    "code_like": _lognormal(1200, 1.1),
    "heavy_tail": lambda rng, n, s: 50 * (1 + rng.pareto(1.1, n)),
}


def lengths_for(name: str, n: int, seq_len: int, seed: int) -> list[int]:
    """Return ``n`` seeded lengths of one distribution, clipped to ``[1, seq_len]``."""
    rng = np.random.default_rng([seed, seq_len, list(DISTRIBUTIONS).index(name)])
    raw = DISTRIBUTIONS[name](rng, n, seq_len)
    return [int(x) for x in np.clip(np.asarray(raw).astype(np.int64), 1, seq_len)]


def _examples(lengths: list[int], seq_len: int) -> list[Tokenized]:
    """Examples whose first fifth (the prompt, at least one token) is masked with -100."""
    base = tuple(range(1000, 1000 + seq_len))
    shared: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    examples = []
    for index, length in enumerate(lengths):
        pair = shared.get(length)
        if pair is None:
            prompt = max(1, length // 5)
            ids = base[:length]
            pair = shared[length] = (ids, (-100,) * prompt + ids[prompt:])
        examples.append(Tokenized(id=f"e{index}", input_ids=pair[0], labels=pair[1]))
    return examples


def _best_of(repeat: int, run: Callable[[], int]) -> tuple[int, float, float]:
    """Return the rows ``run`` gives and its fastest wall-clock and CPU seconds."""
    wall = cpu = float("inf")
    rows = 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        rows = run()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return rows, wall, cpu


def ours(lengths: list[int], seq_len: int, repeat: int) -> tuple[int, float, float, float]:
    """Return our rows, wall and CPU seconds end to end, and seconds of placement alone."""
    examples = _examples(lengths, seq_len)
    packer = BestFitPacker(seq_len)
    rows, seconds, cpu = _best_of(repeat, lambda: sum(1 for _ in packer.pack(examples)))
    _, plan_s, _ = _best_of(repeat, lambda: len(plan_rows(lengths, seq_len)))
    return rows, seconds, cpu, plan_s


def trl_rows(
    lengths: list[int], seq_len: int, repeat: int
) -> tuple[str, int, float | None, float | None]:
    """Return TRL's label, rows, wall and CPU seconds (no seconds for the re-implementation)."""
    try:
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable
        from trl import pack_dataset
    except ImportError:
        rows = 0
        for start in range(0, len(lengths), TRL_BATCH):
            rows += len(plan_rows(lengths[start : start + TRL_BATCH], seq_len))
        return "trl-reimpl", rows, None, None
    datasets.disable_progress_bars()
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    values = pa.array(np.zeros(int(offsets[-1]), dtype=np.int32))
    column = pa.LargeListArray.from_arrays(pa.array(offsets), values)
    dataset = datasets.Dataset(InMemoryTable(pa.table({"input_ids": column})))
    rows, seconds, cpu = _best_of(
        repeat, lambda: len(pack_dataset(dataset, seq_length=seq_len, strategy="bfd"))
    )
    return "trl", rows, seconds, cpu


def main() -> None:
    """Run every case, print the table, then the JSON figures as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="sequences per case")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per side (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    header = (
        f"{'distribution':<14} {'S':>5} {'tokens':>11} {'bound':>7} {'ours':>7} {'trl':>7} "
        f"{'eff%':>6} {'trl_eff%':>8} {'ours_s':>7} {'plan_s':>7} {'trl_s':>7} {'speedup':>7}"
    )
    print(header)
    cases: list[dict[str, Any]] = []
    for seq_len in SEQ_LENS:
        for name in DISTRIBUTIONS:
            lengths = lengths_for(name, args.n, seq_len, args.seed)
            tokens = sum(lengths)
            bound = pack_bound(lengths, seq_len)
            repeat = max(3, args.repeat) if (name, seq_len) == HEADLINE else args.repeat
            rows, seconds, cpu, plan_s = ours(lengths, seq_len, repeat)
            label, trl, trl_s, trl_cpu = trl_rows(lengths, seq_len, repeat)
            speedup = None if trl_s is None else trl_s / seconds
            case = {
                "distribution": name,
                "seq_len": seq_len,
                "tokens": tokens,
                "bound": bound,
                "rows": rows,
                "trl_rows": trl,
                "efficiency": tokens / (rows * seq_len),
                "trl_efficiency": tokens / (trl * seq_len),
                "seconds": seconds,
                "cpu_seconds": cpu,
                "plan_seconds": plan_s,
                "trl_seconds": trl_s,
                "trl_cpu_seconds": trl_cpu,
                "speedup": speedup,
                "baseline": label,
            }
            cases.append(case)
            print(
                f"{name:<14} {seq_len:>5} {tokens:>11,} {bound:>7,} {rows:>7,} {trl:>7,} "
                f"{100 * case['efficiency']:>6.2f} {100 * case['trl_efficiency']:>8.2f} "
                f"{seconds:>7.2f} {plan_s:>7.3f} "
                f"{'n/a' if trl_s is None else f'{trl_s:.2f}':>7} "
                f"{'n/a' if speedup is None else f'{speedup:.2f}':>7}",
                flush=True,
            )
    headline = next(c for c in cases if (c["distribution"], c["seq_len"]) == HEADLINE)
    speedups = [c["speedup"] for c in cases if c["speedup"] is not None]
    figures = {
        "max_rows_over_trl": max(c["rows"] - c["trl_rows"] for c in cases),
        "max_rows_over_bound_pct": round(
            max(100 * (c["rows"] - c["bound"]) / c["bound"] for c in cases), 4
        ),
        "mean_efficiency_pct": round(100 * statistics.mean(c["efficiency"] for c in cases), 3),
        "trl_mean_efficiency_pct": round(
            100 * statistics.mean(c["trl_efficiency"] for c in cases), 3
        ),
        "headline_case": f"{HEADLINE[0]} S={HEADLINE[1]} n={args.n}",
        "seconds_100k": round(headline["seconds"], 3),
        "trl_seconds_100k": None
        if headline["trl_seconds"] is None
        else round(headline["trl_seconds"], 3),
        "speedup": None if headline["speedup"] is None else round(headline["speedup"], 2),
        "plan_speedup": None
        if headline["trl_seconds"] is None
        else round(headline["trl_seconds"] / headline["plan_seconds"], 1),
        "cpu_speedup": None
        if headline["trl_cpu_seconds"] is None
        else round(headline["trl_cpu_seconds"] / headline["cpu_seconds"], 2),
        "min_speedup": round(min(speedups), 2) if speedups else None,
        "median_speedup": round(statistics.median(speedups), 2) if speedups else None,
        "sequences": args.n,
        "baseline": headline["baseline"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
