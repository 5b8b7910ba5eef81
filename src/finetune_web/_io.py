"""Streaming text input: encoding detection and line reading with per-line errors.

Used by the file sources and by the format readers, so that every reader
reports bad bytes and oversized lines the same way: as a :class:`TextLine`
carrying an error code, never as a crash and never as silently altered text.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path

import attrs

from finetune_web.errors import DecodeError, ErrorContext, SourceError

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "TextLine",
    "detect_encoding",
    "iter_text_lines",
]

#: Lines longer than this are reported as ``record_too_large`` (64 MiB).
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024

_SAMPLE_BYTES = 1 << 20
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@attrs.frozen(kw_only=True)
class TextLine:
    """One physical line of a text file.

    Attributes:
        line: 1-based line number.
        text: the decoded line without its line break; ``None`` when ``error`` is set.
        error: a reason code (``invalid_encoding``, ``record_too_large``) or ``None``.
        message: the human explanation of ``error``.
        size: the line's size in bytes.
    """

    line: int
    text: str | None
    error: str | None = None
    message: str = ""
    size: int = 0


def _bom_encoding(head: bytes) -> str | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return None


def _utf8_verdict(sample: bytes, complete: bool) -> bool:
    """Decide whether a sample is UTF-8, tolerating a few corrupt lines."""
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


def detect_encoding(path: str | Path) -> str:
    """Return the codec name to read ``path`` with.

    A byte-order mark wins (``utf-8-sig``, ``utf-16``, ``utf-32``); otherwise
    UTF-8 unless the first MiB is clearly in another encoding, in which case
    charset-normalizer names it (cp1252, shift_jis, cp1251...).

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
        raise SourceError(f"cannot open file: {exc.strerror}", ErrorContext(path=str(path))) from exc
    bom = _bom_encoding(sample)
    if bom is not None:
        return bom
    if _utf8_verdict(sample, complete):
        return "utf-8"
    import charset_normalizer

    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        raise DecodeError(
            "the bytes fit no known encoding; pass encoding=... explicitly",
            ErrorContext(path=str(path)),
        )
    return str(best.encoding)


def _skip_rest_of_line(handle: io.BufferedReader) -> int:
    skipped = 0
    while True:
        chunk = handle.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _iter_byte_lines(
    path: Path, encoding: str, max_line_bytes: int
) -> Iterator[TextLine]:
    with path.open("rb") as raw_handle:
        handle = raw_handle
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
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                size = len(raw) + _skip_rest_of_line(handle)
                yield TextLine(
                    line=number,
                    text=None,
                    error="record_too_large",
                    message=f"line is {size:,} bytes, over the {max_line_bytes:,}-byte limit",
                    size=size,
                )
                continue
            body = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError as exc:
                yield TextLine(
                    line=number,
                    text=None,
                    error="invalid_encoding",
                    message=(
                        f"byte {body[exc.start]:#04x} at byte offset {exc.start} is not valid "
                        f"{encoding}; if the file uses another encoding, pass encoding=..."
                    ),
                    size=len(raw),
                )
                continue
            yield TextLine(line=number, text=text, size=len(raw))


def _iter_wide_lines(path: Path, encoding: str, max_line_bytes: int) -> Iterator[TextLine]:
    number = 0
    with path.open("r", encoding=encoding, newline=None) as handle:
        try:
            for text in handle:
                number += 1
                body = text.rstrip("\n")
                size = len(body) * 2
                if size > max_line_bytes:
                    yield TextLine(
                        line=number,
                        text=None,
                        error="record_too_large",
                        message=f"line is about {size:,} bytes, over the {max_line_bytes:,}-byte limit",
                        size=size,
                    )
                    continue
                yield TextLine(line=number, text=body, size=size)
        except UnicodeDecodeError as exc:
            raise DecodeError(
                f"invalid {encoding} data after line {number}: {exc.reason}",
                ErrorContext(path=str(path), line=number + 1),
            ) from exc


def iter_text_lines(
    path: str | Path,
    *,
    encoding: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[TextLine]:
    """Yield the lines of a text file one at a time, with per-line errors.

    Args:
        path: the file.
        encoding: codec to use; detected with :func:`detect_encoding` when ``None``.
        max_line_bytes: longer lines are skipped (without being read into
            memory) and reported as ``record_too_large``.

    Raises:
        SourceError: the file cannot be opened.
        DecodeError: a UTF-16/32 file holds invalid data (it cannot be split
            into lines safely past that point).
    """
    path = Path(path)
    chosen = encoding or detect_encoding(path)
    try:
        codec = codecs.lookup(chosen).name
    except LookupError as exc:
        raise SourceError(f"unknown encoding {chosen!r}", ErrorContext(path=str(path))) from exc
    if not path.is_file():
        raise SourceError("no such file", ErrorContext(path=str(path)))
    if codec.startswith(("utf-16", "utf-32")):
        yield from _iter_wide_lines(path, chosen, max_line_bytes)
    else:
        yield from _iter_byte_lines(path, codec, max_line_bytes)
