"""Near-duplicate detection: NearDedup against datasketch, on planted pairs and on real data.

What is measured
----------------
1. **A planted corpus** (generated, not timed): ``--docs`` documents of
   about 300 words drawn from a seeded Zipf-like vocabulary of 30,000 made-up
   words.  A fifth of them are near-duplicates of an earlier original, made
   by editing each word with a probability drawn from [0, 0.05] (substitute
   60%, delete 20%, insert 20%; one in twenty is an exact copy).  Every
   planted pair's true Jaccard similarity on word 5-gram sets is computed
   exactly with Python sets of word tuples, independently of the library.
   *Positives* are the planted pairs with Jaccard >= the threshold.
2. **Ours**: ``NearDedup(threshold=0.8)`` (keep-first mode, defaults) over
   the documents; **datasketch**: the usual end-to-end loop with the same
   tokens and 5-gram shingles, ``MinHash(num_perm=128)`` (permutations made
   once and shared, which helps datasketch) and ``MinHashLSH(threshold=0.8)``:
   query, then insert when nothing is found.  Both run in this process,
   alternating, ``--repeats`` times each; the best time of each counts.
3. **Accuracy**.  ``recall``: positives whose later document was rejected.
   ``precision``: rejections whose document really has Jaccard >= threshold
   with the record it was said to duplicate (exact reference sets);
   ``precision_planted``: rejections pairing two members of one planted
   family.  For datasketch, a flagged document counts as correct when any
   returned candidate really is that similar (generous to datasketch).
4. **Index size**: ``tracemalloc`` of the live index after the last
   document, divided by the documents indexed (a separate, untimed run on
   ``--memory-docs`` documents, for both libraries).
5. **Before/after batching**: ours with ``batch_size=1`` (one document per
   numpy call) on ``--memory-docs`` documents.
6. **Real data**: the Bright Data Amazon keyword dataset (367 products, 29 of
   them scraped twice) in group mode on title + description + features +
   product details (the item's own text, without prices, delivery, ratings
   or timestamps, which change between two scrapes of one page; the details
   table tells variant listings apart).  ``amazon_recall``: products scraped
   twice whose two records share a group; ``amazon_precision``: groups whose
   records all have one ASIN.  The same with title + description + features
   only is printed for comparison.

Run it (about 1-3 minutes at the default 20,000 documents on two cores)::

    .venv/bin/pip install datasketch   # benchmark only
    .venv/bin/python benchmarks/dedup.py
    .venv/bin/python benchmarks/dedup.py --docs 5000   # quicker

It prints a table, then, as its last line, one JSON object with the figures
(``recall``, ``precision``, ``docs_per_s``, ``datasketch_docs_per_s``,
``speedup``, ``index_bytes_per_doc``, ``amazon_duplicate_groups_found``...).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import time
import tracemalloc
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finetune_web.records import Document, Rejection, StepMetric
from finetune_web.sources import JsonSource
from finetune_web.transforms.near_dedup import NearDedup, candidate_probability

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
AMAZON = REALDATA / "brightdata_amazon" / "amazon_global_dataset_by_keyword.json"
AMAZON_FIELDS = ("title", "description", "features", "product_details")
_WORD = re.compile(r"\w+")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def words_of(text: str) -> list[str]:
    """Return the words of ``text`` as the reference sees them (NFKC, case-folded)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def shingles_of(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Return the reference word n-gram set (a short text is one shingle)."""
    words = words_of(text)
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def exact_jaccard(left: set[tuple[str, ...]], right: set[tuple[str, ...]]) -> float:
    """Return the Jaccard similarity of two reference sets."""
    return len(left & right) / len(left | right)


class Corpus:
    """A seeded corpus with planted near-duplicates and their true similarity.

    Args:
        docs: number of documents.
        words: words per original document.
        seed: the generator's seed.
        dup_fraction: share of documents that are edited copies.
    """

    def __init__(self, docs: int, *, words: int = 300, seed: int = 0, dup_fraction: float = 0.2):
        rng = random.Random(seed)
        vocab = ["".join(rng.choices(_LETTERS, k=rng.randint(2, 10))) for _ in range(30_000)]
        weights = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(vocab))))
        originals = docs - int(docs * dup_fraction)
        texts: list[list[str]] = [
            rng.choices(vocab, cum_weights=weights, k=words) for _ in range(originals)
        ]
        times = [rng.random() for _ in range(originals)]
        family = list(range(originals))
        for _ in range(docs - originals):
            source = rng.randrange(originals)
            rate = 0.0 if rng.random() < 0.05 else rng.uniform(0.0, 0.05)
            texts.append(self._edit(texts[source], rate, vocab, weights, rng))
            times.append(times[source] + rng.random() * (1.0 - times[source]))
            family.append(source)
        order = sorted(range(docs), key=times.__getitem__)
        self.texts = [" ".join(texts[i]) + "." for i in order]
        self.family = [family[i] for i in order]
        position = {doc: rank for rank, doc in enumerate(order)}
        self.pairs = [(position[family[doc]], position[doc]) for doc in range(originals, docs)]
        sets = [shingles_of(text) for text in self.texts]
        self.sets = sets
        self.pair_jaccard = [exact_jaccard(sets[a], sets[b]) for a, b in self.pairs]

    @staticmethod
    def _edit(
        words: list[str],
        rate: float,
        vocab: list[str],
        cum_weights: list[float],
        rng: random.Random,
    ) -> list[str]:
        out: list[str] = []
        for word in words:
            if rng.random() >= rate:
                out.append(word)
                continue
            action = rng.random()
            if action < 0.6:
                out.append(rng.choices(vocab, cum_weights=cum_weights)[0])
            elif action < 0.8:
                out.extend((word, rng.choices(vocab, cum_weights=cum_weights)[0]))
            # else: deleted
        return out

    def documents(self) -> list[Document]:
        """Return the corpus as documents ``d0``, ``d1``..."""
        return [Document(id=f"d{i}", text=text) for i, text in enumerate(self.texts)]


def run_ours(
    step: NearDedup, docs: Sequence[Document]
) -> tuple[float, dict[int, tuple[int, float]], dict[str, float]]:
    """Time ``step`` over ``docs``; return seconds, {rejected: (kept, jaccard)}, metrics."""
    start = time.perf_counter()
    outputs = list(step.transform(docs))
    seconds = time.perf_counter() - start
    rejected = {
        int(str(o.record_id)[1:]): (int(o.details["duplicate_of"][1:]), o.details["jaccard"])
        for o in outputs
        if isinstance(o, Rejection)
    }
    metrics = {o.name: o.value for o in outputs if isinstance(o, StepMetric)}
    return seconds, rejected, metrics


def datasketch_loop(
    texts: Sequence[str], threshold: float
) -> tuple[float, dict[int, list[int]], Any]:
    """Run datasketch end to end; return seconds, {flagged: candidates}, the LSH index."""
    from datasketch import MinHash, MinHashLSH

    permutations = MinHash(num_perm=128).permutations
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    flagged: dict[int, list[int]] = {}
    for i, text in enumerate(texts):
        words = words_of(text)
        shingles = {" ".join(words[j : j + 5]).encode() for j in range(max(len(words) - 4, 1))}
        minhash = MinHash(num_perm=128, permutations=permutations, scheme="affine32")
        minhash.update_batch(list(shingles))
        found = lsh.query(minhash)
        if found:
            flagged[i] = [int(key) for key in found]
        else:
            lsh.insert(str(i), minhash)
    return time.perf_counter() - start, flagged, lsh


def accuracy(corpus: Corpus, threshold: float, decided: dict[int, list[int]]) -> dict[str, float]:
    """Return recall, precision and planted precision of duplicate decisions.

    Args:
        corpus: the corpus with its reference sets.
        threshold: the similarity that makes a positive.
        decided: rejected document -> the records it was said to duplicate.
    """
    positives = [
        b for (a, b), j in zip(corpus.pairs, corpus.pair_jaccard, strict=True) if j >= threshold
    ]
    found = sum(1 for b in positives if b in decided)
    correct = planted = 0
    for doc, others in decided.items():
        best = max(exact_jaccard(corpus.sets[doc], corpus.sets[o]) for o in others)
        correct += best >= threshold
        planted += any(corpus.family[o] == corpus.family[doc] for o in others)
    count = max(len(decided), 1)
    return {
        "positives": len(positives),
        "recall": found / max(len(positives), 1),
        "precision": correct / count,
        "precision_planted": planted / count,
    }


def recall_by_band(corpus: Corpus, decided: dict[int, Any], threshold: float) -> dict[str, float]:
    """Return recall per Jaccard band of the positives (0.80-0.85, ...)."""
    edges = [threshold, 0.85, 0.9, 0.95, 1.0 + 1e-9]
    out: dict[str, float] = {}
    for low, high in itertools.pairwise(edges):
        docs = [
            b
            for (_, b), j in zip(corpus.pairs, corpus.pair_jaccard, strict=True)
            if low <= j < high
        ]
        if docs:
            out[f"{low:.2f}-{min(high, 1.0):.2f}"] = sum(b in decided for b in docs) / len(docs)
    return out


def index_bytes(build: Callable[[int], tuple[Any, int]], docs: int) -> float:
    """Return the bytes each further indexed document adds to a live index.

    The traced memory held after indexing ``docs // 2`` and ``docs``
    documents gives the slope, so fixed costs (buffers, tables) drop out.

    Args:
        build: indexes the first n documents; returns the live index and how
            many documents it holds.
        docs: the larger number of documents.
    """
    points: list[tuple[int, int]] = []
    for count in (docs // 2, docs):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        keep_alive, indexed = build(count)
        points.append((indexed, tracemalloc.get_traced_memory()[0] - base))
        tracemalloc.stop()
        del keep_alive
    (small_n, small_b), (large_n, large_b) = points
    return (large_b - small_b) / max(large_n - small_n, 1)


def ours_index(step: NearDedup, docs: Sequence[Document]) -> tuple[Any, int]:
    """Run ``step`` up to its first metric (the index is then complete and alive)."""
    stream = step.transform(docs)
    indexed = 0
    for item in stream:
        if isinstance(item, StepMetric):
            break
        indexed += not isinstance(item, Rejection)
    return stream, indexed


def datasketch_index(texts: Sequence[str]) -> tuple[Any, int]:
    """Build datasketch's LSH over ``texts`` (keep-first); return it and its size."""
    _, flagged, lsh = datasketch_loop(texts, 0.8)
    return lsh, len(texts) - len(flagged)


def amazon(threshold: float, fields: tuple[str, ...]) -> dict[str, Any]:
    """Group the Amazon products and compare the groups with the ASINs scraped twice."""
    docs = [r for r in JsonSource(path=AMAZON).read() if isinstance(r, Document)]
    asin = {d.id: (d.data or {}).get("asin") for d in docs}
    by_asin: dict[Any, list[str]] = defaultdict(list)
    for doc in docs:
        by_asin[asin[doc.id]].append(doc.id)
    twice = {a for a, ids in by_asin.items() if len(ids) > 1}
    step = NearDedup(threshold=threshold, fields=fields, mode="group")
    groups: dict[str, list[str]] = defaultdict(list)
    for item in step.transform(docs):
        if isinstance(item, Document):
            groups[item.metadata["dedup_group"]].append(item.id)
    found = [ids for ids in groups.values() if len(ids) > 1]
    same_asin = [ids for ids in found if len({asin[i] for i in ids}) == 1]
    group_of = {doc: key for key, ids in groups.items() for doc in ids}
    recovered = {a for a in twice if len({group_of[doc] for doc in by_asin[a]}) == 1}
    return {
        "documents": len(docs),
        "scraped_twice": len(twice),
        "groups_found": len(found),
        "groups_matching_asin": len(same_asin),
        "precision": len(same_asin) / max(len(found), 1),
        "recall": len(recovered) / max(len(twice), 1),
        "other_groups": [
            sorted(str(asin[i]) for i in ids) for ids in found if ids not in same_asin
        ],
    }


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus, run both libraries, print a table and the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=20_000, help="documents in the corpus")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each library")
    parser.add_argument("--memory-docs", type=int, default=5_000, help="documents for memory")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    corpus = Corpus(args.docs, seed=args.seed)
    docs = corpus.documents()
    step = NearDedup(threshold=args.threshold)
    bands, rows = step.lsh_params()
    ours_runs: list[float] = []
    theirs_runs: list[float] = []
    for _ in range(args.repeats):
        seconds, rejected, metrics = run_ours(step, docs)
        ours_runs.append(seconds)
        theirs, flagged, lsh = datasketch_loop(corpus.texts, args.threshold)
        theirs_runs.append(theirs)
    ours_s, theirs_s = min(ours_runs), min(theirs_runs)

    decided = {doc: [kept] for doc, (kept, _) in rejected.items()}
    ours_acc = accuracy(corpus, args.threshold, decided)
    theirs_acc = accuracy(corpus, args.threshold, flagged)
    jaccard_error = max(
        (abs(j - exact_jaccard(corpus.sets[d], corpus.sets[k])) for d, (k, j) in rejected.items()),
        default=0.0,
    )
    small = docs[: args.memory_docs]
    unbatched_s, _, _ = run_ours(NearDedup(threshold=args.threshold, batch_size=1), small)
    ours_bytes = index_bytes(lambda n: ours_index(step, docs[:n]), len(small))
    theirs_bytes = index_bytes(lambda n: datasketch_index(corpus.texts[:n]), len(small))
    real = amazon(args.threshold, AMAZON_FIELDS) if AMAZON.is_file() else None
    real_tdf = amazon(args.threshold, AMAZON_FIELDS[:3]) if AMAZON.is_file() else None

    n = len(docs)
    print(f"{n:,} documents, {ours_acc['positives']:,} planted positives (J >= {args.threshold})")
    print(f"ours: {bands} bands x {rows} rows; datasketch: {lsh.b} bands x {lsh.r} rows")
    print(f"{'':28} {'docs/s':>9} {'recall':>7} {'prec.':>7} {'bytes/doc':>10}")
    print(
        f"{'NearDedup':28} {n / ours_s:9,.0f} {ours_acc['recall']:7.4f} "
        f"{ours_acc['precision']:7.4f} {ours_bytes:10,.0f}"
    )
    print(
        f"{'datasketch MinHashLSH':28} {n / theirs_s:9,.0f} {theirs_acc['recall']:7.4f} "
        f"{theirs_acc['precision']:7.4f} {theirs_bytes:10,.0f}"
    )
    print(f"{'NearDedup batch_size=1':28} {len(small) / unbatched_s:9,.0f}")
    print(f"recall by Jaccard band: {recall_by_band(corpus, decided, args.threshold)}")
    if real is not None:
        print(f"Amazon ({', '.join(AMAZON_FIELDS)}): {real}")
        print(f"Amazon ({', '.join(AMAZON_FIELDS[:3])}): {real_tdf}")
    figures: dict[str, Any] = {
        "docs": n,
        "threshold": args.threshold,
        "bands": bands,
        "rows": rows,
        "candidate_probability_at_threshold": candidate_probability(args.threshold, bands, rows),
        "positives": ours_acc["positives"],
        "recall": ours_acc["recall"],
        "precision": ours_acc["precision"],
        "precision_planted": ours_acc["precision_planted"],
        "recall_by_jaccard": recall_by_band(corpus, decided, args.threshold),
        "jaccard_max_error": jaccard_error,
        "candidate_pairs": metrics.get("candidate_pairs"),
        "false_candidates": metrics.get("false_candidates"),
        "docs_per_s": n / ours_s,
        "docs_per_s_batch_size_1": len(small) / unbatched_s,
        "datasketch_docs_per_s": n / theirs_s,
        "datasketch_recall": theirs_acc["recall"],
        "datasketch_precision": theirs_acc["precision"],
        "datasketch_bands_rows": [lsh.b, lsh.r],
        "speedup": theirs_s / ours_s,
        "index_bytes_per_doc": ours_bytes,
        "datasketch_index_bytes_per_doc": theirs_bytes,
        "amazon_fields": list(AMAZON_FIELDS),
        "amazon_duplicate_groups_found": real["groups_found"] if real else None,
        "amazon_groups_matching_asin": real["groups_matching_asin"] if real else None,
        "amazon_scraped_twice": real["scraped_twice"] if real else None,
        "amazon_precision": real["precision"] if real else None,
        "amazon_recall": real["recall"] if real else None,
        "amazon_other_groups": real["other_groups"] if real else None,
        "amazon_title_description_features_groups_found": (
            real_tdf["groups_found"] if real_tdf else None
        ),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
