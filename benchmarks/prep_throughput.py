"""Throughput and memory of a full data-prep run, against tiktoken alone.

What is measured
----------------
A seeded JSONL file of product records (title, brand, a features list, a
description of about 300 words with some non-ASCII text, plus a few scraped
fields) is generated in a temporary directory; generating it is not timed.
Then, in this process:

1. **our run**: ``Pipeline.from_source(JsonlSource(path)).template(...)
   .split(validation=0.1).run(out_dir, models=("gpt-4o-mini",))``, which
   reads, templates, splits, validates and counts every example in-stream
   (o200k_base) and writes ``train.jsonl`` / ``validation.jsonl``.  The whole
   ``run()`` call is timed (report and manifest included), with
   ``Pipeline.run``'s defaults; ``--token-workers N`` passes
   ``token_workers=N`` (0: tokenize in this process; N > 0: in worker
   processes, overlapped with the run, which needs spare cores).
2. **tiktoken alone** on exactly the texts the run encodes: the message
   contents (system, user, assistant) of every example written, read back
   from the run's output files.  Only the encode calls are timed, in the
   plainest way: ``enc.encode_ordinary(text)`` per text, one thread.  This is
   the baseline of the goal ``time_ratio_vs_tiktoken <= 1.5``.
3. **tiktoken batched**, for reference: ``enc.encode_ordinary_batch(texts,
   num_threads=2)`` on chunks of 1,024 examples; its ratio is reported as
   ``time_ratio_vs_tiktoken_batch``.  It uses two cores, yet on these texts
   (0.1-2 KB each) it can be slower than one thread: it runs one future per
   text on a new thread pool per call, and threads wait for the GIL between
   texts.

Peak memory is measured in two child processes (this script with
``--child``), so that the peaks are independent: one runs the same pipeline
on the first 10,000 records, the other on all of them; each reports its
peak RSS after its run (``VmHWM``; ``ru_maxrss`` is wrong here: on Linux a
child inherits its parent's peak through ``fork``/``exec``).  A streaming
run shows about the same peak for both (goal: a difference under 50 MB).
With ``--token-workers`` the workers' own memory (about 100 MiB each:
an interpreter and the encoding) is not included.

Timings are the best of ``--repeats`` alternating rounds (run, then
baselines).  On a shared machine wall-clock times move with other load;
the CPU-time ratio (``cpu_ratio_vs_tiktoken``, this process only) moves
less, and is the one to compare while the run is single-threaded.  CPU
time of helper processes the run waits for is ``helper_cpu_seconds``.

Units: text in MB (10^6 bytes of UTF-8), memory in MiB (2^20 bytes; the
JSON keys say ``mb`` as the issue asks).

Run it (about 2-3 minutes at the default 100,000 records on two cores, plus
about 1 minute per extra repeat)::

    TIKTOKEN_CACHE_DIR=../shared/tiktoken-cache .venv/bin/python benchmarks/prep_throughput.py
    .venv/bin/python benchmarks/prep_throughput.py --docs 20000 --repeats 3   # quicker

It prints a short table, then, as its last line, one JSON object with the
figures (``docs_per_s``, ``time_ratio_vs_tiktoken``, ``rss_mb_10k``,
``rss_mb_100k``, ...).  With ``--docs`` below 100,000 the ``rss_mb_100k``
figure is for ``--docs`` records and ``rss_docs_large`` says so.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import tiktoken

from finetune_web import JsonlSource, Pipeline

ENCODING = "o200k_base"
MODEL = "gpt-4o-mini"
SMALL_DOCS = 10_000
BATCH_EXAMPLES = 1_024
SYSTEM = "You are a copywriter for an online store. Write clear, accurate product descriptions."
USER = "Write a product description for {title} by {brand}.\nKey features: {features}"
ASSISTANT = "{description}"

_VOCABULARY = """
the a an and or but with for from into over under of to in on at by as is are was be
this that these those it its our your their every each more most less very quite also
durable lightweight compact portable wireless rechargeable waterproof stainless premium
ergonomic adjustable foldable breathable insulated reinforced modular versatile sleek
quiet powerful efficient reliable sturdy soft smooth natural organic recycled handmade
classic modern minimalist vintage elegant rugged comfortable stylish practical innovative
design quality material finish surface handle grip base frame shell lining strap pocket
zipper button cable charger battery motor sensor display screen speaker microphone lens
filter blade bowl lid bottle cup pan pot kettle mug jar tray rack shelf drawer cabinet
desk chair lamp bulb cushion pillow blanket sheet towel mat rug curtain basket bag case
cover sleeve jacket shoe boot sock glove hat scarf belt wallet watch band ring necklace
kitchen bathroom bedroom office garden garage outdoor indoor travel camping hiking
running cycling fitness yoga cooking baking cleaning storage lighting heating cooling
steel aluminium bamboo oak walnut leather cotton linen wool silk nylon polyester glass
ceramic silicone rubber plastic copper brass titanium carbon fabric mesh foam canvas
keeps holds fits folds charges lasts protects supports cleans heats cools stores carries
delivers offers features includes provides combines ensures reduces improves resists
everyday long lasting easy simple quick safe secure gentle strong light heavy thick thin
wide narrow tall short large small medium extra high low fast slow warm cool dry fresh
hours minutes days weeks months years time use care wash hand machine dishwasher oven
microwave freezer safe free tested certified approved recommended designed engineered
family kids adults pets home work school gifts holidays weekends mornings evenings
perfect ideal great excellent superb reliable trusted popular favorite essential
"""
_WORDS = _VOCABULARY.split()

_UNICODE = [
    "café",
    "naïve",
    "Zürich",
    "crème brûlée",
    "déjà vu",
    "piñata",
    "façade",
    "–",
    "—",
    "™",
    "°C",
    "±2 mm",
    "×2",
    "½",
    "€19.99",
    "日本製",
    "качество",
    "Köln",
    "São Paulo",
    "jalapeño",
]
_BRANDS = [
    "Northwind",
    "Acme",
    "Lumière",
    "Fjällräven Goods",
    "Bluepeak",
    "Oakhaven",
    "Tidewater",
    "Kōbō Works",
    "Brightline",
    "Evergreen & Co",
]
_NOUNS = ("kettle", "backpack", "lamp", "chair", "blender", "jacket", "speaker", "mug", "tent")
_ADJECTIVES = ("compact", "premium", "classic", "ultralight", "insulated", "wireless", "foldable")


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(7, 18))
    if rng.random() < 0.25:
        words.insert(rng.randrange(len(words)), rng.choice(_UNICODE))
    if rng.random() < 0.3:
        words.insert(
            rng.randrange(len(words)),
            f"{rng.randint(2, 250)} {rng.choice(['mm', 'cm', 'g', 'kg', 'W', 'ml'])}",
        )
    if len(words) > 8 and rng.random() < 0.4:
        words[len(words) // 2] += ","
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....!?")


def _description(rng: random.Random, words: int) -> str:
    sentences: list[str] = []
    count = 0
    while count < words:
        sentence = _sentence(rng)
        sentences.append(sentence)
        count += sentence.count(" ") + 1
    return " ".join(sentences)


def product(rng: random.Random, index: int, words: int) -> dict[str, Any]:
    """Return one generated product record (as a scraper would deliver it)."""
    brand = rng.choice(_BRANDS)
    noun = rng.choice(_NOUNS)
    adjective = rng.choice(_ADJECTIVES)
    title = f"{brand} {adjective.capitalize()} {noun.capitalize()} {rng.randint(100, 999)}"
    features = [_sentence(rng).rstrip(".!?") for _ in range(rng.randint(3, 6))]
    return {
        "url": f"https://shop.example.com/p/{index:07d}",
        "sku": f"SKU-{rng.randrange(16**8):08X}",
        "title": title,
        "brand": brand,
        "price": round(rng.uniform(5, 500), 2),
        "currency": rng.choice(["USD", "EUR", "GBP"]),
        "rating": round(rng.uniform(2.5, 5.0), 1),
        "features": features,
        "description": _description(rng, words),
    }


def generate(path: Path, docs: int, *, words: int, seed: int) -> None:
    """Write ``docs`` product records as JSON Lines to ``path`` (streamed)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for index in range(docs):
            handle.write(json.dumps(product(rng, index, words), ensure_ascii=False) + "\n")


def copy_head(source: Path, target: Path, lines: int) -> None:
    """Copy the first ``lines`` lines of ``source`` into ``target``."""
    with source.open("rb") as reader, target.open("wb") as writer:
        writer.writelines(islice(reader, lines))


def build_pipeline(path: Path) -> Pipeline:
    """Return the benchmarked pipeline: JSONL -> template -> split (validate/count in run())."""
    return (
        Pipeline.from_source(JsonlSource(path))
        .template(system=SYSTEM, user=USER, assistant=ASSISTANT)
        .split(validation=0.1)
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pipeline(
    path: Path, out: Path, token_workers: int | None = None
) -> tuple[float, float, float, dict[str, Any]]:
    """Run the pipeline into ``out`` (``token_workers``: ``None`` keeps run()'s default).

    Returns:
        Wall seconds, CPU seconds of this process, CPU seconds of the helper
        processes the run started and waited for, and the report as JSON.
    """
    pipeline = build_pipeline(path)
    options = {} if token_workers is None else {"token_workers": token_workers}
    wall, cpu, helpers = time.perf_counter(), time.process_time(), _children_cpu()
    report = pipeline.run(out, models=(MODEL,), **options)
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu,
        _children_cpu() - helpers,
        report.to_json(),
    )


def written_texts(out: Path) -> Iterator[list[str]]:
    """Yield the message contents in the run's output files, in batches of examples."""
    for name in ("train.jsonl", "validation.jsonl"):
        path = out / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            while True:
                lines = list(islice(handle, BATCH_EXAMPLES))
                if not lines:
                    break
                yield [
                    message["content"]
                    for line in lines
                    for message in json.loads(line)["messages"]
                    if message["content"]
                ]


def time_tiktoken(out: Path, encoding: tiktoken.Encoding) -> dict[str, float]:
    """Time tiktoken alone on the texts the run encoded (only the encode calls are timed).

    Returns:
        ``single`` / ``single_cpu``: wall and CPU seconds of ``encode_ordinary`` per text;
        ``batch``: wall seconds of ``encode_ordinary_batch(num_threads=2)``;
        ``bytes``: UTF-8 size of the texts; ``tokens``: their token count.
    """
    single = single_cpu = batch = 0.0
    size = tokens = batch_tokens = 0
    for texts in written_texts(out):
        size += sum(len(text.encode("utf-8")) for text in texts)
        wall, cpu = time.perf_counter(), time.process_time()
        for text in texts:
            tokens += len(encoding.encode_ordinary(text))
        single += time.perf_counter() - wall
        single_cpu += time.process_time() - cpu
        wall = time.perf_counter()
        encoded = encoding.encode_ordinary_batch(texts, num_threads=2)
        batch += time.perf_counter() - wall
        batch_tokens += sum(map(len, encoded))
    if tokens != batch_tokens:
        raise SystemExit(f"tiktoken gave {tokens} tokens one by one, {batch_tokens} batched")
    return {
        "single": single,
        "single_cpu": single_cpu,
        "batch": batch,
        "bytes": size,
        "tokens": tokens,
    }


def check_report(report: dict[str, Any], docs: int) -> int:
    """Check that every record was written (none rejected); return the examples written."""
    written = sum(
        output["records"]
        for output in report["outputs"]
        if output["name"] in ("train.jsonl", "validation.jsonl")
    )
    rejected = sum(step["rejected"] for step in report["steps"])
    if written != docs or rejected:
        raise SystemExit(
            f"the run wrote {written} of {docs} examples and rejected {rejected}: "
            "the benchmark data or the pipeline is broken"
        )
    return written


def _status_kib(field: str) -> int | None:
    """Return a ``kB`` field of ``/proc/self/status`` (Linux), or ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def child(path: Path, docs: int, token_workers: int | None) -> None:
    """Run the pipeline once and print its peak RSS (the ``--child`` mode).

    The peak is ``VmHWM``, the high-water mark of this process image.  On Linux
    ``ru_maxrss`` is not used: it carries over the parent's peak through
    ``fork``/``exec``, so a child of a big parent reports the parent's size.
    """
    tiktoken.get_encoding(ENCODING)
    before = _status_kib("VmRSS")
    with tempfile.TemporaryDirectory(prefix="prep-child-") as tmp:
        *_, report = run_pipeline(path, Path(tmp), token_workers)
        check_report(report, docs)
    peak = _status_kib("VmHWM")
    if peak is None:  # not Linux: ru_maxrss (bytes on macOS, KiB elsewhere)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak //= 1024 if sys.platform == "darwin" else 1
    print(json.dumps({"docs": docs, "peak_kib": peak, "before_run_kib": before}))


def peak_rss_mib(path: Path, docs: int, token_workers: int | None) -> tuple[float, float | None]:
    """Run the pipeline in a child process on ``path``.

    Returns:
        The child's peak RSS and its RSS just before the run (encoding loaded), in MiB.
    """
    command = [sys.executable, __file__, "--child", str(path), "--docs", str(docs)]
    if token_workers is not None:
        command += ["--token-workers", str(token_workers)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    before = result["before_run_kib"]
    return result["peak_kib"] / 1024, None if before is None else before / 1024


def measure(
    data: Path, out: Path, docs: int, repeat: int, token_workers: int | None
) -> dict[str, float]:
    """Time our run and tiktoken alone, alternately, ``repeat`` times; keep the best of each."""
    encoding = tiktoken.get_encoding(ENCODING)  # loaded once, outside every timing
    best: dict[str, float] = {}
    for _ in range(repeat):
        wall, cpu, helpers, report = run_pipeline(data, out, token_workers)
        check_report(report, docs)
        figures = {
            "run": wall,
            "run_cpu": cpu,
            "helper_cpu": helpers,
            **time_tiktoken(out, encoding),
        }
        for key, value in figures.items():
            best[key] = min(best.get(key, value), value)
    return best


def main(argv: list[str] | None = None) -> None:
    """Generate the data, time the run and the baselines, measure peak RSS, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000, help="records (default 100,000)")
    parser.add_argument("--words", type=int, default=300, help="words per description")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument(
        "--repeats", type=int, default=1, help="time run and baselines N times, keep the best"
    )
    parser.add_argument(
        "--token-workers",
        type=int,
        default=None,
        help="pass token_workers=N to Pipeline.run (tokenize in N worker processes; "
        "default: run()'s own default)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child runs")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.docs, args.token_workers)
        return

    with tempfile.TemporaryDirectory(prefix="prep-throughput-") as tmp:
        root = Path(tmp)
        data = root / "products.jsonl"
        started = time.perf_counter()
        generate(data, args.docs, words=args.words, seed=args.seed)
        print(
            f"generated {args.docs:,} records ({data.stat().st_size / 1e6:,.1f} MB of JSONL) "
            f"in {time.perf_counter() - started:.1f} s (not timed)",
            file=sys.stderr,
        )
        best = measure(data, root / "out", args.docs, max(1, args.repeats), args.token_workers)
        small = min(SMALL_DOCS, args.docs)
        rss_small = rss_large = rss_before = None
        if not args.no_rss:
            head = root / "head.jsonl"
            copy_head(data, head, small)
            rss_small, _ = peak_rss_mib(head, small, args.token_workers)
            rss_large, rss_before = peak_rss_mib(data, args.docs, args.token_workers)

    docs, mb, seconds = args.docs, best["bytes"] / 1e6, best["run"]
    workers = "" if args.token_workers is None else f", token_workers={args.token_workers}"
    rows = [
        (f"our run (read, template, split, count, write{workers})", seconds, best["run_cpu"]),
        ("tiktoken encode_ordinary, 1 thread (the baseline)", best["single"], best["single_cpu"]),
        ("tiktoken encode_ordinary_batch, 2 threads", best["batch"], None),
    ]
    print(f"{docs:,} examples, {mb:,.1f} MB of message text, {best['tokens']:,.0f} tokens")
    print(f"{'':64} {'wall s':>7} {'cpu s':>7} {'docs/s':>8} {'MB/s':>6}")
    for label, wall, cpu in rows:
        shown = "" if cpu is None else f"{cpu:7.2f}"
        print(f"{label:64} {wall:7.2f} {shown:>7} {docs / wall:8,.0f} {mb / wall:6.1f}")
    print(
        f"ratio vs 1-thread tiktoken: {seconds / best['single']:.2f} wall, "
        f"{best['run_cpu'] / best['single_cpu']:.2f} cpu (goal <= 1.5); "
        f"vs 2-thread batch: {seconds / best['batch']:.2f} wall"
    )
    if best["helper_cpu"]:
        print(f"the run's helper processes used {best['helper_cpu']:.2f} s of CPU besides")
    if rss_small is not None and rss_large is not None:
        print(
            f"peak RSS: {rss_small:,.1f} MiB at {small:,} records, {rss_large:,.1f} MiB at "
            f"{docs:,}; difference {rss_large - rss_small:,.1f} MiB (goal < 50); "
            f"{rss_before or 0:,.1f} MiB before the run (interpreter, libraries, encoding)"
        )
    rss_diff = None if rss_small is None or rss_large is None else rss_large - rss_small
    figures = {
        "docs_per_s": round(docs / seconds, 1),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(best["run_cpu"], 3),
        "helper_cpu_seconds": round(best["helper_cpu"], 3),
        "tiktoken_seconds": round(best["single"], 3),
        "tiktoken_cpu_seconds": round(best["single_cpu"], 3),
        "time_ratio_vs_tiktoken": round(seconds / best["single"], 3),
        "cpu_ratio_vs_tiktoken": round(best["run_cpu"] / best["single_cpu"], 3),
        "tiktoken_batch_seconds": round(best["batch"], 3),
        "tiktoken_batch_threads": 2,
        "time_ratio_vs_tiktoken_batch": round(seconds / best["batch"], 3),
        "rss_mb_10k": None if rss_small is None else round(rss_small, 1),
        "rss_mb_100k": None if rss_large is None else round(rss_large, 1),
        "rss_diff_mb": None if rss_diff is None else round(rss_diff, 1),
        "rss_mb_before_run": None if rss_before is None else round(rss_before, 1),
        "rss_docs_small": small,
        "rss_docs_large": docs,
        "docs": docs,
        "mb_of_text": round(mb, 2),
        "tokens": int(best["tokens"]),
        "encoding": ENCODING,
        "repeats": max(1, args.repeats),
        "token_workers": args.token_workers,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
