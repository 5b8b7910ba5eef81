"""Streaming text input: encoding detection and line reading with per-line errors.

Used by the file sources and by the format readers, so that every reader
reports bad bytes and oversized lines the same way: as a :class:`TextLine`
carrying an error code, never as a crash and never as silently altered text.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web.errors import DecodeError, ErrorContext, SourceError

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "TextLine",
    "check_file",
    "detect_encoding",
    "iter_text_lines",
]

#: Lines longer than this are reported as ``record_too_large`` (64 MiB).
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024

_SAMPLE_BYTES = 1 << 20
_WIDE_CHUNK_BYTES = 1 << 17
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# When charset-normalizer finds several encodings that fit a sample about
# equally well (short samples often fit cp1250, cp1252 and cp1257 alike), the
# most widely used encoding of the family wins.  Earlier is preferred.
_PREFERRED_ENCODINGS: tuple[str, ...] = (
    "utf_8",
    "ascii",
    "cp1252",
    "cp1251",
    "cp932",
    "shift_jis",
    "gb18030",
    "gbk",
    "big5",
    "cp949",
    "euc_kr",
    "euc_jis_2004",
    "euc_jp",
    "cp1250",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp1258",
    "cp874",
    "koi8_r",
    "koi8_u",
    "latin_1",
    "iso8859_15",
    "iso8859_2",
    "iso8859_5",
)
_RANK = {name: rank for rank, name in enumerate(_PREFERRED_ENCODINGS)}
_CLOSE_CHAOS = 0.01  # mess ratio difference treated as a tie
_CLOSE_COHERENCE = 0.03  # language coherence difference treated as a tie


@attrs.frozen(kw_only=True)
class TextLine:
    """One physical line of a text file.

    Attributes:
        line: 1-based line number.
        text: the decoded line without its line break; ``None`` when ``error`` is set.
        error: a reason code (``invalid_encoding``, ``record_too_large``) or ``None``.
        message: the human explanation of ``error``.
        size: the line's size in bytes.
        raw: for an ``invalid_encoding`` line, its bytes (without the line
            break), so a reader can keep them in its rejects; ``None`` otherwise.
    """

    line: int
    text: str | None
    error: str | None = None
    message: str = ""
    size: int = 0
    raw: bytes | None = None


def check_file(path: str | Path) -> Path:
    """Check that ``path`` names a readable regular file.

    Args:
        path: the file to check.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        SourceError: the path does not exist, is a directory, or cannot be read.
    """
    path = Path(path)
    context = ErrorContext(path=str(path))
    if not path.exists():
        raise SourceError(
            f"no such file (resolved to {path.absolute()}); check the path and the "
            "current working directory",
            context,
        )
    if path.is_dir():
        raise SourceError("this is a directory, not a file; pass the path of one file", context)
    if not path.is_file():
        raise SourceError("this is not a regular file; pass the path of one file", context)
    return path


def _bom_encoding(head: bytes) -> str | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return None


def _utf8_verdict(sample: bytes, complete: bool) -> bool:
    """Decide whether a sample is UTF-8, tolerating a few corrupt lines."""
    if sample.isascii():
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not complete and exc.end == len(sample) and exc.reason == "unexpected end of data":
            return True  # valid up to a character cut by the end of the sample
    else:
        return True
    lines = sample.split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut inside a character
    ok_non_ascii = bad = 0
    for raw in lines:
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
        else:
            ok_non_ascii += 1
    # One or two broken lines in an otherwise ASCII/UTF-8 file are corrupt
    # lines to reject, not a hint that the whole file is in a legacy encoding.
    return bad < max(2, ok_non_ascii + 1)


def _pick_encoding(matches: Sequence[Any]) -> str:
    """Choose among charset-normalizer matches (best first), preferring common encodings."""
    best = matches[0]
    names: list[tuple[int, int, str]] = []
    for order, match in enumerate(matches):
        if match.chaos > best.chaos + _CLOSE_CHAOS:
            continue
        if match.coherence < best.coherence - _CLOSE_COHERENCE:
            continue
        # could_be_from_charset lists the encodings giving the very same text.
        for name in (match.encoding, *match.could_be_from_charset):
            names.append((_RANK.get(name, len(_RANK)), order, name))
    return min(names)[2] if names else str(best.encoding)


def detect_encoding(path: str | Path) -> str:
    """Return the codec name to read ``path`` with.

    A byte-order mark wins (``utf-8-sig``, ``utf-16``, ``utf-32``); otherwise
    UTF-8 unless the first MiB is clearly in another encoding, in which case
    charset-normalizer names it (cp1252, cp932 for Shift-JIS, cp1251...).
    When several encodings fit about equally well, the most common one of
    the family is chosen (cp1252 before cp1250, for instance).

    Args:
        path: the file to sample.

    Returns:
        A codec name that :func:`codecs.lookup` accepts.

    Raises:
        SourceError: the file cannot be opened.
        DecodeError: no encoding fits the bytes.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
            complete = not handle.read(1)
    except OSError as exc:
        raise SourceError(
            f"cannot open file: {exc.strerror}", ErrorContext(path=str(path))
        ) from exc
    bom = _bom_encoding(sample)
    if bom is not None:
        return bom
    if _utf8_verdict(sample, complete):
        return "utf-8"
    if not complete and b"\n" in sample:
        sample = sample[: sample.rindex(b"\n") + 1]  # do not cut a character in two
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        raise DecodeError(
            "the bytes fit no known encoding; pass encoding=... explicitly",
            ErrorContext(path=str(path)),
        )
    return _pick_encoding(matches)


def _skip_rest_of_line(handle: io.BufferedReader) -> int:
    skipped = 0
    while True:
        chunk = handle.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _too_large(number: int, size: int, limit: int, *, about: bool = False) -> TextLine:
    approx = "about " if about else ""
    return TextLine(
        line=number,
        text=None,
        error="record_too_large",
        message=f"line is {approx}{size:,} bytes, over the {limit:,}-byte limit "
        "(raise max_line_bytes to read it)",
        size=size,
    )


def _iter_byte_lines(path: Path, encoding: str, max_line_bytes: int) -> Iterator[TextLine]:
    with path.open("rb") as handle:
        if encoding == "utf-8-sig":
            if handle.peek(3)[:3] == codecs.BOM_UTF8:
                handle.read(3)
            encoding = "utf-8"
        number = 0
        while True:
            raw = handle.readline(max_line_bytes + 1)
            if not raw:
                return
            number += 1
            size = len(raw)
            if size > max_line_bytes and not raw.endswith(b"\n"):
                del raw  # do not hold a huge partial line while skipping the rest
                yield _too_large(number, size + _skip_rest_of_line(handle), max_line_bytes)
                continue
            end = size - 1 if raw.endswith(b"\n") else size
            if end and raw[end - 1] == 0x0D:  # \r of a \r\n line break
                end -= 1
            try:
                # A memoryview slice decodes without copying a huge line first.
                text = str(memoryview(raw)[:end], encoding)
            except UnicodeDecodeError as exc:
                body = raw[:end]
                yield TextLine(
                    line=number,
                    text=None,
                    error="invalid_encoding",
                    message=(
                        f"byte {body[exc.start]:#04x} at byte offset {exc.start} is not valid "
                        f"{encoding}; if the file uses another encoding, pass encoding=..."
                    ),
                    size=size,
                    raw=body,
                )
                continue
            del raw
            yield TextLine(line=number, text=text, size=size)


def _iter_wide_lines(path: Path, encoding: str, max_line_bytes: int) -> Iterator[TextLine]:
    """Split a UTF-16/32 file on ``\\n``, holding at most about one line plus a chunk.

    Lone surrogates are let through the decoder so that the line holding one
    is reported as ``invalid_encoding`` and the next lines are still read.
    """
    unit = 4 if "32" in encoding else 2
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogatepass")
    number, chars, skipping, parts = 0, 0, False, list[str]()
    with path.open("rb") as handle:
        while True:
            data = handle.read(_WIDE_CHUNK_BYTES)
            try:
                chunk = decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                if data:
                    raise DecodeError(
                        f"invalid {encoding} data at or after line {number + 1}: {exc.reason}; "
                        "the rest of the file cannot be split into lines",
                        ErrorContext(path=str(path), line=number + 1),
                    ) from exc
                chunk = "\udcff"  # the file ends inside a character: flag the last line
            start = 0
            while True:
                newline = chunk.find("\n", start)
                stop = len(chunk) if newline < 0 else newline
                chars += stop - start
                if not skipping:
                    parts.append(chunk[start:stop])
                    if chars * unit > max_line_bytes:
                        skipping, parts = True, []
                if newline < 0:
                    break
                number += 1
                yield _finish_wide_line(number, parts, chars, unit, skipping, max_line_bytes)
                parts, chars, skipping = [], 0, False
                start = newline + 1
            if not data:
                break
    if chars or skipping:
        yield _finish_wide_line(number + 1, parts, chars, unit, skipping, max_line_bytes)


def _finish_wide_line(
    number: int, parts: list[str], chars: int, unit: int, skipping: bool, limit: int
) -> TextLine:
    if skipping:
        return _too_large(number, chars * unit, limit, about=True)
    text = "".join(parts)
    if text.endswith("\r"):
        text = text[:-1]
    bad = _LONE_SURROGATE.search(text)
    if bad is not None:
        return TextLine(
            line=number,
            text=None,
            error="invalid_encoding",
            message=f"character {bad.start() + 1} of the line is not valid UTF-{unit * 8} "
            "(a lone surrogate or a cut character); if the file uses another encoding, "
            "pass encoding=...",
            size=chars * unit,
        )
    return TextLine(line=number, text=text, size=chars * unit)


def iter_text_lines(
    path: str | Path,
    *,
    encoding: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[TextLine]:
    """Yield the lines of a text file one at a time, with per-line errors.

    Lines end at ``\\n`` (a ``\\r`` before it is dropped too); a line that
    cannot be decoded comes back with ``error="invalid_encoding"`` and the
    next line is read normally.

    Args:
        path: the file.
        encoding: codec to use; detected with :func:`detect_encoding` when ``None``.
        max_line_bytes: longer lines are skipped (without being read into
            memory) and reported as ``record_too_large``.

    Returns:
        An iterator of :class:`TextLine`, one per physical line.

    Raises:
        SourceError: the file does not exist, is a directory or cannot be opened,
            or ``encoding`` is unknown.
        DecodeError: a UTF-16/32 file holds invalid data (it cannot be split
            into lines safely past that point).
    """
    path = check_file(path)
    chosen = encoding or detect_encoding(path)
    try:
        codec = codecs.lookup(chosen).name
    except LookupError as exc:
        raise SourceError(f"unknown encoding {chosen!r}", ErrorContext(path=str(path))) from exc
    if codec.startswith(("utf-16", "utf-32")):
        yield from _iter_wide_lines(path, chosen, max_line_bytes)
    else:
        yield from _iter_byte_lines(path, codec, max_line_bytes)
