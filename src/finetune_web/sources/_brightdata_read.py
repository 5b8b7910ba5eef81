"""A snapshot's streamed body turned into documents and rejections, as the file sources do.

The body is parsed while it arrives: JSON Lines are split into lines and each
line is read as :class:`~finetune_web.sources.JsonlSource` reads it; a JSON
array goes through the streaming parser of :mod:`finetune_web.sources.json`.
Memory holds a read buffer and one record, never the snapshot.

A download that breaks in the middle of the body is fetched again from the
start of its part; the records already yielded are parsed again but not
yielded twice (a snapshot does not change once it is ready).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from finetune_web._io import DEFAULT_MAX_LINE_BYTES, TextLine
from finetune_web.errors import SourceError
from finetune_web.records import Document, Location, Rejection
from finetune_web.sources._brightdata_api import ScraperApi
from finetune_web.sources._brightdata_limits import BODY_ERRORS
from finetune_web.sources._jsonstream import JsonItem, JsonProblem
from finetune_web.sources.files import RecordMaker, read_json_lines
from finetune_web.sources.json import _document_events, _where

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ChunkReader", "SnapshotFormat", "SnapshotMaker", "body_lines", "stream_part"]

log = logging.getLogger("finetune_web.sources.brightdata")

#: The download formats read: JSON Lines, or one JSON array.
SnapshotFormat = Literal["jsonl", "json"]

_BUFFER_BYTES = 1 << 16


class ChunkReader(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks (an HTTP body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        """Return ``True``: the stream can be read."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Copy the next bytes into ``buffer``; return how many (0 at the end)."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@attrs.frozen(kw_only=True)
class SnapshotMaker(RecordMaker):
    """Builds the records of one part of a snapshot.

    Ids are ``<snapshot id>#<index>``, the index counted over the whole
    snapshot (``offset`` is the number of records in the parts before);
    locations name the part's URL and the line in its body; documents carry
    ``metadata``.

    Attributes:
        url: the download URL of the part (without the token, which is a header).
        metadata: added to every document (``snapshot_id``, ``dataset_id``).
        offset: the index of the part's first record.
    """

    url: str
    metadata: dict[str, Any]
    offset: int = 0
    origin: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: self.url, takes_self=True)
    )

    def reject(
        self,
        index: int,
        line: int | None,
        reason: str,
        message: str,
        *,
        record: Any = None,
        details: dict[str, Any] | None = None,
    ) -> Rejection:
        """Return a rejection for the part's record ``index`` (see :meth:`RecordMaker.reject`)."""
        return RecordMaker.reject(
            self, self.offset + index, line, reason, message, record=record, details=details
        )

    def make(self, value: Any, *, line: int, index: int, raw: str | None) -> Document | Rejection:
        """Return a document for the part's record ``index``, or the rejection saying why not."""
        item = RecordMaker.make(self, value, line=line, index=index, raw=raw)  # rejects: shifted
        if not isinstance(item, Document):
            return item
        shifted = self.offset + index
        location = Location(origin=self.origin, line=line, index=shifted)
        return attrs.evolve(
            item, id=self.record_id(shifted), metadata=self.metadata, location=location
        )


def body_lines(handle: io.BufferedIOBase, max_line_bytes: int) -> Iterator[TextLine]:
    """Yield the UTF-8 lines of a body, as :func:`~finetune_web._io.iter_text_lines` does for files.

    Args:
        handle: the body.
        max_line_bytes: longer lines are skipped unread and reported as ``record_too_large``.
    """
    number = 0
    while True:
        raw = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            size = len(raw)
            while not raw.endswith(b"\n"):
                raw = handle.readline(_BUFFER_BYTES)
                if not raw:
                    break
                size += len(raw)
            yield TextLine(
                line=number,
                text=None,
                error="record_too_large",
                message=f"line is {size:,} bytes, over the {max_line_bytes:,}-byte limit",
                size=size,
            )
            continue
        body = raw.rstrip(b"\n").removesuffix(b"\r")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield TextLine(
                line=number,
                text=None,
                error="invalid_encoding",
                message=f"byte {body[exc.start]:#04x} at byte offset {exc.start} is not UTF-8",
                size=len(raw),
                raw=body,
            )
            continue
        yield TextLine(line=number, text=text.removeprefix("\ufeff"), size=len(raw))


def _read_lines(maker: SnapshotMaker, chunks: Iterator[bytes]) -> Iterator[Document | Rejection]:
    handle = io.BufferedReader(ChunkReader(chunks), _BUFFER_BYTES)
    try:
        yield from read_json_lines(maker, body_lines(handle, DEFAULT_MAX_LINE_BYTES), "utf-8")
    except SourceError:  # raised only after the last line, when there was no record
        log.warning("%s: the body holds no records", maker.url)


def _read_json(maker: SnapshotMaker, chunks: Iterator[bytes]) -> Iterator[Document | Rejection]:
    handle = io.BufferedReader(ChunkReader(chunks), _BUFFER_BYTES)
    stream = io.TextIOWrapper(handle, encoding="utf-8", errors="surrogateescape", newline="")
    limit = DEFAULT_MAX_LINE_BYTES
    for event in _document_events(stream, chunk_size=_BUFFER_BYTES, max_record_chars=limit):
        if isinstance(event, JsonItem):
            yield maker.make(event.value, line=event.line, index=event.index, raw=None)
        elif isinstance(event, JsonProblem):
            details: dict[str, Any] = {}
            if event.fatal:
                details = {"records_read": event.index, "rest_of_file": True}
            if event.size is not None:
                details["size"] = event.size
            message = _where(event) + event.message
            yield maker.reject(
                event.index, event.line, event.reason, message, record=event.raw, details=details
            )
        elif event.kind == "empty":
            log.warning("%s: the body holds no records", maker.url)


def stream_part(
    api: ScraperApi,
    snapshot_id: str,
    params: Mapping[str, str],
    maker: SnapshotMaker,
    format: SnapshotFormat,
) -> Generator[Document | Rejection, None, int | None]:
    """Yield the records of one download (a whole snapshot, or one part of it).

    Args:
        api: the read's API client.
        snapshot_id: the snapshot.
        params: the download's query parameters (``format``, ``batch_size``, ``part``).
        maker: builds the records.
        format: how the body is written.

    Returns:
        An iterator; its return value is the number of records in the part,
        or ``None`` when Bright Data said the snapshot is empty.

    Raises:
        SourceError: the download cannot be completed (see :meth:`ScraperApi.open_snapshot`),
            or broke :data:`~finetune_web.sources._brightdata_limits.BACKOFF` + 1 times in a row.
    """
    parse = _read_lines if format == "jsonl" else _read_json
    path = f"/datasets/v3/snapshot/{snapshot_id}"
    emitted = failures = 0
    while True:
        response = api.open_snapshot(snapshot_id, params)
        if response is None:
            return None
        before, seen = emitted, 0
        try:
            for item in parse(maker, response.iter_bytes()):
                seen += 1
                if seen > emitted:  # the first `emitted` went out before a download broke
                    emitted = seen
                    yield item
            return emitted
        except BODY_ERRORS as exc:
            failures = 0 if emitted > before else failures
            reason = f"{type(exc).__name__} after {seen:,} records of the body: {exc}"
            failures = api.back_off(f"download snapshot {snapshot_id}", path, failures, reason)
        finally:
            response.close()
