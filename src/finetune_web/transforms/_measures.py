"""Measures of a text used by the quality filter: words, lines, repetition.

Words are whitespace-separated tokens, as in Gopher; a token holding a
script written without spaces (Chinese, Japanese, Thai...) is split so that
each such letter is a word.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from itertools import accumulate

import attrs

__all__ = ["TextStats"]

# Scripts written without spaces between words: Han, kana, Thai, Lao, Tibetan, Myanmar, Khmer.
_UNSPACED = (
    "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_HAS_UNSPACED = re.compile(f"[{_UNSPACED}]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_ELLIPSIS = re.compile(r"\.\.\.|…")
#: Punctuation stripped from the ends of words (ASCII, typographic, CJK full-width).
_PUNCTUATION = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "«»‹›„“”‚‘’–—―…·•¡¿§¶†‡′″‰"
    "、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜・"
    "！＂＃＄％＆＇（）＊＋，－．／：；＜＝＞？＠［＼］＾＿｀｛｜｝～｡｢｣､"
)


def _split_unspaced(token: str) -> list[str]:
    """Split a token holding CJK/Thai-like script: each such letter (with its marks) is a unit."""
    units: list[str] = []
    run = ""
    for char in token:
        if _HAS_UNSPACED.match(char):
            if unicodedata.category(char)[0] == "M" and units and not run:
                units[-1] += char
                continue
            if run:
                units.append(run)
                run = ""
            units.append(char)
        else:
            run += char
    if run:
        units.append(run)
    return units


@attrs.frozen
class TextStats:
    """Measures of one text, computed on first use.

    Words: the text is split on whitespace; a token holding a script written
    without spaces (Chinese, Japanese, Thai...) is split further so that each
    such letter counts as one word.  So a Japanese text of 300 characters
    has about 300 words and no measure rejects it for lacking spaces.

    Attributes:
        text: the text measured.
    """

    text: str

    @cached_property
    def tokens(self) -> list[str]:
        """The whitespace-separated tokens."""
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        """The words (see the class docstring), punctuation included."""
        words: list[str] = []
        for token in self.tokens:
            if _HAS_UNSPACED.search(token):
                words.extend(_split_unspaced(token))
            else:
                words.append(token)
        return words

    @cached_property
    def spaced_words(self) -> list[str]:
        """Words of tokens without spaceless script, stripped of punctuation, non-empty."""
        stripped = (t.strip(_PUNCTUATION) for t in self.tokens if not _HAS_UNSPACED.search(t))
        return [word for word in stripped if word]

    @cached_property
    def normalized_words(self) -> list[str]:
        """Words case-folded and stripped of punctuation, non-empty (n-gram units)."""
        stripped = (word.strip(_PUNCTUATION).casefold() for word in self.words)
        return [word for word in stripped if word]

    @cached_property
    def lines(self) -> list[str]:
        """Non-empty lines, stripped."""
        return [line.strip() for line in self.text.split("\n") if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        """Non-empty paragraphs (separated by blank lines), stripped."""
        parts = (part.strip() for part in _PARAGRAPH_BREAK.split(self.text))
        return [part for part in parts if part]

    def mean_word_length(self) -> float | None:
        """Mean length of the spaced words, or ``None`` when they are under half the words."""
        spaced = self.spaced_words
        if not spaced or 2 * len(spaced) < len(self.words):
            return None
        return sum(map(len, spaced)) / len(spaced)

    def symbol_ratio(self) -> float:
        """The larger of ``#`` per word and ellipses (``...``, ``…``) per word."""
        words = max(len(self.words), 1)
        return max(self.text.count("#"), len(_ELLIPSIS.findall(self.text))) / words

    def line_fraction(self, predicate: Callable[[str], bool]) -> float:
        """Fraction of lines for which ``predicate(line)`` is true."""
        lines = self.lines
        return sum(1 for line in lines if predicate(line)) / len(lines) if lines else 0.0

    def alpha_word_fraction(self) -> float:
        """Fraction of words holding at least one letter, punctuation-only words left out.

        Standalone punctuation (dialogue dashes, Japanese full stops) is not a
        word here; a text with no other words has a fraction of 0.
        """
        words = [word for word in self.words if word.strip(_PUNCTUATION)]
        if not words:
            return 0.0 if self.words else 1.0
        return sum(1 for word in words if any(c.isalpha() for c in word)) / len(words)

    @staticmethod
    def duplicates(items: Sequence[str]) -> tuple[float, float]:
        """Return (fraction of items seen before, fraction of characters in them)."""
        seen: set[str] = set()
        count = chars = total = 0
        for item in items:
            total += len(item)
            if item in seen:
                count += 1
                chars += len(item)
            else:
                seen.add(item)
        if not items:
            return 0.0, 0.0
        return count / len(items), chars / total if total else 0.0

    @cached_property
    def _word_ids(self) -> tuple[list[int], list[int]]:
        """The n-gram units as small integers, and the prefix sums of their lengths."""
        ids: dict[str, int] = {}
        units = [ids.setdefault(word, len(ids)) for word in self.normalized_words]
        return units, list(accumulate((len(w) for w in self.normalized_words), initial=0))

    @cached_property
    def mostly_unspaced(self) -> bool:
        """Whether letters of scripts without spaces are at least half the words."""
        words = self.words
        unspaced = sum(1 for word in words if len(word) <= 2 and _HAS_UNSPACED.match(word))
        return 2 * unspaced >= len(words) > 0

    def _grams(self, n: int) -> tuple[list[tuple[int, ...]], list[int]]:
        units, prefix = self._word_ids
        if self.mostly_unspaced:
            n *= 2
        return list(zip(*(units[i:] for i in range(n)), strict=False)), prefix

    def top_ngram_fraction(self, n: int) -> float:
        """Characters in the most frequent word n-gram (counted each time), over all characters.

        0 when no n-gram occurs twice.  For text mostly in scripts without
        spaces, where each letter is a word, the n-grams are 2n letters long
        (about n words).
        """
        grams, prefix = self._grams(n)
        if not grams or not prefix[-1]:
            return 0.0
        gram, times = Counter(grams).most_common(1)[0]
        if times < 2:
            return 0.0
        start = grams.index(gram)
        return times * (prefix[start + len(gram)] - prefix[start]) / prefix[-1]

    def duplicate_ngram_fraction(self, n: int) -> float:
        """Characters of words inside any word n-gram that occurs more than once, over all.

        Every occurrence counts, each word once however many repeated n-grams
        cover it.  N-grams are 2n letters long in text mostly without spaces.
        """
        grams, prefix = self._grams(n)
        if not grams or not prefix[-1]:
            return 0.0
        size = len(grams[0])
        counts = Counter(grams)
        covered = 0
        first = last = 0  # the current run of covered words: [first, last)
        for start, gram in enumerate(grams):
            if counts[gram] < 2:
                continue
            if start > last:
                covered += prefix[last] - prefix[first]
                first = start
            last = start + size
        covered += prefix[last] - prefix[first]
        return covered / prefix[-1]
