"""CSV files: one record per row, keyed by the header.

The file is decoded line by line, so a line with bad bytes costs only the row
it belongs to; :mod:`csv` then splits the lines into rows, quoted fields
spanning several lines included.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web._io import DEFAULT_MAX_LINE_BYTES, TextLine, iter_text_lines
from finetune_web.errors import ConfigError, DecodeError, ErrorContext, SourceError
from finetune_web.records import Document, Rejection
from finetune_web.sources.files import (
    RAW_PREVIEW_CHARS,
    FileSource,
    RecordMaker,
    check_positive,
    line_preview,
    preview,
    records_read,
)

__all__ = ["CsvSource"]


def _one_char(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if len(value) != 1:
        raise ConfigError(f"{attribute.name} must be one character, not {value!r}")


def _not_empty(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ConfigError(f"{attribute.name} must not be empty")


def _optional_tuple(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


class _Feed:
    """The lines of a file as csv.reader wants them, remembering what a rejection needs.

    An unreadable line is fed as an empty line, which keeps csv's line count
    right; the row that holds it is then rejected with the line's error.
    """

    def __init__(self, lines: Iterable[TextLine], encoding: str) -> None:
        self.lines = lines
        self.encoding = encoding
        self.bad: dict[int, TextLine] = {}  # unreadable lines not yet given to a row
        self.held: list[str] = []  # the start of the current row's text
        self.held_chars = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            if line.error is not None:
                self.bad[line.line] = line
                self._hold(line_preview(line, self.encoding) or "")
                yield "\n"
            else:
                self._hold(line.text or "")
                yield f"{line.text}\n"

    def _hold(self, text: str) -> None:
        if self.held_chars <= RAW_PREVIEW_CHARS:
            piece = text[:RAW_PREVIEW_CHARS]
            self.held.append(piece)
            self.held_chars += len(piece) + 1

    def take_row(self, last_line: int) -> tuple[list[TextLine], str | None]:
        """Return the unreadable lines up to ``last_line`` and the row's text, and forget them."""
        problems = [self.bad.pop(number) for number in sorted(self.bad) if number <= last_line]
        raw = preview("\n".join(self.held))
        self.held, self.held_chars = [], 0
        return problems, raw


@attrs.frozen
class CsvSource(FileSource):
    """Reads a CSV file: each row becomes a document whose ``data`` maps column to value.

    The first non-blank row is the header, unless ``fieldnames`` is given.
    Values are strings; an empty cell is ``""``.  Blank lines are skipped.
    A row with more cells than the header is rejected as ``extra_fields``, one
    with fewer as ``missing_fields``; a row with a line that cannot be decoded
    (``invalid_encoding``) or is too long (``record_too_large``), a row
    :mod:`csv` cannot parse (``invalid_csv``) and a failed scrape (a non-empty
    ``error_code`` cell, ``scrape_error``) are rejected too.  A document's
    line is the line where its row starts.

    Args:
        path: the file to read.
        encoding: see :class:`~finetune_web.sources.files.FileSource`.
        text_field: see :class:`~finetune_web.sources.files.FileSource`.
        error_key: see :class:`~finetune_web.sources.files.FileSource`.
        name: see :class:`~finetune_web.sources.files.FileSource`.
        delimiter: the character between cells (``","``; ``"\\t"`` for TSV).
        quotechar: the character that quotes a cell.
        fieldnames: the column names, for a file without a header row.
        list_fields: columns whose cells hold lists: split on ``list_separator``,
            each item stripped of surrounding spaces; an empty cell gives ``[]``.
        list_separator: the separator for ``list_fields``.
        max_line_bytes: longer lines are skipped without being loaded and their
            row is rejected.

    Raises:
        ConfigError: an option is invalid (a delimiter of two characters...).
    """

    delimiter: str = attrs.field(default=",", kw_only=True, validator=_one_char)
    quotechar: str = attrs.field(default='"', kw_only=True, validator=_one_char)
    fieldnames: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, converter=_optional_tuple
    )
    list_fields: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=tuple)
    list_separator: str = attrs.field(default=";", kw_only=True, validator=_not_empty)
    max_line_bytes: int = attrs.field(
        default=DEFAULT_MAX_LINE_BYTES, kw_only=True, validator=check_positive
    )

    def read(self) -> Iterator[Document | Rejection]:
        """Return an iterator over the file's documents and rejections, in file order.

        Raises:
            SourceError: the file is missing, a directory or empty, or its header
                is unusable (raised here, or on the first ``next()``).
        """
        if self.fieldnames is not None:
            self._check_header(list(self.fieldnames), None)
        return self._read(self._check())

    def _read(self, path: Path) -> Iterator[Document | Rejection]:
        encoding = self._encoding(path)
        maker = self._maker()
        lines = iter_text_lines(path, encoding=encoding, max_line_bytes=self.max_line_bytes)
        feed = _Feed(lines, encoding)
        rows = csv.reader(feed, delimiter=self.delimiter, quotechar=self.quotechar)
        header = list(self.fieldnames) if self.fieldnames is not None else None
        done = index = 0  # lines consumed by earlier rows; records seen
        error: csv.Error | None = None
        while True:
            try:
                row: list[str] | None = next(rows)
            except StopIteration:
                break
            except csv.Error as exc:
                row, error = None, exc
            except DecodeError as exc:
                yield maker.reject(
                    index,
                    exc.context.line,
                    "invalid_encoding",
                    f"{exc.message} ({records_read(index)} before it)",
                    details={"records_read": index, "rest_of_file": True},
                )
                return
            first, done = done + 1, rows.line_num
            problems, raw = feed.take_row(done)
            if not problems and row == []:
                continue  # a blank line
            if header is None:
                if problems or row is None:
                    why = problems[0].message if problems else str(error)
                    raise SourceError(
                        f"the header row cannot be read: {why}",
                        ErrorContext(path=str(path), line=first, source=maker.step),
                    )
                self._check_header(row, first)
                header = row
                continue
            if problems:
                worst = problems[0]
                span = f"line {worst.line} of the row starting at line {first}: "
                yield maker.reject(
                    index,
                    first,
                    worst.error or "invalid_encoding",
                    (span if worst.line != first else "") + worst.message,
                    record=raw,
                )
            elif row is None:
                yield maker.reject(
                    index,
                    first,
                    "invalid_csv",
                    f"{error} (lines {first}-{done}); for a field-size limit, raise it with "
                    "csv.field_size_limit(...)",
                    record=raw,
                )
            else:
                yield self._record(maker, header, row, first, done, index, raw)
            index += 1
        if header is None or (self.fieldnames is not None and index == 0):
            raise SourceError(
                "file is empty (it holds only blank lines); check that it was written fully",
                ErrorContext(path=str(path), source=maker.step),
            )

    def _check_header(self, header: list[str], line: int | None) -> None:
        context = ErrorContext(path=str(self.path), line=line, source=self._step())
        seen: set[str] = set()
        for column in header:
            if column in seen:
                raise SourceError(
                    f"column {column!r} appears twice in the header; rename one "
                    "(or pass fieldnames=...)",
                    context,
                )
            seen.add(column)
        wanted = [*self.list_fields, *([self.text_field] if self.text_field else [])]
        missing = [column for column in wanted if column not in seen]
        if missing:
            raise SourceError(
                f"column(s) {', '.join(map(repr, missing))} named in the options are not in "
                f"the header {header!r}",
                context,
            )

    def _record(
        self,
        maker: RecordMaker,
        header: list[str],
        row: list[str],
        first: int,
        last: int,
        index: int,
        raw: str | None,
    ) -> Document | Rejection:
        lines = f"line {first}" if first == last else f"lines {first}-{last}"
        if len(row) != len(header):
            more = len(row) > len(header)
            return maker.reject(
                index,
                first,
                "extra_fields" if more else "missing_fields",
                f"row has {len(row)} cells but the header has {len(header)} columns ({lines}); "
                + ("check the delimiter and quoting" if more else "a cell may be missing"),
                record=raw,
                details={"cells": len(row), "columns": len(header)},
            )
        data: dict[str, Any] = dict(zip(header, row, strict=True))
        for column in self.list_fields:
            cell = data[column]
            parts = cell.split(self.list_separator) if cell else []
            data[column] = [part.strip() for part in parts]
        return maker.make(data, line=first, index=index, raw=raw)
