"""JSON files: a top-level array of objects, an object wrapping one, one object, or NDJSON.

The file is streamed: records are decoded one at a time from a
:class:`~finetune_web.sources._jsonstream.JsonBuffer` read in chunks, so a
1 GB array is read with memory for about one record.  This module decides
where the records are (the file's layout); the buffer does the decoding.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import attrs

from finetune_web._io import DEFAULT_MAX_LINE_BYTES, iter_text_lines
from finetune_web.errors import ConfigError, ErrorContext, SourceError
from finetune_web.records import Document, Rejection
from finetune_web.sources._jsonstream import (
    BrokenJson,
    JsonBuffer,
    JsonItem,
    JsonProblem,
    UnreadableValue,
    iter_array,
    read_key,
    read_record,
    skip_members,
)
from finetune_web.sources.files import (
    FileSource,
    check_positive,
    read_json_lines,
    records_read,
)

__all__ = ["JSON_LINES_SUFFIXES", "JsonLayout", "JsonSource"]

#: Files with these suffixes are read as JSON Lines without sniffing.
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})

_DEFAULT_CHUNK_CHARS = 1 << 16


LayoutKind = Literal["array", "wrapped", "object", "value", "lines", "empty"]


@attrs.frozen(kw_only=True)
class JsonLayout:
    """How a JSON file holds its records (reported before any record).

    Attributes:
        kind: ``array`` (top-level array), ``wrapped`` (an array under a key of a
            top-level object), ``object`` (one object, one record), ``value``
            (one non-object value), ``lines`` (one value per line), ``empty``.
        records_key: for ``wrapped``, the key holding the records.
    """

    kind: LayoutKind
    records_key: str | None = None


def _sniff(stream: TextIO, *, chunk_size: int, limit: int) -> LayoutKind:
    """Tell a JSON document from JSON Lines, reading as little as possible.

    A file whose first value starts with ``{``, ends on its first line and is
    followed by more values is ``lines``; anything else is one JSON document.

    Args:
        stream: the text, opened as for :func:`_document_events`.
        chunk_size: characters read at a time.
        limit: give up (and say ``value``) after this many characters.

    Returns:
        ``empty``, ``lines`` or ``value``.
    """
    buf = JsonBuffer(stream, chunk_size)
    try:
        first = buf.peek()
        if not first:
            return "empty"
        if first != "{":
            return "value"
        finished, _ = buf.skip(single_line=True, max_chars=limit)
        return "lines" if finished and buf.peek() else "value"
    except BrokenJson:
        return "value"


def _document_events(
    stream: TextIO,
    *,
    chunk_size: int,
    max_record_chars: int,
    records_key: str | None = None,
    object_as_record: bool = False,
) -> Iterator[JsonLayout | JsonItem | JsonProblem]:
    """Yield the layout of a JSON document, then its records and problems in order.

    Args:
        stream: a text stream opened with ``errors="surrogateescape"`` and ``newline=""``.
        chunk_size: characters read at a time.
        max_record_chars: longer records are skipped as ``record_too_large``.
        records_key: for a top-level object, the key whose array holds the records.
        object_as_record: a top-level object is always one record.

    Returns:
        An iterator: one :class:`JsonLayout` first, then :class:`JsonItem` and
        :class:`JsonProblem` values; a fatal problem ends it.

    Raises:
        LookupError: ``records_key`` does not fit the document (the message says why).
    """
    buf = JsonBuffer(stream, chunk_size)
    count, first, layout_sent = 0, "", False
    try:
        first = buf.peek()
        if not first:
            yield JsonLayout(kind="empty")
            return
        events: Iterator[JsonLayout | JsonItem | JsonProblem]
        if first == "{" and not object_as_record:
            events = _object_events(buf, max_record_chars, records_key)
        elif records_key is not None:
            raise LookupError(
                f"records_key={records_key!r} was given but the file's top level is not an "
                "object; leave records_key unset"
            )
        elif first == "[":
            layout_sent = True
            yield JsonLayout(kind="array")
            events = iter_array(buf, max_record_chars)
        else:
            layout_sent = True
            yield JsonLayout(kind="object" if first == "{" else "value")
            events = iter([read_record(buf, 0, max_record_chars)])
        for event in events:
            layout_sent = layout_sent or isinstance(event, JsonLayout)
            count += not isinstance(event, JsonLayout)
            yield event
        if buf.peek():
            raise buf.fail(
                "the end of the file after the JSON document (for JSON Lines, name it .jsonl)"
            )
    except BrokenJson as exc:
        if not layout_sent:
            yield JsonLayout(kind="object" if first == "{" else "value")
        line = exc.line or buf.line
        yield JsonProblem(
            reason=exc.reason,
            message=f"{exc.message}; {records_read(count)} before it and the rest of "
            f"the file, from line {line}, cannot be read",
            line=line,
            index=count,
            error_line=line,
            column=exc.column,
            fatal=True,
            raw=exc.raw,
        )


def _object_events(
    buf: JsonBuffer, limit: int, records_key: str | None
) -> Iterator[JsonLayout | JsonItem | JsonProblem]:
    """Stream the records of a top-level object: a wrapped array, or the object itself."""
    line = buf.line
    buf.expect("{", "'{'")
    members: dict[str, Any] = {}
    scalars_only = True  # an array of objects after scalar members only looks like a wrapper
    if buf.peek() == "}":
        buf.advance(buf.pos + 1)
    else:
        while True:
            key = read_key(buf, limit)
            if buf.peek() == "[" and (
                key == records_key
                or (records_key is None and scalars_only and buf.peek_after_next() == "{")
            ):
                yield JsonLayout(kind="wrapped", records_key=key)
                yield from iter_array(buf, limit)
                skip_members(buf, limit)
                return
            try:
                members[key] = buf.decode(limit)
                scalars_only = scalars_only and not isinstance(members[key], (dict, list))
            except UnreadableValue as exc:
                if records_key is None:  # the object is the record, and it is unreadable
                    yield JsonLayout(kind="object")
                    where = (exc.line, exc.column)
                    raise BrokenJson(exc.reason, exc.message, where, exc.raw) from exc
                buf.skip()  # not a record: skip it, the records may follow
            if buf.expect(",}", "',' or '}' after the value") == "}":
                break
    if records_key is not None:
        if records_key in members:
            kind = type(members[records_key]).__name__
            raise LookupError(f"key {records_key!r} holds a {kind}, not an array of records")
        keys = ", ".join(repr(k) for k in list(members)[:20]) or "none"
        raise LookupError(f"the top-level object has no key {records_key!r}; its keys: {keys}")
    yield JsonLayout(kind="object")
    yield JsonItem(value=members, line=line, index=0)


@attrs.frozen
class JsonSource(FileSource):
    """Reads the records of a JSON file, streaming.

    What counts as a record depends on the top level of the file:

    - an array: each item (an item that is not an object is a ``data_type``
      rejection);
    - an object and ``records_key`` given: each item of the array under that key;
    - an object and no ``records_key``: each item of the first member whose
      value is an array starting with an object, if every member before it is
      a plain value (``{"count": 2, "data": [{...}, {...}]}``); otherwise the
      object itself is the one record (a product whose ``categories`` list
      comes before its ``variations`` stays one record).  Call :meth:`layout`
      to see the choice; ``records_key`` or ``object_as_record`` settle it;
    - several values, one per line (NDJSON, as Bright Data's ``format=ndjson``
      gives), or a ``.jsonl``/``.ndjson``/``.jsonlines`` file: each line, read as
      :class:`~finetune_web.sources.JsonlSource` reads it.

    Malformed JSON inside a document cannot be recovered from: the records
    before it are yielded, then one ``invalid_json`` rejection names the line
    and column, how many records were read, and that the rest of the file was
    not.

    Args:
        path: the file to read.
        encoding: see :class:`~finetune_web.sources.files.FileSource`.
        text_field: see :class:`~finetune_web.sources.files.FileSource`.
        error_key: see :class:`~finetune_web.sources.files.FileSource`.
        name: see :class:`~finetune_web.sources.files.FileSource`.
        records_key: the member of a top-level object that holds the records.
        object_as_record: a top-level object is one record, even if it holds
            an array of objects (a single product with ``variations``, say).
        chunk_size: characters read at a time.
        max_record_chars: a record longer than this (in characters; in bytes
            for JSON Lines) is skipped without being kept and rejected as
            ``record_too_large``.

    Raises:
        ConfigError: both ``records_key`` and ``object_as_record`` are given.
    """

    records_key: str | None = attrs.field(default=None, kw_only=True)
    object_as_record: bool = attrs.field(default=False, kw_only=True)
    chunk_size: int = attrs.field(
        default=_DEFAULT_CHUNK_CHARS, kw_only=True, validator=check_positive
    )
    max_record_chars: int = attrs.field(
        default=DEFAULT_MAX_LINE_BYTES, kw_only=True, validator=check_positive
    )

    def __attrs_post_init__(self) -> None:
        if self.records_key is not None and self.object_as_record:
            raise ConfigError(
                "records_key and object_as_record=True contradict each other; give one"
            )

    def read(self) -> Iterator[Document | Rejection]:
        """Return an iterator over the file's documents and rejections, in file order.

        Raises:
            SourceError: the file is missing, a directory, empty, or does not
                fit ``records_key`` (raised here or on the first ``next()``).
        """
        return self._read(self._check())

    def layout(self) -> JsonLayout:
        """Say how the file holds its records, reading only its beginning.

        Returns:
            A :class:`~finetune_web.sources.JsonLayout`: ``kind`` is ``array``,
            ``wrapped`` (with the ``records_key`` chosen), ``object``, ``value``
            (one non-object value), ``lines``, or ``empty`` (only whitespace).

        Raises:
            SourceError: as :meth:`read`.
        """
        path = self._check()
        encoding = self._encoding(path)
        if self._lines(path, encoding):
            return JsonLayout(kind="lines")
        with self._open(path, encoding) as stream:
            event = next(self._events(stream))
        if not isinstance(event, JsonLayout):  # pragma: no cover - the parser reports it first
            raise TypeError(f"expected the layout first, got {event!r}")
        return event

    def _read(self, path: Path) -> Iterator[Document | Rejection]:
        encoding = self._encoding(path)
        maker = self._maker()
        if self._lines(path, encoding):
            if self.records_key is not None:
                raise self._error(
                    f"records_key={self.records_key!r} was given but the file holds one JSON "
                    "value per line; leave records_key unset"
                )
            lines = iter_text_lines(path, encoding=encoding, max_line_bytes=self.max_record_chars)
            yield from read_json_lines(maker, lines, encoding)
            return
        with self._open(path, encoding) as stream:
            for event in self._events(stream):
                if isinstance(event, JsonItem):
                    yield maker.make(event.value, line=event.line, index=event.index, raw=None)
                elif isinstance(event, JsonProblem):
                    details: dict[str, object] = {}
                    if event.fatal:
                        details = {"records_read": event.index, "rest_of_file": True}
                    if event.size is not None:
                        details["size"] = event.size
                    yield maker.reject(
                        event.index,
                        event.line,
                        event.reason,
                        _where(event) + event.message,
                        record=event.raw,
                        details=details,
                    )
                elif event.kind == "empty":
                    raise self._error(
                        "file is empty (it holds only whitespace); check that it was written fully"
                    )

    def _events(self, stream: TextIO) -> Iterator[JsonLayout | JsonItem | JsonProblem]:
        try:
            yield from _document_events(
                stream,
                chunk_size=self.chunk_size,
                max_record_chars=self.max_record_chars,
                records_key=self.records_key,
                object_as_record=self.object_as_record,
            )
        except LookupError as exc:
            raise self._error(str(exc)) from None

    def _lines(self, path: Path, encoding: str) -> bool:
        """Tell whether the file is JSON Lines (by suffix, else by its first line)."""
        if path.suffix.lower() in JSON_LINES_SUFFIXES:
            return True
        with self._open(path, encoding) as stream:
            kind = _sniff(stream, chunk_size=self.chunk_size, limit=self.max_record_chars)
        return kind == "lines"

    def _open(self, path: Path, encoding: str) -> TextIO:
        codec = codecs.lookup(encoding).name
        # Undecodable bytes become lone surrogates, so only their record is lost.
        wide = codec.startswith(("utf-16", "utf-32"))
        errors = "surrogatepass" if wide else "surrogateescape"
        return path.open("r", encoding=codec, errors=errors, newline="")

    def _error(self, message: str) -> SourceError:
        return SourceError(message, ErrorContext(path=str(self.path), source=self._step()))


def _where(problem: JsonProblem) -> str:
    """Say where in its record a problem is, when that adds to the record's line."""
    parts = []
    if problem.error_line is not None and problem.error_line != problem.line:
        parts.append(f"line {problem.error_line}")
    if problem.column is not None:
        parts.append(f"column {problem.column}")
    return f"at {', '.join(parts)}: " if parts else ""
