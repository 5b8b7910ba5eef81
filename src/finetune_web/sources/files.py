"""JSON Lines files, and what every file source shares.

A file source is a frozen attrs record that holds a path and its options and
opens nothing until :meth:`read` is called.  Each record read becomes a
:class:`~finetune_web.records.Document` whose id is ``<file name>#<index>``
(0-based) and whose location names the file and the line where the record
starts; a record that cannot be used becomes a
:class:`~finetune_web.records.Rejection` with the id it would have had.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web._io import (
    DEFAULT_MAX_LINE_BYTES,
    TextLine,
    check_file,
    detect_encoding,
    iter_text_lines,
)
from finetune_web.errors import (
    ConfigError,
    DecodeError,
    ErrorContext,
    SourceError,
    error_context,
)
from finetune_web.records import Document, Location, Rejection

__all__ = ["DEFAULT_ERROR_KEY", "JsonlSource", "check_encoding"]

#: The key that marks a failed scrape in Bright Data output.
DEFAULT_ERROR_KEY = "error_code"

#: Raw text kept in a rejection is cut to this many characters.
RAW_PREVIEW_CHARS = 10_000


def check_encoding(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    """Validate an ``encoding`` option: ``None`` or a codec name Python knows."""
    if value is None:
        return
    try:
        codecs.lookup(value)
    except LookupError:
        raise ConfigError(
            f"{attribute.name}={value!r} is not an encoding Python knows; use a name such as "
            "'utf-8', 'cp1252', 'shift_jis' or 'cp1251'"
        ) from None


def records_read(count: int) -> str:
    """Return ``"1 record was read"`` or ``"N records were read"``."""
    return "1 record was read" if count == 1 else f"{count:,} records were read"


def check_positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    """Validate that an integer option is at least 1.

    Raises:
        ConfigError: the value is smaller than 1.
    """
    if value < 1:
        raise ConfigError(f"{attribute.name} must be at least 1, not {value!r}")


def preview(text: str | None) -> str | None:
    """Return ``text`` cut to :data:`RAW_PREVIEW_CHARS` characters (so rejects stay small)."""
    if text is None or len(text) <= RAW_PREVIEW_CHARS:
        return text
    return text[:RAW_PREVIEW_CHARS]


def line_preview(line: TextLine, encoding: str) -> str | None:
    """Return the text of a line for a rejection: its undecodable bytes shown as ``\\xNN``."""
    if line.text is not None:
        return preview(line.text)
    if line.raw is None:
        return None
    head = line.raw[: RAW_PREVIEW_CHARS * 4]  # enough bytes for the preview, not a huge line
    return preview(head.decode(encoding, "backslashreplace"))


@attrs.frozen(kw_only=True)
class RecordMaker:
    """Turns decoded values into documents or rejections for one read of one file.

    Attributes:
        path: the file.
        step: the name rejections carry.
        text_field: the field copied into ``Document.text``, if any.
        error_key: the field that marks a failed scrape, if any.
    """

    path: Path
    step: str
    text_field: str | None
    error_key: str | None
    origin: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: str(self.path), takes_self=True)
    )
    id_prefix: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: f"{self.path.name}#", takes_self=True)
    )

    def record_id(self, index: int) -> str:
        """Return the id of the record at ``index``."""
        return f"{self.id_prefix}{index}"

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
        """Return a rejection whose message starts with ``path:line``."""
        where = self.origin if line is None else f"{self.origin}:{line}"
        return Rejection(
            record_id=self.record_id(index),
            step=self.step,
            reason=reason,
            message=f"{where}: {message}",
            location=Location(origin=self.origin, line=line, index=index),
            record=record,
            details=details or {},
        )

    def make(self, value: Any, *, line: int, index: int, raw: str | None) -> Document | Rejection:
        """Return a document for a JSON object or CSV row, or the rejection explaining why not.

        Args:
            value: the decoded record.
            line: 1-based line where it starts.
            index: its 0-based position in the file.
            raw: its raw text, kept in a ``data_type`` rejection.
        """
        if not isinstance(value, dict):
            kind = "null" if value is None else type(value).__name__
            return self.reject(
                index,
                line,
                "data_type",
                f"record is a JSON {kind}, not an object",
                record=preview(raw) if raw is not None else value,
            )
        if self.error_key is not None and value.get(self.error_key) not in (None, ""):
            code = value[self.error_key]
            error, scrape_input = value.get("error"), value.get("input")
            return self.reject(
                index,
                line,
                "scrape_error",
                f"the scraper failed on this record ({self.error_key}={code!r}): "
                f"{str(error)[:300]}; input: {json.dumps(scrape_input, default=str)[:300]}",
                record=value,
                details={"error_code": code, "error": error, "input": scrape_input},
            )
        text: str | None = None
        if self.text_field is not None:
            found = value.get(self.text_field)
            if found is None:
                return self.reject(
                    index,
                    line,
                    "missing_field",
                    f"text_field {self.text_field!r} is missing or null",
                    record=value,
                )
            if not isinstance(found, str):
                return self.reject(
                    index,
                    line,
                    "data_type",
                    f"text_field {self.text_field!r} is a {type(found).__name__}, not a string",
                    record=value,
                )
            text = found
        location = Location(origin=self.origin, line=line, index=index)
        return Document(id=f"{self.id_prefix}{index}", text=text, data=value, location=location)


@attrs.frozen
class FileSource:
    """Options shared by the file sources (not used on its own).

    Args:
        path: the file to read.
        encoding: its encoding; detected when ``None`` (a byte-order mark wins,
            then UTF-8, then the best legacy guess, such as cp1252 or cp932).
        text_field: copy this field's string value into ``Document.text``.
        error_key: records where this key holds a value other than ``None`` or
            ``""`` are failed scrapes and become ``scrape_error`` rejections;
            ``None`` turns the check off.
        name: the name rejections carry as ``step`` (default: the class name).
    """

    path: Path = attrs.field(converter=Path)
    encoding: str | None = attrs.field(default=None, kw_only=True, validator=check_encoding)
    text_field: str | None = attrs.field(default=None, kw_only=True)
    error_key: str | None = attrs.field(default=DEFAULT_ERROR_KEY, kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)

    def input_files(self) -> Sequence[Path]:
        """Return the file this source reads."""
        return (self.path,)

    def _step(self) -> str:
        return self.name or type(self).__name__

    def _maker(self) -> RecordMaker:
        return RecordMaker(
            path=self.path, step=self._step(), text_field=self.text_field, error_key=self.error_key
        )

    def _check(self) -> Path:
        """Check the file before reading.

        Raises:
            SourceError: the file is missing, a directory, or empty.
        """
        context = ErrorContext(path=str(self.path), source=self._step())
        with error_context(source=self._step()):
            path = check_file(self.path)
        if path.stat().st_size == 0:
            raise SourceError("file is empty (0 bytes); check that it was written fully", context)
        return path

    def _encoding(self, path: Path) -> str:
        """Return the encoding to read with: the one given, else the detected one.

        Raises:
            DecodeError: no encoding fits the file.
        """
        if self.encoding is not None:
            return self.encoding
        with error_context(source=self._step()):
            return detect_encoding(path)


def read_json_lines(
    maker: RecordMaker, lines: Iterable[TextLine], encoding: str
) -> Iterator[Document | Rejection]:
    """Turn the lines of a JSON Lines file into documents and rejections.

    Args:
        maker: builds the records.
        lines: the file's lines, from :func:`~finetune_web._io.iter_text_lines`.
        encoding: the encoding, to show undecodable bytes in rejections.

    Returns:
        An iterator of documents and rejections; blank lines are skipped.

    Raises:
        SourceError: the file holds only blank lines.
    """
    index = 0
    try:
        for line in lines:
            if line.error is not None:
                yield maker.reject(
                    index,
                    line.line,
                    line.error,
                    line.message,
                    record=line_preview(line, encoding),
                    details={"size": line.size},
                )
            elif line.text is None or not line.text or line.text.isspace():
                continue
            else:
                yield _json_line(maker, line.text, line.line, index)
            index += 1
    except DecodeError as exc:
        yield maker.reject(
            index,
            exc.context.line,
            "invalid_encoding",
            f"{exc.message} ({records_read(index)} before it)",
            details={"records_read": index, "rest_of_file": True},
        )
        return
    if index == 0:
        raise SourceError(
            "file is empty (it holds only blank lines); check that it was written fully",
            ErrorContext(path=str(maker.path), source=maker.step),
        )


def _json_line(maker: RecordMaker, text: str, line: int, index: int) -> Document | Rejection:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return maker.reject(
            index,
            line,
            "invalid_json",
            f"invalid JSON at column {exc.colno}: {exc.msg}",
            record=preview(text),
            details={"column": exc.colno},
        )
    except RecursionError:
        return maker.reject(
            index, line, "invalid_json", "JSON nested too deeply to decode", record=preview(text)
        )
    return maker.make(value, line=line, index=index, raw=text)


@attrs.frozen
class JsonlSource(FileSource):
    """Reads a JSON Lines (NDJSON) file: one JSON object per line.

    Blank lines are skipped.  A line that is not valid JSON (``invalid_json``),
    not an object (``data_type``), not decodable (``invalid_encoding``),
    longer than ``max_line_bytes`` (``record_too_large``) or a failed scrape
    (``scrape_error``) becomes a rejection; reading goes on with the next line.

    Args:
        path: the file to read.
        encoding: see :class:`FileSource`.
        text_field: see :class:`FileSource`.
        error_key: see :class:`FileSource`.
        name: see :class:`FileSource`.
        max_line_bytes: longer lines are skipped without being loaded.
    """

    max_line_bytes: int = attrs.field(
        default=DEFAULT_MAX_LINE_BYTES, kw_only=True, validator=check_positive
    )

    def read(self) -> Iterator[Document | Rejection]:
        """Return an iterator over the file's documents and rejections, in file order.

        Raises:
            SourceError: the file is missing, a directory, or empty (raised here,
                or, for a file of blank lines, when the iterator ends).
        """
        return self._read(self._check())

    def _read(self, path: Path) -> Iterator[Document | Rejection]:
        encoding = self._encoding(path)
        lines = iter_text_lines(path, encoding=encoding, max_line_bytes=self.max_line_bytes)
        yield from read_json_lines(self._maker(), lines, encoding)
