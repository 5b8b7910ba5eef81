"""Caption files (WebVTT, SRT, SBV) read line by line into cues.

One lenient state machine reads the three formats: a cue starts at a timing
line (``start --> end [settings]`` for WebVTT and SRT, ``start,end`` for SBV)
and its text runs to the next blank line or the next timing line.  WebVTT
header, ``NOTE``, ``STYLE`` and ``REGION`` blocks are skipped; cue
identifiers and cue settings are read and dropped.  Cue text loses its
markup (``<v Speaker>``, ``<c.class>``, ``<i>``, ``<b>``, ``<u>``,
``<ruby>``/``<rt>``, ``<lang>``, ``<font>``, per-word ``<00:00:01.500>``
timestamps, SRT ``{\\an8}`` overrides) and its HTML entities are decoded.

A cue whose timing cannot be read becomes a ``bad_timestamp`` rejection, a
cue holding undecodable bytes an ``invalid_encoding`` one, and text outside
any cue an ``orphan_text`` one: nothing is dropped silently.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import attrs

from finetune_web._io import TextLine
from finetune_web.records import Location, Rejection

__all__ = [
    "FORMATS",
    "SUFFIX_FORMATS",
    "Cue",
    "Format",
    "read_cues",
    "sniff_format",
]

#: A caption format name.
Format = Literal["vtt", "srt", "sbv"]

#: The formats this module reads.
FORMATS: tuple[Format, ...] = ("vtt", "srt", "sbv")

#: File name suffixes (lower case) and the format they name.
SUFFIX_FORMATS: dict[str, Format] = {".vtt": "vtt", ".webvtt": "vtt", ".srt": "srt", ".sbv": "sbv"}

_TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?")
_SBV_TIMING = re.compile(
    r"\s*((?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3})\s*,\s*((?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3})\s*"
)
_LOOKS_LIKE_TIME = re.compile(r"\d+:\d\d")
_BLOCK_KEYWORDS = ("NOTE", "STYLE", "REGION")
_SNIFF_BYTES = 1 << 16

_WORD_TIME = re.compile(r"<\d+(?::\d+){1,2}(?:[.,]\d+)?>")
_RUBY_TEXT = re.compile(r"<rt\b[^<>]*>.*?(?:</rt\s*>|(?=</ruby\s*>)|$)", re.I | re.S)
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?(?:\s+([^<>]*))?>", re.I)
_LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"</?(?:c|i|b|u|s|v|lang|ruby|rt|rp|font|span|em|strong|sub|sup)\b[^<>]*>", re.I)
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")


@attrs.frozen(kw_only=True)
class Cue:
    """One caption cue: a time span and the text shown during it.

    Attributes:
        start: when the cue appears, in seconds from the start of the media.
        end: when it disappears, in seconds (never before ``start``).
        text: the cue's text without markup; its lines joined with ``"\\n"``
            (blank lines dropped); ``""`` for a cue without text.
        index: the cue's 0-based position in its file, counting cues that
            were rejected too.
        line: the 1-based line of the cue's timing line.
        identifier: the cue identifier (the SRT number, an optional WebVTT
            id), or ``None``.
        speaker: the speaker named by a WebVTT ``<v Speaker>`` tag, or ``None``.
    """

    start: float
    end: float
    text: str
    index: int
    line: int
    identifier: str | None = None
    speaker: str | None = None


def parse_timestamp(text: str) -> int | None:
    """Return a caption timestamp in milliseconds, or ``None`` when it is malformed.

    Accepts ``hh:mm:ss.ttt``, ``mm:ss.ttt`` and ``h:mm:ss.ttt``, with ``.`` or
    ``,`` before the 1 to 3 fraction digits (which may be left out); minutes
    and seconds must be below 60.
    """
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    millis = int((fraction or "0").ljust(3, "0"))
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + millis


def _is_timing(text: str) -> bool:
    return "-->" in text or (":" in text and _SBV_TIMING.fullmatch(text) is not None)


def _timing(text: str) -> tuple[str, str]:
    """Split a timing line into its start and end timestamps (cue settings dropped)."""
    if "-->" in text:
        left, _, right = text.partition("-->")
        parts = right.split()
        return left.strip(), parts[0] if parts else ""
    match = _SBV_TIMING.fullmatch(text)
    assert match is not None  # callers check _is_timing first
    return match.group(1), match.group(2)


def clean_line(text: str) -> tuple[str, str | None]:
    """Return a cue line without markup, entities decoded and spaces collapsed, and its speaker."""
    if "<" not in text and "&" not in text and "{" not in text:
        return " ".join(text.split()), None
    voice = _VOICE.search(text)
    speaker = ((voice.group(1) or "").strip() or None) if voice is not None else None
    text = _WORD_TIME.sub("", text)
    text = _RUBY_TEXT.sub("", text)
    text = _LINE_BREAK_TAG.sub(" ", text)
    text = _TAG.sub("", text)
    text = _ASS_OVERRIDE.sub("", text)
    return " ".join(html.unescape(text).split()), speaker


def sniff_format(path: Path, encoding: str) -> Format | None:
    """Guess a caption file's format from its first lines, or return ``None``.

    A ``WEBVTT`` first line means WebVTT; otherwise the first timing line
    decides: ``-->`` with a comma before the milliseconds is SRT, with a
    dot WebVTT, and ``start,end`` is SBV.
    """
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES).decode(encoding, "replace")
    for line in head.lstrip("\ufeff").splitlines()[:500]:
        if line.startswith("WEBVTT"):
            return "vtt"
        if "-->" in line:
            return "srt" if re.search(r"\d,\d", line) else "vtt"
        if _SBV_TIMING.fullmatch(line):
            return "sbv"
    return None


class _OpenCue:
    """A cue being read: its timing line, identifier and text lines so far."""

    __slots__ = ("bad", "identifier", "index", "lines", "timing")

    def __init__(self, timing: TextLine, identifier: str | None, index: int) -> None:
        self.timing = timing
        self.identifier = identifier
        self.index = index
        self.lines: list[str] = []
        self.bad: TextLine | None = None


@attrs.frozen(kw_only=True)
class _Rejecter:
    """Builds the rejections of one file, each naming the file and the line."""

    origin: str
    name: str
    step: str

    def reject(
        self, record_id: str, line: int, index: int | None, reason: str, message: str, record: str
    ) -> Rejection:
        return Rejection(
            record_id=record_id,
            step=self.step,
            reason=reason,
            message=f"{self.origin}:{line}: {message}",
            location=Location(origin=self.origin, line=line, index=index),
            record=record,
        )

    def cue_id(self, index: int) -> str:
        return f"{self.name}#cue{index:05d}"

    def line_id(self, line: int) -> str:
        return f"{self.name}#line{line}"


def _finish(cue: _OpenCue, rejecter: _Rejecter) -> Cue | Rejection:
    timing = cue.timing.text or ""
    raw = "\n".join((timing, *cue.lines))
    where = (rejecter.cue_id(cue.index), cue.timing.line, cue.index)
    if cue.bad is not None:
        reason = cue.bad.error or "invalid_encoding"
        message = f"cue text at line {cue.bad.line} cannot be read: {cue.bad.message}"
        return rejecter.reject(*where, reason, message, raw)
    start_text, end_text = _timing(timing)
    start, end = parse_timestamp(start_text), parse_timestamp(end_text)
    if start is None or end is None:
        shown = start_text if start is None else end_text
        message = (
            f"malformed timestamp {shown!r} in timing line {timing.strip()!r}; expected "
            "hh:mm:ss.ttt (WebVTT, SBV) or hh:mm:ss,ttt (SRT); fix the line to keep this cue"
        )
        return rejecter.reject(*where, "bad_timestamp", message, raw)
    if end < start:
        message = (
            f"cue ends ({end / 1000:g} s) before it starts ({start / 1000:g} s) in timing line "
            f"{timing.strip()!r}; fix the times to keep this cue"
        )
        return rejecter.reject(*where, "bad_timestamp", message, raw)
    texts: list[str] = []
    speaker: str | None = None
    for line in cue.lines:
        text, voice = clean_line(line)
        speaker = speaker or voice
        if text:
            texts.append(text)
    return Cue(
        start=start / 1000,
        end=end / 1000,
        text="\n".join(texts),
        index=cue.index,
        line=cue.timing.line,
        identifier=cue.identifier,
        speaker=speaker,
    )


def _orphan(block: list[TextLine], index: int, rejecter: _Rejecter) -> tuple[Rejection, bool]:
    """Return the rejection for lines outside any cue, and whether it counts as a cue."""
    raw = "\n".join(line.text or "" for line in block)
    timed = next((line for line in block[:2] if _LOOKS_LIKE_TIME.search(line.text or "")), None)
    if timed is not None:
        message = (
            f"malformed timing line {(timed.text or '').strip()!r}; expected 'start --> end' "
            "(WebVTT, SRT) or 'start,end' (SBV); fix the line to keep this cue"
        )
        return rejecter.reject(
            rejecter.cue_id(index), timed.line, index, "bad_timestamp", message, raw
        ), True
    message = (
        f"{len(block)} line(s) of text outside any cue (no timing line before them); "
        "add a timing line or delete them"
    )
    first = block[0].line
    return rejecter.reject(rejecter.line_id(first), first, None, "orphan_text", message, raw), False


def read_cues(
    lines: Iterable[TextLine], *, fmt: Format, origin: str, name: str, step: str
) -> Iterator[Cue | Rejection]:
    """Read the cues of a caption file from its lines.

    Args:
        lines: the file's lines, from :func:`~finetune_web._io.iter_text_lines`.
        fmt: the file's format; in SRT and SBV a line of spaces ends a cue,
            in WebVTT only an empty line does (as the WebVTT standard says).
        origin: the file as named in rejection messages and locations.
        name: the file's name in record ids (``<name>#cue00003``).
        step: the name rejections carry as ``step``.

    Returns:
        An iterator of cues and rejections, in file order.
    """
    rejecter = _Rejecter(origin=origin, name=name, step=step)
    spaces_end_cues = fmt != "vtt"
    cue: _OpenCue | None = None
    held: TextLine | None = None  # a number inside cue text: the next cue's id if timing follows
    block: list[TextLine] = []  # lines outside cues, waiting for a timing line
    skipping = False  # inside a header, NOTE, STYLE or REGION block
    index = 0
    for line in lines:
        if line.error is not None:
            if cue is not None:
                cue.bad = cue.bad or line
            else:
                message = f"line cannot be read: {line.message}"
                yield rejecter.reject(
                    rejecter.line_id(line.line), line.line, None, line.error, message, ""
                )
            continue
        text = line.text or ""
        if line.line == 1 and text.startswith("\ufeff"):
            text = text.lstrip("\ufeff")  # a BOM left by an explicit encoding="utf-8"
            line = attrs.evolve(line, text=text)
        if index == 0 and cue is None and not block and text.startswith("WEBVTT"):
            skipping = True  # the header block
            continue
        blank = not text if not spaces_end_cues else not text.strip()
        if cue is not None:
            if held is not None:
                if _is_timing(text):
                    yield _finish(cue, rejecter)
                    cue = _OpenCue(line, (held.text or "").strip(), index)
                    index, held = index + 1, None
                    continue
                cue.lines.append(held.text or "")
                held = None
            if blank:
                yield _finish(cue, rejecter)
                cue = None
            elif _is_timing(text):
                yield _finish(cue, rejecter)
                cue, index = _OpenCue(line, None, index), index + 1
            elif text.strip().isdigit():
                held = line
            else:
                cue.lines.append(text)
            continue
        if skipping:
            if not text:
                skipping = False
                continue
            if not _is_timing(text):
                continue
            skipping = False
        if not text.strip():
            if block:
                rejection, counted = _orphan(block, index, rejecter)
                index += counted
                block = []
                yield rejection
            continue
        if _is_timing(text):
            identifier = (block[-1].text or "").strip() if block else None
            if len(block) > 1:
                rejection, counted = _orphan(block[:-1], index, rejecter)
                index += counted
                yield rejection
            block = []
            cue, index = _OpenCue(line, identifier, index), index + 1
            continue
        if not block and text.split(maxsplit=1)[0] in _BLOCK_KEYWORDS:
            skipping = True
            continue
        block.append(line)
    if cue is not None:
        if held is not None:
            cue.lines.append(held.text or "")
        yield _finish(cue, rejecter)
    if block:
        yield _orphan(block, index, rejecter)[0]
