"""Near-duplicate detection: MinHash + LSH tuned for recall, every candidate verified.

Each record's text is cut into shingles (word or character n-grams) and
summarised by a MinHash signature.  Locality-sensitive hashing (bands of
rows of the signature) finds *candidates*: earlier records sharing at least
one band.  Bands and rows are chosen so that a pair exactly at the threshold
becomes a candidate with probability at least :data:`TARGET_RECALL`; the
price is more false candidates, which cost one exact check each: every
candidate is verified by its true Jaccard similarity on the shingle hashes,
so a pair is reported only when it really is that similar.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Literal, TypeAlias

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import (
    Example,
    Preference,
    Record,
    Rejection,
    StepMetric,
    messages_of,
)
from finetune_web.transforms._minhash import (
    TARGET_RECALL,
    MinHasher,
    Shingler,
    U64Array,
    candidate_probability,
    choose_bands,
    jaccard,
)
from finetune_web.transforms.dedup import _roles

__all__ = [
    "TARGET_RECALL",
    "NearDedup",
    "NearDedupMode",
    "ShingleUnit",
    "candidate_probability",
    "choose_bands",
]

NearDedupMode: TypeAlias = Literal["first", "group"]
ShingleUnit: TypeAlias = Literal["word", "char"]


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ConfigError(f"{attribute.name} must be at least 1, not {value!r}")


def _optional_positive(
    _: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{attribute.name} must be at least 1, not {value!r}")


def _similarity(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], not {value!r}")


def _one_of(*choices: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(_: object, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in choices:
            raise ConfigError(f"{attribute.name} must be one of {list(choices)}, not {value!r}")

    return check


def _fields(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    fields = (value,) if isinstance(value, str) else tuple(value)
    if not fields:
        raise ConfigError("fields must name at least one key of the documents' data")
    return fields


def _leaves(value: Any) -> Iterator[str]:
    """Yield the string and number values inside a JSON value (keys left out, keys sorted)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield json.dumps(value)


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    stream = iter(records)
    while batch := list(islice(stream, size)):
        yield batch


def _digest(shingles: U64Array) -> bytes:
    """Return a 16-byte digest that two identical shingle sets share."""
    return hashlib.blake2b(shingles.tobytes(), digest_size=16).digest()


class _Index:
    """The state of one run: shingle sets, LSH buckets and (group mode) a union-find.

    A record whose shingle set equals an indexed one (an exact duplicate
    after normalisation) is not indexed again: it joins that record's group
    directly, so a million copies of one page cost a dictionary entry each
    and never fill the buckets.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.ids: list[str] = []
        self.candidates = 0
        self.false_candidates = 0
        self._shingles: dict[int, U64Array] = {}
        self._buckets: dict[int, int | list[int]] = {}
        self._exact: dict[bytes, int] = {}
        self._parent: list[int] = []

    def candidates_of(self, keys: list[int]) -> list[int]:
        """Return the indexed records sharing a band with ``keys``, earliest first."""
        found: set[int] = set()
        for key in keys:
            entry = self._buckets.get(key)
            if entry is None:
                continue
            if isinstance(entry, int):
                found.add(entry)
            else:
                found.update(entry)
        return sorted(found)

    def similarity(self, shingles: U64Array, other: int) -> float:
        """Return the exact Jaccard similarity with indexed record ``other``, counting it."""
        value = jaccard(shingles, self._shingles[other])
        self.candidates += 1
        if value < self.threshold:
            self.false_candidates += 1
        return value

    def best_match(
        self, shingles: U64Array, keys: list[int], digest: bytes
    ) -> tuple[int, float] | None:
        """Return the most similar indexed record at or above the threshold, if any."""
        same = self._exact.get(digest)
        if same is not None:
            return same, 1.0
        best: tuple[int, float] | None = None
        for other in self.candidates_of(keys):
            value = self.similarity(shingles, other)
            if value >= self.threshold and (best is None or value > best[1]):
                best = (other, value)
        return best

    def add(self, record_id: str, shingles: U64Array, keys: list[int], digest: bytes) -> int:
        """Add a record and return its position; an exact duplicate joins its original."""
        position = len(self.ids)
        self.ids.append(record_id)
        self._parent.append(position)
        same = self._exact.get(digest)
        if same is not None:
            self._parent[position] = self.root(same)
            return position
        self._exact[digest] = position
        self._shingles[position] = shingles.copy()
        for key in keys:
            entry = self._buckets.get(key)
            if entry is None:
                self._buckets[key] = position
            elif isinstance(entry, int):
                self._buckets[key] = [entry, position]
            else:
                entry.append(position)
        return position

    def root(self, position: int) -> int:
        """Return the earliest record of ``position``'s group (with path halving)."""
        parent = self._parent
        while parent[position] != position:
            parent[position] = parent[parent[position]]
            position = parent[position]
        return position

    def link(self, position: int, shingles: U64Array, keys: list[int]) -> None:
        """Join ``position``'s group with every earlier group holding a near-duplicate."""
        if position not in self._shingles:
            return  # an exact duplicate: already in its original's group
        for other in self.candidates_of(keys):
            if other == position or self.root(other) == self.root(position):
                continue
            if self.similarity(shingles, other) >= self.threshold:
                low, high = sorted((self.root(other), self.root(position)))
                self._parent[high] = low


@attrs.frozen(kw_only=True)
class NearDedup:
    """Find records whose texts are near-duplicates: Jaccard similarity >= ``threshold``.

    Similarity is measured on shingles: word n-grams (default 5) or
    character n-grams of the normalised text (NFKC, case-folded; words are
    runs of letters, marks and digits, so punctuation does not count).
    MinHash + LSH proposes candidates; each one is verified by its exact
    Jaccard similarity, so nothing below the threshold is ever reported.

    Two modes:

    - ``"first"`` (default): keep the first record of each near-duplicate
      family and reject each later one with reason ``near_duplicate`` and
      ``details = {"duplicate_of": kept_id, "jaccard": similarity}`` (the most
      similar kept record).  Records are yielded as they are decided, one
      batch of ``batch_size`` behind the input.
    - ``"group"``: keep every record and write the id of its group's first
      record into ``metadata[group_key]`` (its own id when it has no
      near-duplicate).  Groups are transitive (A~B and B~C put A, B and C in
      one group), so :class:`~finetune_web.transforms.HashSplit` with the same
      ``group_key`` never puts two records found to be near-duplicates on
      both sides of a split.  A later record can join two earlier groups, so
      this mode holds every record until the input ends.

    Attributes:
        threshold: the Jaccard similarity that makes a near-duplicate.
        num_perm: the budget of MinHash permutations for the automatic
            choice of bands and rows (see :func:`choose_bands`).
        bands: number of LSH bands; give it together with ``rows`` to
            override the automatic choice (``num_perm`` is then ignored).
        rows: signature values per band.
        ngram: shingle length, in words or characters.
        unit: ``"word"`` or ``"char"`` n-grams (use characters, e.g.
            ``ngram=5``, for Chinese, Japanese or Thai, which have no spaces
            between words).
        roles: for examples and preferences, the roles whose messages form
            the text (default: user and assistant).
        fields: for documents with ``data``, the keys whose values form the
            text; default: the whole ``data``.  Strings and numbers inside a
            value count, keys do not.  A document without ``data`` uses its
            ``text``.
        seed: changes the hash functions, deterministically.
        mode: ``"first"`` or ``"group"`` (see above).
        group_key: the metadata key written in group mode.
        batch_size: records hashed together (larger is faster, less lazy).
        name: the step's name in reports.
    """

    threshold: float = attrs.field(default=0.8, validator=_similarity)
    num_perm: int = attrs.field(default=128, validator=_positive)
    bands: int | None = attrs.field(default=None, validator=_optional_positive)
    rows: int | None = attrs.field(default=None, validator=_optional_positive)
    ngram: int = attrs.field(default=5, validator=_positive)
    unit: ShingleUnit = attrs.field(default="word", validator=_one_of("word", "char"))
    roles: tuple[str, ...] = attrs.field(default=("user", "assistant"), converter=_roles)
    fields: tuple[str, ...] | None = attrs.field(default=None, converter=_fields)
    seed: int = 0
    mode: NearDedupMode = attrs.field(default="first", validator=_one_of("first", "group"))
    group_key: str = "dedup_group"
    batch_size: int = attrs.field(default=256, validator=_positive)
    name: str = "near_dedup"

    def __attrs_post_init__(self) -> None:
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("give both bands and rows, or neither to choose them automatically")
        if not self.group_key:
            raise ConfigError("group_key must be a non-empty metadata key")

    def lsh_params(self) -> tuple[int, int]:
        """Return the ``(bands, rows)`` this step uses."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return choose_bands(self.threshold, self.num_perm)

    def text_of(self, record: Record) -> str:
        """Return the text whose shingles represent ``record``."""
        if isinstance(record, Example | Preference):
            return "\n".join(m.text for m in messages_of(record) if m.role in self.roles)
        if record.data is not None and (self.fields is not None or record.text is None):
            data = record.data
            chosen = data if self.fields is None else [data.get(f) for f in self.fields]
            return "\n".join(_leaves(chosen))
        return record.text or ""

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield kept records and near-duplicate rejections (or grouped records), in order."""
        bands, rows = self.lsh_params()
        shingler = Shingler(self.ngram, self.unit, self.seed)
        hasher = MinHasher(bands, rows, self.seed)
        index = _Index(self.threshold)
        hashed = self._hashed(records, shingler, hasher)
        if self.mode == "group":
            yield from self._grouped(hashed, index)
        else:
            yield from self._first(hashed, index)
        yield StepMetric(name="candidate_pairs", value=index.candidates)
        yield StepMetric(name="false_candidates", value=index.false_candidates)

    def _hashed(
        self, records: Iterable[Record], shingler: Shingler, hasher: MinHasher
    ) -> Iterator[tuple[Record, U64Array, list[int]]]:
        for batch in _batches(records, self.batch_size):
            shingle_sets = shingler.shingle([self.text_of(record) for record in batch])
            keys = hasher.band_keys(hasher.signatures(shingle_sets))
            yield from zip(batch, shingle_sets, keys, strict=True)

    def _first(
        self, hashed: Iterator[tuple[Record, U64Array, list[int]]], index: _Index
    ) -> Iterator[Record | Rejection | StepMetric]:
        duplicates = 0
        for record, shingles, keys in hashed:
            digest = _digest(shingles)
            match = index.best_match(shingles, keys, digest)
            if match is None:
                index.add(record.id, shingles, keys, digest)
                yield record
                continue
            duplicates += 1
            kept, similarity = index.ids[match[0]], match[1]
            yield Rejection(
                record_id=record.id,
                step=self.name,
                reason="near_duplicate",
                message=f"{record.id} is a near-duplicate of {kept} (Jaccard similarity "
                f"{similarity:.3f} >= {self.threshold} on {self.unit} {self.ngram}-grams)",
                location=record.location,
                record=record,
                details={"duplicate_of": kept, "jaccard": similarity},
            )
        yield StepMetric(name="near_duplicates", value=duplicates)

    def _grouped(
        self, hashed: Iterator[tuple[Record, U64Array, list[int]]], index: _Index
    ) -> Iterator[Record | StepMetric]:
        held: list[Record] = []
        for record, shingles, keys in hashed:
            position = index.add(record.id, shingles, keys, _digest(shingles))
            index.link(position, shingles, keys)
            held.append(record)
        sizes: dict[int, int] = {}
        for position, record in enumerate(held):
            root = index.root(position)
            sizes[root] = sizes.get(root, 0) + 1
            metadata = {**record.metadata, self.group_key: index.ids[root]}
            yield attrs.evolve(record, metadata=metadata)
        groups = [size for size in sizes.values() if size > 1]
        yield StepMetric(name="near_duplicate_groups", value=len(groups))
        yield StepMetric(name="grouped_records", value=sum(groups))
