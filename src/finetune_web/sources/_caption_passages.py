"""Cues into passages: rolling-caption collapsing and merging by time and sentence.

YouTube's automatic captions "roll": each cue shows the line the previous
cue showed and adds a line of new words below it, and between two such cues
a 10 ms "snapshot" cue shows the finished lines again.  Read as they are,
they say every word two or three times.  :func:`collapse_rolling` keeps only
the words each cue adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from finetune_web.records import Rejection
from finetune_web.sources._captions import Cue

__all__ = [
    "MIN_WORD_OVERLAP",
    "SNAPSHOT_SECONDS",
    "collapse_rolling",
    "ends_sentence",
    "merge_cues",
]

#: A cue this short (in seconds) that only repeats the previous one is a
#: snapshot cue of rolling captions.
SNAPSHOT_SECONDS = 0.05

#: A cue that starts with at least this many of the previous cue's last words
#: (not aligned on whole lines) repeats them; fewer is taken as chance.
MIN_WORD_OVERLAP = 3

_SENTENCE_ENDS = (".", "!", "?", "。", "！", "？", "‼", "؟", "।")
_CLOSERS = " \"'”’»)]}」』"


def ends_sentence(text: str) -> bool:
    """Tell whether a cue's text ends a sentence (an ellipsis does not)."""
    stripped = text.rstrip(_CLOSERS)
    if stripped.endswith(("...", "…")):
        return False
    return stripped.endswith(_SENTENCE_ENDS)


def _line_overlap(previous: list[str], current: list[str]) -> int:
    """Return how many leading lines of ``current`` repeat the last lines of ``previous``."""
    for size in range(min(len(previous), len(current)), 0, -1):
        if previous[-size:] == current[:size]:
            return size
    return 0


def _word_overlap(previous: list[str], current: list[str]) -> int:
    """Return how many leading words of ``current`` repeat the last words of ``previous``."""
    for size in range(min(len(previous), len(current)), MIN_WORD_OVERLAP - 1, -1):
        if previous[-size:] == current[:size]:
            return size
    return 0


def _repeats(previous: list[str], lines: list[str], text: str) -> tuple[list[str], bool]:
    """Return a cue's lines without what repeats ``previous``, and whether new words remain."""
    size = _line_overlap(previous, lines)
    if size:
        return lines[size:], size < len(lines)
    words = text.split()
    before = " ".join(previous).split()
    cut = _word_overlap(before, words) if words and words[0] in before else 0
    if cut:
        return ([" ".join(words[cut:])] if cut < len(words) else []), cut < len(words)
    return lines, bool(lines)


def collapse_rolling(items: Iterable[Cue | Rejection]) -> Iterator[Cue | Rejection]:
    """Cut from each cue the lines (or words) that repeat the end of the previous cue.

    Rolling captions are recognised first: a cue whose leading lines equal
    the previous cue's last lines and that adds new lines after them (or
    that starts with at least :data:`MIN_WORD_OVERLAP` of the previous cue's
    last words and adds more), or a snapshot cue (at most
    :data:`SNAPSHOT_SECONDS` long) that only repeats.  From then on, the
    repeated lines or words of every cue are cut, and a cue that only
    repeats is yielded with empty text.  Before that, cues are left alone,
    so two equal cues in a row in ordinary subtitles (a phone ringing
    twice) stay two.  Rejections pass through.

    Args:
        items: cues and rejections in file order.

    Returns:
        The same cues, texts cut, and the rejections, in the same order.
    """
    previous: list[str] = []
    rolling = False
    for item in items:
        if isinstance(item, Rejection):
            yield item
            continue
        lines = item.text.split("\n") if item.text else []
        kept, adds = _repeats(previous, lines, item.text)
        if kept != lines and (adds or item.end - item.start <= SNAPSHOT_SECONDS):
            rolling = True
        previous = lines
        yield item if kept == lines or not rolling else attrs.evolve(item, text="\n".join(kept))


def _span(group: list[Cue]) -> tuple[float, float]:
    return min(cue.start for cue in group), max(cue.end for cue in group)


def _overflows(start: float, end: float, cue: Cue, max_seconds: float | None) -> bool:
    """Tell whether adding ``cue`` to a passage spanning ``start``-``end`` makes it too long."""
    return max_seconds is not None and max(end, cue.end) - min(start, cue.start) > max_seconds


def _last_sentence_end(group: list[Cue]) -> int | None:
    """Return the index of the last cue before the group's last one that ends a sentence."""
    return next((n for n in range(len(group) - 2, -1, -1) if ends_sentence(group[n].text)), None)


def merge_cues(
    items: Iterable[Cue | Rejection], *, max_seconds: float | None, sentence_ends: bool
) -> Iterator[tuple[Cue, ...] | Rejection]:
    """Group cues with text into passages; cues without text are left out.

    With ``max_seconds``, a passage spans at most that many seconds from its
    first cue's start to its last cue's end (a single longer cue is a
    passage of its own).  With ``sentence_ends`` as well, a passage that
    would grow too long ends after its last cue that ends a sentence, when
    it has one.  With ``sentence_ends`` alone, every sentence is a passage.
    With neither, the whole file is one passage.

    Args:
        items: cues and rejections in file order.
        max_seconds: the longest passage, in seconds, or ``None``.
        sentence_ends: whether passages end at sentence ends.

    Returns:
        Passages (tuples of cues) and the rejections, as soon as each is complete.
    """
    group: list[Cue] = []
    start = end = 0.0
    for item in items:
        if isinstance(item, Rejection):
            yield item
            continue
        if not item.text:
            continue
        if group and _overflows(start, end, item, max_seconds):
            cut = _last_sentence_end(group) if sentence_ends else None
            if cut is not None and not ends_sentence(group[-1].text):
                yield tuple(group[: cut + 1])
                group = group[cut + 1 :]
                start, end = _span(group)
            if _overflows(start, end, item, max_seconds):
                yield tuple(group)
                group = []
        start, end = (
            (min(start, item.start), max(end, item.end)) if group else (item.start, item.end)
        )
        group.append(item)
        if sentence_ends and max_seconds is None and ends_sentence(item.text):
            yield tuple(group)
            group = []
    if group:
        yield tuple(group)
