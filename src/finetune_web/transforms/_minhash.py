"""Hashed shingles, MinHash signatures and LSH band keys, vectorised with numpy.

The engine behind :class:`~finetune_web.transforms.near_dedup.NearDedup`.
Everything works on a batch of texts at once, with no Python loop over
characters, words or shingles:

1. **Shingles.**  The texts are normalised (NFKC, case-folded), joined and
   viewed as one array of code points.  Words are runs of letters, marks,
   digits and ``_`` (Unicode categories L, M, N); each word is hashed with a
   polynomial hash read off a prefix sum (``H[end] - H[start]`` scaled by an
   inverse power), then mixed with the SplitMix64 finaliser.  An n-gram is
   hashed the same way over the word hashes (or over the code points, for
   character n-grams).  A text with fewer than n words has one shingle, all
   of its words, so short and empty texts still compare.  Each text's
   shingles are kept as a sorted array of unique 64-bit hashes.
2. **MinHash.**  Permutation ``k`` is ``x -> a_k * x + b_k (mod 2**32)`` on
   the high 32 bits of each shingle hash (``a_k`` odd); a signature holds the
   minimum per permutation.  32-bit lanes let numpy use SIMD multiplies.
3. **Band keys.**  The signature is cut into ``bands`` bands of ``rows``
   values; each band is folded into one mixed 64-bit key (band index
   included), so one dictionary serves every band.  :func:`choose_bands`
   picks bands and rows for recall (see :func:`candidate_probability`).

Hashes are stable across processes, platforms and numpy versions: the
constants are drawn from SHAKE-256 of the seed, never from Python's
``hash()`` or a numpy random generator.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "TARGET_RECALL",
    "MinHasher",
    "Shingler",
    "U64Array",
    "candidate_probability",
    "choose_bands",
    "jaccard",
]

U64Array: TypeAlias = npt.NDArray[np.uint64]
_U32Array: TypeAlias = npt.NDArray[np.uint32]
_BoolArray: TypeAlias = npt.NDArray[np.bool_]
_IntArray: TypeAlias = npt.NDArray[np.int64]

_MASK64 = (1 << 64) - 1
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SHIFT30, _SHIFT27, _SHIFT31, _SHIFT32 = (np.uint64(s) for s in (30, 27, 31, 32))


def _frozen_table(values: list[bool]) -> _BoolArray:
    table = np.array(values, dtype=np.bool_)
    table.setflags(write=False)
    return table


_ASCII_WORD = _frozen_table([chr(c).isalnum() or chr(c) == "_" for c in range(128)])
_ASCII_SPACE = _frozen_table([chr(c).isspace() for c in range(128)])
#: Shingle columns per MinHash chunk: 128 permutations x 4,096 x 4 bytes = 2 MiB.
_CHUNK_COLUMNS = 4096


#: The chance that a pair exactly at the threshold becomes a candidate,
#: which the automatic choice of bands and rows guarantees at least.
TARGET_RECALL = 0.97


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Return the chance that two sets of this Jaccard similarity share an LSH band.

    Args:
        similarity: the pair's Jaccard similarity, in [0, 1].
        bands: number of bands.
        rows: signature values per band.

    Returns:
        ``1 - (1 - similarity**rows) ** bands``.
    """
    return 1.0 - (1.0 - similarity**rows) ** bands


def choose_bands(
    threshold: float, num_perm: int, *, target_recall: float = TARGET_RECALL
) -> tuple[int, int]:
    """Return ``(bands, rows)`` for ``threshold`` within a budget of permutations.

    Takes the most rows per band (the steepest S-curve, so the fewest false
    candidates) for which a pair at ``threshold`` is still a candidate with
    probability ``target_recall``, and as many bands as the budget allows.

    Args:
        threshold: the Jaccard similarity that makes a near-duplicate.
        num_perm: the most permutations to use (``bands * rows <= num_perm``).
        target_recall: the candidate probability wanted at ``threshold``.

    Returns:
        ``(bands, rows)``; ``(num_perm, 1)`` when no choice reaches the target.
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= target_recall:
            best = (bands, rows)
    return best


def _constants(seed: int, purpose: str, count: int) -> list[int]:
    """Return ``count`` stable 64-bit constants for ``purpose`` under ``seed``."""
    stream = hashlib.shake_256(f"finetune_web.near_dedup:{purpose}:{seed}".encode()).digest(
        8 * count
    )
    return [int.from_bytes(stream[i : i + 8], "little") for i in range(0, 8 * count, 8)]


def _mix(values: U64Array) -> U64Array:
    """Return the SplitMix64 finaliser of every value (a bijection that spreads bits)."""
    out = values ^ (values >> _SHIFT30)
    out *= _MIX1
    out ^= out >> _SHIFT27
    out *= _MIX2
    out ^= out >> _SHIFT31
    return out


class _Powers:
    """Powers ``base**i`` and ``base**-i`` (mod 2**64) of an odd base, grown on demand."""

    def __init__(self, base: int) -> None:
        self._base = base | 1
        self._inverse = pow(self._base, -1, 1 << 64)
        self.up: U64Array = np.ones(1, dtype=np.uint64)
        self.down: U64Array = np.ones(1, dtype=np.uint64)

    def ensure(self, length: int) -> None:
        """Make ``up`` and ``down`` hold at least ``length`` powers."""
        if len(self.up) >= length:
            return
        size = max(length, 2 * len(self.up))
        self.up = self._series(self._base, size)
        self.down = self._series(self._inverse, size)

    @staticmethod
    def _series(factor: int, size: int) -> U64Array:
        out = np.full(size, factor, dtype=np.uint64)
        out[0] = 1
        return np.cumprod(out, dtype=np.uint64)


def _span_hashes(values: U64Array, powers: _Powers, starts: _IntArray, ends: _IntArray) -> U64Array:
    """Return the polynomial hash of ``values[s:e]`` for every span, in one pass.

    ``sum(values[s + i] * base**i)`` equals ``(P[e] - P[s]) * base**-s`` where
    ``P`` is the prefix sum of ``values[i] * base**i``; all mod 2**64.
    """
    powers.ensure(len(values) + 1)
    prefix = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values * powers.up[: len(values)], out=prefix[1:])
    return (prefix[ends] - prefix[starts]) * powers.down[starts]


class Shingler:
    """Turns texts into sorted arrays of unique 64-bit shingle hashes.

    One instance serves one run: it caches powers and the classes of the
    non-ASCII characters it has met.

    Args:
        ngram: shingle length, in words or characters.
        unit: ``"word"`` or ``"char"`` n-grams.
        seed: changes every hash, deterministically.
    """

    def __init__(self, ngram: int, unit: Literal["word", "char"], seed: int) -> None:
        self._ngram = ngram
        self._unit = unit
        word_base, gram_base, self._length_salt = _constants(seed, "shingles", 3)
        self._word_powers = _Powers(word_base)
        self._gram_powers = _Powers(gram_base)
        self._classes: dict[int, tuple[bool, bool]] = {}

    def shingle(self, texts: Sequence[str]) -> list[U64Array]:
        """Return, for each text, its sorted unique shingle hashes (never empty).

        Args:
            texts: raw texts; they are normalised here (NFKC, case-folded).

        Returns:
            One ``uint64`` array per text, in order.
        """
        if not texts:
            return []
        normal = [unicodedata.normalize("NFKC", text).casefold() for text in texts]
        if self._unit == "char":
            normal = [text.strip() for text in normal]
        joined = "\n".join(normal).encode("utf-32-le", "surrogatepass")
        points = np.frombuffer(joined, dtype="<u4").astype(np.uint32, copy=False)
        lengths = np.fromiter((len(text) for text in normal), dtype=np.int64, count=len(normal))
        doc_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        if self._unit == "word":
            tokens, token_doc = self._words(points, doc_starts)
        else:
            tokens, token_doc = self._chars(points, doc_starts, lengths)
        counts = np.bincount(token_doc, minlength=len(texts))
        return self._grams(tokens, counts)

    def _flags(self, points: _U32Array) -> tuple[_BoolArray, _BoolArray]:
        """Return (is word character, is space) for every code point."""
        clipped = np.minimum(points, 127)
        word = _ASCII_WORD[clipped]
        space = _ASCII_SPACE[clipped]
        high = np.flatnonzero(points >= 128)
        if len(high):
            unique, inverse = np.unique(points[high], return_inverse=True)
            classes = np.array([self._class(int(c)) for c in unique], dtype=np.bool_)
            word[high] = classes[inverse, 0]
            space[high] = classes[inverse, 1]
        return word, space

    def _class(self, point: int) -> tuple[bool, bool]:
        found = self._classes.get(point)
        if found is None:
            char = chr(point)
            found = (unicodedata.category(char)[0] in "LMN", char.isspace())
            self._classes[point] = found
        return found

    def _words(self, points: _U32Array, doc_starts: _IntArray) -> tuple[U64Array, _IntArray]:
        """Return the hash of every word and the index of its text."""
        word, _ = self._flags(points)
        edges = np.diff(np.concatenate(([0], word.view(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        values = points.astype(np.uint64)
        hashes = _mix(_span_hashes(values, self._word_powers, starts, ends))
        token_doc = np.searchsorted(doc_starts, starts, side="right") - 1
        return hashes, token_doc

    def _chars(
        self, points: _U32Array, doc_starts: _IntArray, lengths: _IntArray
    ) -> tuple[U64Array, _IntArray]:
        """Return the code points with runs of white space collapsed to one space."""
        _, space = self._flags(points)
        inside = np.ones(len(points), dtype=np.bool_)
        inside[(doc_starts + lengths)[:-1]] = False  # the separators
        previous_space = np.concatenate(([False], space[:-1]))
        keep = inside & ~(space & previous_space)
        values = np.where(space, 32, points).astype(np.uint64)[keep]
        token_doc = np.repeat(np.arange(len(lengths)), lengths)
        kept_in_doc = keep[inside]
        return values, token_doc[kept_in_doc]

    def _grams(self, tokens: U64Array, counts: _IntArray) -> list[U64Array]:
        """Return each text's sorted unique n-gram hashes, given its tokens' counts."""
        n = self._ngram
        windows = np.where(counts >= n, counts - n + 1, 1)
        token_starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        window_starts = np.concatenate(([0], np.cumsum(windows)[:-1]))
        total = int(windows.sum())
        starts = np.repeat(token_starts, windows) + (
            np.arange(total) - np.repeat(window_starts, windows)
        )
        spans = np.repeat(np.minimum(counts, n), windows)
        hashes = _span_hashes(tokens, self._gram_powers, starts, starts + spans)
        hashes += (spans.astype(np.uint64) + np.uint64(1)) * np.uint64(self._length_salt)
        hashes = _mix(hashes)
        bounds = np.cumsum(windows)
        for first, last in zip(window_starts.tolist(), bounds.tolist(), strict=True):
            hashes[first:last].sort()
        fresh = np.ones(total, dtype=np.bool_)
        fresh[1:] = hashes[1:] != hashes[:-1]
        fresh[window_starts] = True
        unique = hashes[fresh]
        sizes = np.add.reduceat(fresh.view(np.int8), window_starts, dtype=np.int64)
        return np.split(unique, np.cumsum(sizes)[:-1].tolist())


class MinHasher:
    """MinHash signatures and LSH band keys for shingle sets.

    Args:
        bands: number of LSH bands.
        rows: signature values per band (``bands * rows`` permutations).
        seed: changes every permutation, deterministically.
    """

    def __init__(self, bands: int, rows: int, seed: int) -> None:
        self._bands = bands
        self._rows = rows
        count = bands * rows
        mask32 = (1 << 32) - 1
        self._a = (
            np.array([c & mask32 for c in _constants(seed, "perm_a", count)], np.uint32) | 1
        )[:, None]
        self._b = np.array([c & mask32 for c in _constants(seed, "perm_b", count)], np.uint32)[
            :, None
        ]
        self._fold = np.uint64(_constants(seed, "fold", 1)[0] | 1)
        self._band_salt = np.array(_constants(seed, "band", bands), dtype=np.uint64)

    def signatures(self, shingle_sets: Sequence[U64Array]) -> _U32Array:
        """Return one row of ``bands * rows`` minima per shingle set (each non-empty)."""
        sizes = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=len(shingle_sets))
        values = (np.concatenate(shingle_sets) >> _SHIFT32).astype(np.uint32)
        offsets = np.concatenate(([0], np.cumsum(sizes)))
        out = np.empty((len(shingle_sets), len(self._a)), dtype=np.uint32)
        first = 0
        while first < len(shingle_sets):
            last = int(np.searchsorted(offsets, offsets[first] + _CHUNK_COLUMNS, side="right"))
            last = min(max(last - 1, first + 1), len(shingle_sets))
            chunk = values[offsets[first] : offsets[last]]
            permuted = self._a * chunk
            permuted += self._b
            out[first:last] = np.minimum.reduceat(
                permuted, offsets[first:last] - offsets[first], axis=1
            ).T
            first = last
        return out

    def band_keys(self, signatures: _U32Array) -> list[list[int]]:
        """Return, per signature, one 64-bit key per band (band index folded in)."""
        shaped = signatures.reshape(len(signatures), self._bands, self._rows).astype(np.uint64)
        keys = shaped[:, :, 0].copy()
        for row in range(1, self._rows):
            keys *= self._fold
            keys += shaped[:, :, row]
        keys ^= self._band_salt
        result: list[list[int]] = _mix(keys).tolist()
        return result


def jaccard(left: U64Array, right: U64Array) -> float:
    """Return the Jaccard similarity of two sorted arrays of unique hashes.

    Args:
        left: a sorted, duplicate-free array.
        right: another one.

    Returns:
        ``|left & right| / |left | right|`` (1.0 for two empty arrays).
    """
    if len(left) > len(right):
        left, right = right, left
    if not len(left):
        return 1.0 if not len(right) else 0.0
    where = np.searchsorted(right, left)
    where[where == len(right)] = 0
    common = int(np.count_nonzero(right[where] == left))
    return common / (len(left) + len(right) - common)
