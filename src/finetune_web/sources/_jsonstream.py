"""Incremental JSON reading: one value at a time from a text stream, with line numbers.

The text is read in chunks into a buffer; each value is decoded with
:meth:`json.JSONDecoder.raw_decode`.  A value that does not fit in the
buffer makes the next read as large as the unread part, so the buffer
doubles and a huge value costs linear, not quadratic, time.  Line numbers
are kept by counting the newlines consumed.  Memory holds one chunk plus
the value being decoded; values longer than a limit are skipped by a light
scanner that keeps nothing.

Undecodable bytes arrive as lone surrogates (the stream is opened with
``errors="surrogateescape"``, or ``"surrogatepass"`` for UTF-16/32): a value
holding one is reported as ``invalid_encoding`` instead of being returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

import attrs

__all__ = [
    "BrokenJson",
    "JsonBuffer",
    "JsonFault",
    "JsonItem",
    "JsonProblem",
    "UnreadableValue",
    "escape_bytes",
    "iter_array",
    "read_key",
    "read_record",
    "skip_members",
]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRUCTURE_OR_NEWLINE = re.compile(r'["\[\]{}\n]')
_STRING_STOP = re.compile(r'["\\]')
_SCALAR = re.compile(r"[^,\]}\s]*")
_ESCAPED_BYTE = re.compile("[\ud800-\udfff]")  # a lone surrogate: bytes that did not decode
_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*")  # what may still follow a number's first part
_DECODER = json.JSONDecoder()
_NEAR_END = 16  # a decode error this close to the buffer end may only mean "read more"
_PREVIEW_CHARS = 10_000
_BAD_BYTES = "bytes that are not valid in the file's encoding (pass the right one as encoding=...)"


class JsonFault(Exception):
    """What is wrong, at ``where`` (line, column), with the start of the text at fault."""

    def __init__(
        self, reason: str, message: str, where: tuple[int | None, int | None], raw: str | None
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.raw = reason, message, raw
        self.line, self.column = where


class BrokenJson(JsonFault):
    """The document is malformed: reading cannot go on."""


class UnreadableValue(JsonFault):
    """The value at the read position cannot be decoded, but it can be skipped."""


def escape_bytes(text: str) -> str:
    """Write undecodable bytes (lone surrogates) as ``\\xNN`` or ``\\uXXXX``, so text is valid.

    Args:
        text: text decoded with ``errors="surrogateescape"`` (bytes become
            U+DC80..U+DCFF) or ``"surrogatepass"`` (UTF-16/32 lone surrogates).

    Returns:
        The text with each lone surrogate written as an escape.
    """

    def show(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if code >= 0xDC80 else f"\\u{code:04x}"

    return _ESCAPED_BYTE.sub(show, text)


class JsonBuffer:
    """Text read from a stream in chunks, with the line and column of the read position."""

    def __init__(self, stream: TextIO, chunk_size: int) -> None:
        self.stream = stream
        self.chunk_size = chunk_size
        self.text = ""
        self.pos = 0
        self.line = 1
        self.column_base = 1  # column of text[0] when no newline precedes it in text
        self.eof = False

    def fill(self) -> bool:
        """Drop consumed text and read more (as much as is unread, at least a chunk)."""
        if self.eof:
            return False
        newline = self.text.rfind("\n", 0, self.pos)
        self.column_base = self.pos - newline if newline >= 0 else self.column_base + self.pos
        rest = self.text[self.pos :]
        try:
            more = self.stream.read(max(self.chunk_size, len(rest)))
        except UnicodeDecodeError as exc:
            raise BrokenJson(
                "invalid_encoding",
                f"bytes that are not valid {exc.encoding} ({exc.reason}), so the rest of the "
                f"file cannot be decoded; pass encoding=... if the file is not {exc.encoding}",
                (self.line, None),
                None,
            ) from exc
        if not self.text and not rest and more.startswith("\ufeff"):
            more = more[1:]  # a byte-order mark the codec left in
        self.text, self.pos = rest + more, 0
        if not more:
            self.eof = True
        return bool(more)

    def where(self, pos: int) -> tuple[int, int]:
        """Return the line and column of ``pos`` in the buffer."""
        line = self.line + self.text.count("\n", self.pos, pos)
        newline = self.text.rfind("\n", 0, pos)
        column = pos - newline if newline >= 0 else self.column_base + pos
        return line, column

    def advance(self, pos: int) -> None:
        """Move the read position to ``pos``, counting the lines passed."""
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos

    def peek(self) -> str:
        """Skip whitespace and return the next character, ``""`` at end of file."""
        if self.pos < len(self.text) and self.text[self.pos] not in " \t\n\r":
            return self.text[self.pos]  # the common case, kept fast
        while True:
            match = _WHITESPACE.match(self.text, self.pos)
            if match:
                self.advance(match.end())
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""

    def peek_after_next(self) -> str:
        """Return the first non-whitespace character after the next one, not consuming."""
        offset = self.pos + 1
        while True:
            match = _WHITESPACE.match(self.text, offset)
            if match:
                offset = match.end()
            if offset < len(self.text):
                return self.text[offset]
            offset -= self.pos
            if not self.fill():
                return ""
            offset += self.pos

    def fail(self, what: str) -> BrokenJson:
        """Return the error for an unexpected character (or end of file) at the read position."""
        char = self.text[self.pos : self.pos + 1]
        if char and _ESCAPED_BYTE.match(char):
            return self._broken_at(self.pos, "")
        found = repr(char) if char else "the end of the file"
        return BrokenJson(
            "invalid_json", f"expected {what}, found {found}", self.where(self.pos), self.preview()
        )

    def expect(self, chars: str, what: str) -> str:
        """Consume the next non-whitespace character, which must be one of ``chars``."""
        char = self.peek()
        if not char or char not in chars:
            raise self.fail(what)
        self.pos += 1  # chars never hold a newline, so the line stays the same
        return char

    def preview(self) -> str:
        """Return the text from the read position (10,000 characters at most), for rejects."""
        return escape_bytes(self.text[self.pos : self.pos + _PREVIEW_CHARS])

    def decode(self, limit: int) -> Any:
        """Decode the value at the read position and consume it.

        Raises:
            UnreadableValue: the value is too large, too deep, or holds invalid
                bytes (the read position is left at its start, so it can be skipped).
            BrokenJson: the value is malformed.
        """
        while True:
            start = self.pos
            try:
                value, end = _DECODER.raw_decode(self.text, start)
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(self.text) - _NEAR_END
                if not self.eof and (near_end or exc.msg.startswith("Unterminated string")):
                    self._grow(limit)
                    continue
                raise self._broken_at(exc.pos, exc.msg) from exc
            except RecursionError as exc:
                message = "record is nested too deeply to decode"
                raise UnreadableValue("invalid_json", message, (None, None), None) from exc
            if (
                not self.eof
                and self.text[end - 1] not in '"]}'
                and _NUMBER_TAIL.fullmatch(self.text, end) is not None
            ):
                self._grow(limit)  # a number cut by the chunk's end ("-6." of "-6.5e10")
                continue
            bad = _ESCAPED_BYTE.search(self.text, start, end)
            if bad is not None:
                raise UnreadableValue(
                    "invalid_encoding",
                    _BAD_BYTES,
                    self.where(bad.start()),
                    escape_bytes(self.text[start : min(end, start + _PREVIEW_CHARS)]),
                )
            self.line += self.text.count("\n", start, end)
            self.pos = end
            return value

    def _grow(self, limit: int) -> None:
        if len(self.text) - self.pos > limit:
            raise UnreadableValue(
                "record_too_large",
                f"record is longer than {limit:,} characters (raise max_record_chars to read it)",
                (None, None),
                None,
            )
        self.fill()

    def _broken_at(self, pos: int, msg: str) -> BrokenJson:
        char, reason = self.text[pos : pos + 1], "invalid_json"
        if char and _ESCAPED_BYTE.match(char):
            reason, msg = "invalid_encoding", _BAD_BYTES
        elif pos >= len(self.text) and self.eof:
            msg = "unexpected end of file"
        return BrokenJson(reason, msg, self.where(pos), self.preview())

    def skip(self, *, single_line: bool = False, max_chars: int | None = None) -> tuple[bool, int]:
        """Consume the value at the read position without keeping it.

        Args:
            single_line: stop (unfinished) at a newline inside the value.
            max_chars: stop (unfinished) after this many characters.

        Returns:
            ``(finished, chars)``: whether the whole value was consumed, and how
            many characters were.

        Raises:
            BrokenJson: the file ends inside the value.
        """
        start_line, skipped = self.line, 0
        depth, in_string, escaped = 0, False, False
        scalar = self.peek() not in '{["'
        while True:
            if escaped and self.pos < len(self.text):
                self.advance(self.pos + 1)
                skipped, escaped = skipped + 1, False
            if scalar:
                found = _SCALAR.match(self.text, self.pos)
                stop = found.end() if found else self.pos
                skipped += stop - self.pos
                self.advance(stop)
                if stop < len(self.text) or not self.fill():
                    return True, skipped
                continue
            pattern = _STRUCTURE_OR_NEWLINE if single_line else _STRUCTURE
            found = (_STRING_STOP if in_string else pattern).search(self.text, self.pos)
            if found is None:
                skipped += len(self.text) - self.pos
                self.advance(len(self.text))
                if max_chars is not None and skipped > max_chars:
                    return False, skipped
                if not self.fill():
                    raise BrokenJson(
                        "invalid_json",
                        f"unexpected end of file inside the value starting at line {start_line}",
                        (self.line, None),
                        None,
                    )
                continue
            char = found.group()
            skipped += found.end() - self.pos
            self.advance(found.end())
            if in_string:
                escaped = char == "\\"
                in_string = escaped
            elif char == '"':
                in_string = True
            elif char == "\n":
                if single_line:
                    return False, skipped
            elif char in "[{":
                depth += 1
            else:
                depth -= 1
            if depth == 0 and not in_string:
                return True, skipped


@attrs.frozen
class JsonItem:
    """One decoded record, with the 1-based line where it starts and its 0-based index."""

    value: Any
    line: int
    index: int


@attrs.frozen(kw_only=True)
class JsonProblem:
    """A record (or, when ``fatal``, the rest of the file) that could not be read.

    Attributes:
        reason: ``invalid_json``, ``invalid_encoding`` or ``record_too_large``.
        message: what is wrong (without the file name or line).
        line: 1-based line where the record starts (where reading stopped, if fatal).
        index: index the record would have had.
        error_line: the line of the fault itself, when known.
        column: the 1-based column of the fault, when known.
        fatal: nothing after this point can be read.
        raw: the start of the unreadable text (at most 10,000 characters).
        size: characters skipped, for ``record_too_large``.
    """

    reason: str
    message: str
    line: int
    index: int
    error_line: int | None = None
    column: int | None = None
    fatal: bool = False
    raw: str | None = None
    size: int | None = None


def read_record(buf: JsonBuffer, index: int, limit: int) -> JsonItem | JsonProblem:
    """Decode the record at the read position, or skip it and say why it is unreadable.

    Raises:
        BrokenJson: the record is malformed, so reading cannot go on.
    """
    line = buf.line
    try:
        value = buf.decode(limit)
    except UnreadableValue as exc:
        _, size = buf.skip()
        return JsonProblem(
            reason=exc.reason,
            message=exc.message,
            line=line,
            index=index,
            error_line=exc.line,
            column=exc.column,
            raw=exc.raw,
            size=size if exc.reason == "record_too_large" else None,
        )
    return JsonItem(value, line, index)


def iter_array(buf: JsonBuffer, limit: int) -> Iterator[JsonItem | JsonProblem]:
    """Yield the items of the array whose ``[`` is at the read position, in order.

    Raises:
        BrokenJson: the array is malformed (after the items before the fault).
    """
    buf.expect("[", "'['")
    if buf.peek() == "]":
        buf.advance(buf.pos + 1)
        return
    index = 0
    while True:
        if buf.peek() in ("]", ""):
            raise buf.fail("a value")  # a trailing comma, or the file ends inside the array
        yield read_record(buf, index, limit)
        index += 1
        if buf.expect(",]", "',' or ']' after the record") == "]":
            return


def read_key(buf: JsonBuffer, limit: int) -> str:
    """Decode an object key and the ``:`` after it.

    Raises:
        BrokenJson: there is no well-formed key at the read position.
    """
    if buf.peek() != '"':
        raise buf.fail("a key in double quotes")
    try:
        key: str = buf.decode(limit)
    except UnreadableValue as exc:
        raise BrokenJson(exc.reason, exc.message, (exc.line, exc.column), buf.preview()) from exc
    buf.expect(":", "':' after the key")
    return key


def skip_members(buf: JsonBuffer, limit: int) -> None:
    """Read past the members that follow the records' array, up to the closing ``}``.

    Raises:
        BrokenJson: the rest of the object is malformed.
    """
    while buf.expect(",}", "',' or '}' after the records") == ",":
        read_key(buf, limit)
        buf.skip()
