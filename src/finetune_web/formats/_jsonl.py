"""JSON Lines plumbing shared by the chat, DPO and prompt/completion formats.

Reading turns every non-blank line into a record or a
:class:`~finetune_web.records.Rejection` (bad bytes, oversized line, bad
JSON, invalid record), so no line is ever lost.  Writing is canonical: the
same records always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TypeVar

import attrs

from finetune_web._io import iter_text_lines
from finetune_web._types import JSONObject, StrPath
from finetune_web.errors import ConfigError, ErrorContext, RecordError
from finetune_web.records import Location, Rejection

__all__ = [
    "JsonlWriter",
    "WriteResult",
    "context_of",
    "dump_line",
    "fail",
    "json_type",
    "read_jsonl",
    "write_jsonl",
    "write_records",
]

T = TypeVar("T")

#: Parses one decoded JSON value: ``(value, location, record_id) -> record``.
Parser = Callable[[Any, Location, str], T]

_SEPARATORS = (", ", ": ")
#: One encoder for every line (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=_SEPARATORS)
#: A JsonlWriter's buffer: few, large writes (a line is often a few KB).
_WRITE_BUFFER = 1 << 20


@attrs.frozen(kw_only=True)
class WriteResult:
    """What a writer wrote.

    Attributes:
        path: the file written.
        count: the number of records (lines).
        sha256: hex digest of the file's bytes.
        bytes: the file's size.
    """

    path: str
    count: int
    sha256: str
    bytes: int


def context_of(
    location: Location | None, index: int | None = None, record_id: str | None = None
) -> ErrorContext:
    """Return the error context of a record at ``location``."""
    if location is None:
        return ErrorContext(index=index, record_id=record_id or None)
    return ErrorContext(
        path=location.origin,
        line=location.line,
        index=index if index is not None else location.index,
    )


def fail(reason: str, message: str, context: ErrorContext) -> NoReturn:
    """Raise a :class:`~finetune_web.errors.RecordError` with a reason code.

    Raises:
        RecordError: always.
    """
    raise RecordError(message, context, reason=reason)


def json_type(value: object) -> str:
    """Return the JSON name of a value's type (``object``, ``array``, ``string``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def read_jsonl(
    path: StrPath, parse: Parser[T], *, step: str, encoding: str | None = None
) -> Iterator[T | Rejection]:
    """Yield one record or rejection per non-blank line of a JSON Lines file.

    Record ``i`` (0-based, counting non-blank lines) gets the id
    ``<file name>#<i>`` and a :class:`~finetune_web.records.Location` with
    its 1-based line.  A rejection's message names the file and line, and its
    ``record`` keeps the line's text when it could be decoded.

    Args:
        path: the file.
        parse: turns a decoded JSON value into a record, raising
            :class:`~finetune_web.errors.RecordError` when it is invalid.
        step: the name given to rejections.
        encoding: the file's codec; detected when ``None``.

    Raises:
        SourceError: the file cannot be opened.
    """
    origin = str(path)
    name = Path(path).name
    index = 0
    for line in iter_text_lines(Path(path), encoding=encoding):
        if line.text is not None and not line.text.strip():
            continue
        location = Location(origin=origin, line=line.line, index=index)
        record_id = f"{name}#{index}"
        index += 1
        try:
            if line.text is None:
                fail(line.error or "invalid_line", line.message, context_of(location))
            try:
                value = json.loads(line.text)
            except json.JSONDecodeError as exc:
                fail(
                    "invalid_json",
                    f"invalid JSON at column {exc.colno}: {exc.msg}",
                    context_of(location),
                )
            yield parse(value, location, record_id)
        except RecordError as exc:
            yield Rejection(
                record_id=record_id,
                step=step,
                reason=exc.reason,
                message=str(exc),
                location=location,
                record=line.text,
            )


def dump_line(obj: JSONObject) -> bytes:
    """Return one canonical JSON Lines line (UTF-8, ``", "``/``": "`` separators, ``\\n``).

    A string holding a lone surrogate cannot be UTF-8: such an object is
    written with ``\\u`` escapes instead, which reads back to the same value.
    """
    try:
        return (_ENCODER.encode(obj) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(obj, ensure_ascii=True, separators=_SEPARATORS) + "\n").encode("ascii")


class JsonlWriter:
    """Writes JSON objects one per line, atomically: a temporary file renamed on close.

    Use it as a context manager.  Leaving the block normally renames the
    temporary file onto ``path``; leaving it by an exception deletes it, so a
    failed write never leaves a half-written file.  Lines are canonical (see
    :func:`dump_line`).

    Args:
        path: the file to create or replace.
        keep_empty: when false and nothing was written, no file is created
            (an existing file is left as it was).
    """

    def __init__(self, path: StrPath, *, keep_empty: bool = True) -> None:
        self.path = Path(path)
        self.keep_empty = keep_empty
        self.count = 0
        self.bytes = 0
        self.kept = False
        self._digest = hashlib.sha256()
        self._temporary = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        )
        self._handle: BinaryIO | None = None

    def __enter__(self) -> JsonlWriter:
        self._handle = self._temporary.open("xb", buffering=_WRITE_BUFFER)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        if kind is None and (self.count or self.keep_empty):
            os.replace(self._temporary, self.path)
            self.kept = True
        else:
            self._temporary.unlink(missing_ok=True)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._digest.hexdigest()

    def write(self, obj: JSONObject) -> int:
        """Write one object as one line.

        Returns:
            The 1-based line number of the object in the file.

        Raises:
            ConfigError: the writer is not open (use it in a ``with`` block).
        """
        if self._handle is None:
            raise ConfigError(
                "the JsonlWriter is not open: use it in a with block",
                ErrorContext(path=str(self.path)),
            )
        data = dump_line(obj)
        self._handle.write(data)
        self._digest.update(data)
        self.count += 1
        self.bytes += len(data)
        return self.count

    def result(self) -> WriteResult:
        """Return what was written (call after the ``with`` block)."""
        return WriteResult(
            path=str(self.path), count=self.count, sha256=self.sha256, bytes=self.bytes
        )


def write_jsonl(objects: Iterable[JSONObject], path: StrPath) -> WriteResult:
    """Write JSON objects one per line, atomically (see :class:`JsonlWriter`).

    Args:
        objects: the objects, written in order.
        path: the file to create or replace.

    Returns:
        The count, size and SHA-256 of what was written.
    """
    with JsonlWriter(path) as writer:
        for obj in objects:
            writer.write(obj)
    return writer.result()


def write_records(
    records: Iterable[T], to_json: Callable[[T], JSONObject], path: StrPath
) -> WriteResult:
    """Write records with ``to_json`` (see :func:`write_jsonl`)."""
    return write_jsonl((to_json(record) for record in records), path)
