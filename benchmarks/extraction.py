"""Main-text extraction: ExtractMainText against trafilatura's defaults on 181 real pages.

What is measured
----------------
1. **Data**: the article-extraction benchmark published by Scrapinghub
   (``../shared/realdata/article_extraction_benchmark``, MIT): 181 news and
   blog pages ``html/<id>.html.gz`` and their gold article text
   ``ground-truth.json`` (``{id: {"articleBody", "url"}}``).  Reading and
   decompressing the pages is not timed.
2. **The metric** is the benchmark's own: each text is split into words
   (``\\w+``, case kept), the words into overlapping 4-word shingles
   (a text of fewer than 4 words is one shorter shingle), and the shingle
   multisets of prediction and gold are matched into true positives, false
   positives and false negatives, divided by their sum so that every page
   weighs the same.  Precision is the mean of per-page precision over the
   pages where something was predicted; recall the mean of per-page recall
   over the pages with gold text; F1 is the harmonic mean of those two means.
   A rejected page counts as an empty prediction.  The scorer is checked by
   recomputing the figures of the benchmark's stored outputs (``output/*.json``;
   the benchmark's README gives trafilatura 0.958, readability 0.922).
3. **Ours**: ``ExtractMainText()`` with its defaults over the 181 documents
   in one stream; its output is scored *as written*, light markdown included:
   the markers (``#``, ``- ``, ``|``, backticks) are not word characters, so
   the word split leaves them out and nothing needs stripping.
4. **trafilatura**: ``trafilatura.extract(html)`` with every default (which
   keeps readers' comments), and, for reference, with
   ``include_comments=False`` as the benchmark's own runner calls it.
5. **Speed**: pages per second in this one process, single-threaded, by
   wall clock and by this process's CPU time (steadier on a busy machine);
   the runs alternate, ``--repeats`` times each, and the best time counts.
   ``ExtractMainText(favor_precision=True)`` and ``with_metadata=False``
   (no title, date or canonical URL) are run too, for comparison.

Run it (one to two minutes)::

    .venv/bin/python benchmarks/extraction.py
    .venv/bin/python benchmarks/extraction.py --repeats 1   # quicker

It prints a table, then, as its last line, one JSON object with the figures
(``f1``, ``precision``, ``recall``, ``pages_per_s``, ``trafilatura_f1``,
``trafilatura_pages_per_s``, ``reference_trafilatura_f1``, ``n_pages``...).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from finetune_web.records import Document, Rejection
from finetune_web.transforms.extract import ExtractMainText

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
BENCHMARK = REALDATA / "article_extraction_benchmark"
_WORD = re.compile(r"\w+")

#: Per-page shares of true positives, false positives and false negatives.
Counts = tuple[float, float, float]


def shingles(text: str | None, size: int = 4) -> Counter[tuple[str, ...]]:
    """Return the multiset of word ``size``-grams of ``text`` (a short text is one shingle)."""
    words = _WORD.findall(text or "")
    if len(words) <= size:
        return Counter([tuple(words)]) if words else Counter()
    return Counter(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def page_counts(gold: str | None, predicted: str | None) -> Counts:
    """Match the shingles of one page; return ``(tp, fp, fn)`` divided by their sum."""
    want, got = shingles(gold), shingles(predicted)
    tp = sum((want & got).values())
    fp = sum((got - want).values())
    fn = sum((want - got).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _ratio(hit: float, miss: float, other: float) -> float:
    if miss == other == 0:
        return 1.0
    return hit / (hit + miss) if hit + miss else 0.0


def aggregate(per_page: Sequence[Counts]) -> dict[str, float]:
    """Return the benchmark's ``precision``, ``recall`` and ``f1`` of per-page counts."""
    precision = statistics.mean(_ratio(tp, fp, fn) for tp, fp, fn in per_page if tp + fp > 0)
    recall = statistics.mean(_ratio(tp, fn, fp) for tp, fp, fn in per_page if tp + fn > 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def score(gold: Mapping[str, str], predicted: Mapping[str, str | None]) -> dict[str, float]:
    """Score predictions (a missing page is an empty one) against the gold texts."""
    return aggregate([page_counts(text, predicted.get(key)) for key, text in gold.items()])


def load_gold(folder: Path = BENCHMARK) -> dict[str, str]:
    """Return ``{page id: gold article text}``."""
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    return {key: value.get("articleBody") or "" for key, value in truth.items()}


def load_pages(folder: Path = BENCHMARK, ids: Iterable[str] | None = None) -> dict[str, str]:
    """Return ``{page id: HTML}`` for ``ids`` (every page when ``None``)."""
    wanted = list(ids) if ids is not None else sorted(load_gold(folder))
    pages = {}
    for key in wanted:
        with gzip.open(folder / "html" / f"{key}.html.gz", "rt", encoding="utf-8") as handle:
            pages[key] = handle.read()
    return pages


def stored_outputs(folder: Path = BENCHMARK) -> dict[str, tuple[str, dict[str, str | None]]]:
    """Return the benchmark's stored outputs: ``{extractor: (version, {id: text})}``."""
    out = {}
    for path in sorted((folder / "output").glob("*.json")):
        stored = json.loads(path.read_text(encoding="utf-8"))
        texts = {key: value.get("articleBody") for key, value in stored["output"].items()}
        out[path.stem] = (str(stored.get("version", "?")), texts)
    return out


#: Wall-clock and CPU seconds of one timed run.
Timing = tuple[float, float]


def run_ours(step: ExtractMainText, docs: Sequence[Document]) -> tuple[Timing, dict[str, str]]:
    """Time ``step`` over ``docs``; return (wall, CPU) seconds and ``{id: text}``.

    Rejected pages are left out of the texts (they score as empty).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    outputs = list(step.transform(docs))
    timing = (time.perf_counter() - wall, time.process_time() - cpu)
    return timing, {o.id: o.text or "" for o in outputs if isinstance(o, Document)}


def run_function(
    extract: Callable[[str], str | None], pages: Mapping[str, str]
) -> tuple[Timing, dict[str, str | None]]:
    """Time ``extract`` over the pages; return (wall, CPU) seconds and ``{id: text}``."""
    wall, cpu = time.perf_counter(), time.process_time()
    texts = {key: extract(html) for key, html in pages.items()}
    return (time.perf_counter() - wall, time.process_time() - cpu), texts


def best(timings: Iterable[Timing]) -> Timing:
    """Return the least wall-clock and the least CPU time of several runs."""
    runs = list(timings)
    return min(w for w, _ in runs), min(c for _, c in runs)


def rejections(step: ExtractMainText, docs: Sequence[Document]) -> dict[str, int]:
    """Return how many pages ``step`` rejects, per reason."""
    found = Counter(o.reason for o in step.transform(docs) if isinstance(o, Rejection))
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> None:
    """Score and time both extractors, print a table and the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each extractor")
    parser.add_argument("--data", type=Path, default=BENCHMARK, help="the benchmark's folder")
    args = parser.parse_args(argv)

    import trafilatura

    gold = load_gold(args.data)
    pages = load_pages(args.data, gold)
    docs = [Document(id=key, text=html) for key, html in pages.items()]
    n = len(pages)

    def defaults(html: str) -> str | None:
        return trafilatura.extract(html)

    def no_comments(html: str) -> str | None:
        return trafilatura.extract(html, include_comments=False)

    ours_steps = {
        "ExtractMainText() [ours]": ExtractMainText(),
        "ExtractMainText(favor_precision=True)": ExtractMainText(favor_precision=True),
        "ExtractMainText(with_metadata=False)": ExtractMainText(with_metadata=False),
    }
    functions: dict[str, Callable[[str], str | None]] = {
        "trafilatura.extract(html) [defaults]": defaults,
        "trafilatura.extract(include_comments=False)": no_comments,
    }
    timings: dict[str, list[Timing]] = {name: [] for name in [*ours_steps, *functions]}
    texts: dict[str, Mapping[str, str | None]] = {}
    run_ours(ours_steps["ExtractMainText() [ours]"], docs[:10])  # imports, first-call set-up
    for _ in range(args.repeats):
        for name, step in ours_steps.items():
            timing, texts[name] = run_ours(step, docs)
            timings[name].append(timing)
        for name, function in functions.items():
            timing, texts[name] = run_function(function, pages)
            timings[name].append(timing)

    rows: list[tuple[str, Timing | None, dict[str, float]]] = [
        (name, best(timings[name]), score(gold, texts[name])) for name in timings
    ]
    stored = stored_outputs(args.data)
    reference = {name: score(gold, found) for name, (_, found) in stored.items()}
    for name, (version, _) in stored.items():
        rows.append((f"stored output/{name}.json ({version})", None, reference[name]))

    print(f"{n} pages, 4-gram shingle F1 (markdown markers are not words: scored as output)")
    print(f"{'extractor':46} {'pages/s':>8} {'CPU p/s':>8} {'prec.':>7} {'recall':>7} {'F1':>7}")
    for name, spent, found in rows:
        speed = f"{n / spent[0]:8.1f} {n / spent[1]:8.1f}" if spent else f"{'-':>8} {'-':>8}"
        print(
            f"{name:46} {speed} {found['precision']:7.4f} {found['recall']:7.4f} {found['f1']:7.4f}"
        )
    step = ours_steps["ExtractMainText() [ours]"]
    rejected = rejections(step, docs)
    print(f"rejected by ExtractMainText(): {rejected or 'none'}")
    ours, theirs = rows[0], rows[3]
    ours_t, theirs_t = best(timings[ours[0]]), best(timings[theirs[0]])
    figures: dict[str, Any] = {
        "n_pages": n,
        "f1": ours[2]["f1"],
        "precision": ours[2]["precision"],
        "recall": ours[2]["recall"],
        "pages_per_s": n / ours_t[0],
        "cpu_pages_per_s": n / ours_t[1],
        "rejected": rejected,
        "trafilatura_f1": theirs[2]["f1"],
        "trafilatura_precision": theirs[2]["precision"],
        "trafilatura_recall": theirs[2]["recall"],
        "trafilatura_pages_per_s": n / theirs_t[0],
        "trafilatura_cpu_pages_per_s": n / theirs_t[1],
        "trafilatura_version": trafilatura.__version__,
        "cpu_time_ratio_vs_trafilatura": ours_t[1] / theirs_t[1],
        "favor_precision_f1": rows[1][2]["f1"],
        "without_metadata_cpu_pages_per_s": n / best(timings[rows[2][0]])[1],
        "trafilatura_no_comments_f1": rows[4][2]["f1"],
        "reference_trafilatura_f1": reference.get("trafilatura", {}).get("f1"),
        "reference_f1": {name: value["f1"] for name, value in reference.items()},
        "markdown_stripped": False,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
