"""NearDedup: MinHash + LSH for recall, every candidate verified by exact Jaccard."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web import ConfigError, Document, Example, HashSplit, Message, Preference, Rejection
from finetune_web.records import Record, Split, StepMetric
from finetune_web.testing import check_transformer
from finetune_web.transforms._minhash import Shingler, jaccard
from finetune_web.transforms.near_dedup import (
    TARGET_RECALL,
    NearDedup,
    candidate_probability,
    choose_bands,
)

VOCAB = [f"w{i}" for i in range(40)] + ["Ärger", "STRASSE", "straße", "नमस्ते", "data_set", "x²"]
AMAZON_FIELDS = ("title", "description", "features", "product_details")
#: Recall-saturating LSH for the exact properties: with one row per band a
#: pair at J = 0.8 misses all 64 bands with probability 0.2**64.
SATURATED = NearDedup(bands=64, rows=1)


def _reference_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Word n-grams computed the slow, obvious way (letters, marks, digits and _)."""
    words: list[str] = []
    current = ""
    for char in unicodedata.normalize("NFKC", text).casefold():
        if unicodedata.category(char)[0] in "LMN" or char == "_":
            current += char
        elif current:
            words.append(current)
            current = ""
    if current:
        words.append(current)
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _reference_jaccard(left: str, right: str) -> float:
    a, b = _reference_shingles(left), _reference_shingles(right)
    return len(a & b) / len(a | b)


def _docs(texts: list[str]) -> list[Document]:
    return [Document(id=f"d{i}", text=text) for i, text in enumerate(texts)]


def _kept(outputs: Sequence[Record | Rejection | StepMetric]) -> list[Record]:
    return [o for o in outputs if not isinstance(o, Rejection | StepMetric)]


def _rejections(outputs: Sequence[Record | Rejection | StepMetric]) -> list[Rejection]:
    return [o for o in outputs if isinstance(o, Rejection)]


@st.composite
def corpora(draw: st.DrawFn, max_docs: int = 12) -> list[str]:
    """Texts of up to 40 words where some are edited or exact copies of earlier ones."""
    texts: list[str] = []
    for _ in range(draw(st.integers(1, max_docs))):
        copy = draw(st.booleans())
        if texts and copy:
            words = draw(st.sampled_from(texts)).split()
            for position, word in draw(
                st.lists(st.tuples(st.integers(0, 40), st.sampled_from(VOCAB)), max_size=3)
            ):
                if words:
                    words[position % len(words)] = word
            spacing = draw(st.sampled_from([" ", "  ", "\n"]))
            shout = draw(st.booleans())
            texts.append(spacing.join(words).upper() if shout else " ".join(words))
        else:
            texts.append(" ".join(draw(st.lists(st.sampled_from(VOCAB), max_size=40))))
    return texts


def _planted(
    seed: int, docs: int = 300, words: int = 80
) -> tuple[list[str], list[tuple[int, int]]]:
    """Return texts with planted near-duplicates and the (original, copy) pairs."""
    rng = random.Random(seed)
    vocab = [f"v{i}" for i in range(3000)]
    texts = [" ".join(rng.choices(vocab, k=words)) for _ in range(docs)]
    pairs = []
    for _ in range(docs // 2):
        source = rng.randrange(len(texts))
        copy = texts[source].split()
        for _ in range(rng.randint(0, 4)):
            copy[rng.randrange(len(copy))] = rng.choice(vocab)
        pairs.append((source, len(texts)))
        texts.append(" ".join(copy))
    return texts, pairs


def test_default_bands_and_rows_favour_recall() -> None:
    """At 0.8 with 128 permutations the choice is 18 bands x 7 rows, and a pair exactly at
    the threshold becomes a candidate 98.6% of the time (datasketch's 9 x 13: about 40%)."""
    assert choose_bands(0.8, 128) == (18, 7)
    assert NearDedup().lsh_params() == (18, 7)
    assert candidate_probability(0.8, 18, 7) == pytest.approx(0.98554, abs=1e-5)
    assert candidate_probability(0.8, 9, 13) < 0.41


@given(st.floats(0.3, 0.95), st.integers(8, 256))
@settings(deadline=None)
def test_chosen_bands_fit_the_budget_and_meet_the_recall_target(
    threshold: float, num_perm: int
) -> None:
    """Any threshold and budget give bands x rows within the budget that reach the target,
    and one more row per band (with the bands the budget then allows) would miss it."""
    bands, rows = choose_bands(threshold, num_perm)
    assert bands * rows <= num_perm
    if (bands, rows) != (num_perm, 1):
        assert candidate_probability(threshold, bands, rows) >= TARGET_RECALL
    for more in range(rows + 1, num_perm + 1):
        assert candidate_probability(threshold, num_perm // more, more) < TARGET_RECALL


@given(
    st.lists(st.sampled_from([*VOCAB, ",", ".", " - ", "\t", "é", "e\u0301"]), max_size=30),
    st.lists(st.sampled_from([*VOCAB, ",", ".", " - ", "\t", "é", "e\u0301"]), max_size=30),
)
@settings(deadline=None)
def test_hashed_shingles_give_the_exact_jaccard_of_word_ngrams(
    left: list[str], right: list[str]
) -> None:
    """The vectorised hashed shingles have the same count and the same Jaccard similarity
    as word 5-gram tuples built one by one (NFKC, case-folded, punctuation ignored)."""
    a, b = " ".join(left), " ".join(right)
    hashed = Shingler(5, "word", 0).shingle([a, b])
    assert [len(s) for s in hashed] == [len(_reference_shingles(a)), len(_reference_shingles(b))]
    assert jaccard(hashed[0], hashed[1]) == pytest.approx(_reference_jaccard(a, b), abs=1e-12)


@given(st.text(alphabet="ab \t\n\u00a0", max_size=25), st.text(alphabet="ab \t\n", max_size=25))
@settings(deadline=None)
def test_char_shingles_collapse_white_space(left: str, right: str) -> None:
    """Character 3-grams are taken over the text with white space collapsed and stripped."""

    def grams(text: str) -> set[str]:
        flat = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
        return {flat} if len(flat) < 3 else {flat[i : i + 3] for i in range(len(flat) - 2)}

    hashed = Shingler(3, "char", 0).shingle([left, right])
    expected = len(grams(left) & grams(right)) / len(grams(left) | grams(right))
    assert [len(s) for s in hashed] == [len(grams(left)), len(grams(right))]
    assert jaccard(hashed[0], hashed[1]) == pytest.approx(expected, abs=1e-12)


def test_later_near_duplicate_points_at_the_kept_record() -> None:
    """A copy with one word changed is rejected as near_duplicate with the kept id and its
    exact Jaccard similarity; the unrelated record and the original are kept."""
    original = " ".join(f"w{i}" for i in range(60))
    copy = original.replace("w30", "changed")
    outputs = check_transformer(NearDedup(), _docs([original, "something else entirely", copy]))
    assert [o.id for o in _kept(outputs)] == ["d0", "d1"]
    (rejection,) = _rejections(outputs)
    assert (rejection.record_id, rejection.reason, rejection.step) == (
        "d2",
        "near_duplicate",
        "near_dedup",
    )
    assert rejection.details == {
        "duplicate_of": "d0",
        "jaccard": pytest.approx(_reference_jaccard(original, copy)),
    }
    assert "d2 is a near-duplicate of d0" in rejection.message
    assert rejection.record == Document(id="d2", text=copy)


@given(corpora())
@settings(max_examples=60, deadline=None)
def test_in_equals_out_plus_rejected_and_first_occurrences_keep_their_order(
    texts: list[str],
) -> None:
    """Every input leaves exactly once (kept or rejected); kept records keep input order;
    each rejection names a record kept earlier in the stream."""
    docs = _docs(texts)
    outputs = list(NearDedup().transform(docs))
    kept, rejected = _kept(outputs), _rejections(outputs)
    assert len(kept) + len(rejected) == len(docs)
    assert sorted([k.id for k in kept] + [str(r.record_id) for r in rejected]) == sorted(
        d.id for d in docs
    )
    order = {d.id: i for i, d in enumerate(docs)}
    assert [k.id for k in kept] == sorted((k.id for k in kept), key=order.__getitem__)
    kept_ids = {k.id for k in kept}
    for rejection in rejected:
        kept_id = rejection.details["duplicate_of"]
        assert kept_id in kept_ids and order[kept_id] < order[str(rejection.record_id)]


@given(corpora(), st.sampled_from([NearDedup(), SATURATED]))
@settings(max_examples=60, deadline=None)
def test_idempotent(texts: list[str], step: NearDedup) -> None:
    """Running the step on its own output rejects nothing."""
    kept = _kept(list(step.transform(_docs(texts))))
    assert _rejections(list(step.transform(kept))) == []


@given(corpora())
@settings(max_examples=60, deadline=None)
def test_verification_rejects_exactly_the_pairs_at_or_above_the_threshold(
    texts: list[str],
) -> None:
    """Every rejection really is >= 0.8 similar to its kept record (precision 1, checked by
    reference Jaccard), and with a recall-saturating LSH no two kept records are."""
    outputs = list(SATURATED.transform(_docs(texts)))
    for rejection in _rejections(outputs):
        kept_text = texts[int(rejection.details["duplicate_of"][1:])]
        similarity = _reference_jaccard(texts[int(str(rejection.record_id)[1:])], kept_text)
        assert similarity >= 0.8
        assert rejection.details["jaccard"] == pytest.approx(similarity, abs=1e-12)
    kept = [texts[int(k.id[1:])] for k in _kept(outputs)]
    for left, right in itertools.combinations(kept, 2):
        assert _reference_jaccard(left, right) < 0.8


@given(corpora(max_docs=8), st.lists(st.integers(0, 7), max_size=8))
@settings(max_examples=60, deadline=None)
def test_exact_duplicates_are_always_caught(texts: list[str], copies: list[int]) -> None:
    """A later record whose text equals an earlier one (up to case and spacing) is always
    rejected, with the default (not saturated) LSH."""
    texts = texts + [texts[i % len(texts)].upper() for i in copies]
    outputs = list(NearDedup().transform(_docs(texts)))
    rejected = {r.record_id for r in _rejections(outputs)}
    normal = [" ".join(t.casefold().split()) for t in texts]
    for i, text in enumerate(normal):
        if text in normal[:i]:
            assert f"d{i}" in rejected


def test_recall_and_precision_on_planted_pairs() -> None:
    """On 450 seeded documents with planted edits, default settings find >= 95% of the
    pairs with true Jaccard >= 0.8 and every rejection is truly >= 0.8 similar."""
    texts, pairs = _planted(seed=7)
    outputs = list(NearDedup().transform(_docs(texts)))
    rejected = {str(r.record_id): r for r in _rejections(outputs)}
    positives = [b for a, b in pairs if _reference_jaccard(texts[a], texts[b]) >= 0.8]
    assert len(positives) > 60
    assert sum(f"d{b}" in rejected for b in positives) / len(positives) >= 0.95
    for rejection in rejected.values():
        kept = texts[int(rejection.details["duplicate_of"][1:])]
        assert _reference_jaccard(texts[int(str(rejection.record_id)[1:])], kept) >= 0.8


def _examples(texts: list[str]) -> list[Example]:
    return [
        Example(
            id=f"e{i}",
            messages=[Message(role="user", content=t), Message(role="assistant", content="ok")],
        )
        for i, t in enumerate(texts)
    ]


@given(corpora(), st.integers(0, 1000))
@settings(max_examples=60, deadline=None)
def test_group_mode_and_hash_split_keep_near_duplicates_on_one_side(
    texts: list[str], seed: int
) -> None:
    """Group mode keeps every record in order with a group id; HashSplit on that key never
    puts two members of a group on both sides, and (with a recall-saturating LSH) never
    puts two records with Jaccard >= 0.8 on both sides, even through chains."""
    examples = _examples(texts)
    dedup = attrs.evolve(SATURATED, mode="group")
    grouped = _kept(list(dedup.transform(examples)))
    assert [g.id for g in grouped] == [e.id for e in examples]
    split = HashSplit(validation=0.5, seed=seed, group_key="dedup_group")
    sides = {o.id: o.split for o in split.transform(grouped) if isinstance(o, Example)}
    groups: dict[str, set[Split | None]] = defaultdict(set)
    for record in grouped:
        groups[record.metadata["dedup_group"]].add(sides[record.id])
    assert all(len(found) == 1 for found in groups.values())
    keys = [dedup.text_of(e) for e in examples]
    for (i, left), (j, right) in itertools.combinations(enumerate(keys), 2):
        if _reference_jaccard(left, right) >= 0.8:
            assert sides[f"e{i}"] == sides[f"e{j}"]


def test_group_mode_joins_chains_and_names_the_first_member() -> None:
    """A~B and B~C put A, B and C in one group named after A even when A and C are below
    the threshold; an unrelated record is its own group."""
    a = [f"w{i}" for i in range(100)]
    b = [*a[:95], "x1", "x2", "x3", "x4", "x5"]
    c = [*b[:5], "y1", "y2", "y3", "y4", "y5", *b[10:]]
    texts = [" ".join(a), "unrelated words here", " ".join(b), " ".join(c)]
    assert _reference_jaccard(texts[0], texts[3]) < 0.8 <= _reference_jaccard(texts[0], texts[2])
    assert _reference_jaccard(texts[2], texts[3]) >= 0.8
    outputs = check_transformer(NearDedup(mode="group"), _docs(texts))
    assert [o.metadata["dedup_group"] for o in _kept(outputs)] == ["d0", "d1", "d0", "d0"]
    assert _rejections(outputs) == []


@pytest.mark.parametrize("mode", ["first", "group"])
def test_contract_on_every_record_type(mode: str) -> None:
    """check_transformer passes on documents (text and data), examples and preferences."""
    long = " ".join(f"w{i}" for i in range(30))
    records: list[Record] = [
        Document(id="t0", text=long),
        Document(id="t1", text=long + " w99"),
        Document(id="j0", data={"title": long, "n": 3}),
        Document(id="j1", data={"n": 3, "title": long}),
        Document(id="empty"),
        *_examples([long, long.upper()]),
        Preference(
            id="p0",
            messages=[Message(role="user", content=long)],
            preferred=Message(role="assistant", content="yes"),
            non_preferred=Message(role="assistant", content="no"),
        ),
    ]
    outputs = check_transformer(NearDedup(mode=mode), records)  # type: ignore[arg-type]
    if mode == "first":
        assert {str(r.record_id) for r in _rejections(outputs)} == {
            "t1",
            "j0",
            "j1",
            "e0",
            "e1",
            "p0",
        }


def test_text_of_uses_roles_fields_and_leaf_values() -> None:
    """Examples give their chosen roles' texts; documents give the values of the chosen
    fields (strings and numbers, keys left out, object keys sorted), else their text."""
    example = Example(
        messages=[
            Message(role="system", content="sys"),
            Message(role="user", content="question"),
            Message(role="assistant", content="answer"),
        ]
    )
    assert NearDedup().text_of(example) == "question\nanswer"
    assert NearDedup(roles=("user",)).text_of(example) == "question"
    product = Document(
        id="p",
        text="page text",
        data={"title": "Caliper", "specs": [{"value": "8 in", "type": "Range"}], "price": 12.5},
    )
    assert NearDedup().text_of(product) == "page text"
    assert NearDedup(fields=("title", "specs")).text_of(product) == "Caliper\nRange\n8 in"
    assert NearDedup().text_of(Document(id="q", data={"b": 1, "a": "x"})) == "x\n1"
    assert NearDedup(fields="title").fields == ("title",)


def test_first_mode_is_lazy_by_batches() -> None:
    """The first output arrives after at most ``batch_size`` inputs were read."""
    pulled = 0

    def source() -> Iterator[Document]:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield Document(id=f"d{i}", text=f"text number {i}")

    stream = NearDedup(batch_size=4).transform(source())
    assert next(stream).id == "d0"  # type: ignore[union-attr]
    assert pulled == 4


def test_char_ngrams_and_metrics() -> None:
    """Character n-grams catch a near-duplicate in text without spaces; the step reports
    its candidate pairs and how many of them verification turned down."""
    text = "東京都は日本の首都であり、世界有数の大都市である。" * 3
    outputs = list(NearDedup(unit="char", ngram=4).transform(_docs([text, text[:-1] + "!"])))
    assert [r.record_id for r in _rejections(outputs)] == ["d1"]
    metrics = {o.name: o.value for o in outputs if isinstance(o, StepMetric)}
    assert metrics == {"near_duplicates": 1, "candidate_pairs": 1, "false_candidates": 0}


def test_hashes_are_stable_across_processes() -> None:
    """Shingle hashes do not depend on Python's per-process string hashing."""
    code = (
        "from finetune_web.transforms._minhash import Shingler;"
        "print(Shingler(5, 'word', 3).shingle(['one two three four five six'])[0].tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    here = Shingler(5, "word", 3).shingle(["one two three four five six"])[0].tolist()
    assert json.loads(out.stdout) == here


@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"bands": 4},
        {"rows": 0, "bands": 2},
        {"ngram": 0},
        {"mode": "drop"},
        {"unit": "byte"},
        {"fields": ()},
        {"roles": ("robot",)},
        {"group_key": ""},
        {"batch_size": 0},
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object]) -> None:
    """Each invalid option is refused when the step is built, with a ConfigError."""
    with pytest.raises(ConfigError):
        NearDedup(**options)  # type: ignore[arg-type]


def test_amazon_products_scraped_twice_are_grouped(realdata: Path) -> None:
    """On 367 real Amazon products, group mode over title, description, features and
    product details puts each of the 29 products scraped twice (same ASIN) in one group;
    the only other groups are three pairs of variant listings whose page text is the
    same or nearly so (Jaccard 1.0, 0.84 and 0.83)."""
    from finetune_web.sources import JsonSource

    path = realdata / "brightdata_amazon" / "amazon_global_dataset_by_keyword.json"
    docs = [r for r in JsonSource(path=path).read() if isinstance(r, Document)]
    grouped = _kept(list(NearDedup(fields=AMAZON_FIELDS, mode="group").transform(docs)))
    asin = {d.id: (d.data or {})["asin"] for d in docs}
    groups: dict[str, list[str]] = defaultdict(list)
    for record in grouped:
        groups[record.metadata["dedup_group"]].append(asin[record.id])
    found = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    twice = sorted([a, a] for a in set(asin.values()) if list(asin.values()).count(a) == 2)
    variants = [
        ["B0BK4FLLHP", "B0BK4RMM3T"],
        ["B0D2L4RNB1", "B0D2LCRB42"],
        ["B0D31TMMRQ", "B0D31WCRYX"],
    ]
    assert len(twice) == 29
    assert found == sorted(twice + variants)
