"""Saved web pages: ``.html``, ``.htm`` and gzipped ``.html.gz`` files, one document each.

:class:`HtmlFileSource` reads pages saved to disk (a crawl's output, a
benchmark's pages) the way :class:`~finetune_web.sources.HttpSource` reads
pages from the web: same decoding (byte-order mark, ``<meta charset>``,
detection), same document shape, same rejection reasons.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import attrs

from finetune_web.errors import ConfigError, ErrorContext, SourceError
from finetune_web.records import Document, Location, Rejection
from finetune_web.sources._http_errors import FetchFailure
from finetune_web.sources._http_page import decode_page
from finetune_web.sources.files import check_encoding, check_positive

__all__ = ["DEFAULT_HTML_SUFFIXES", "HtmlFileSource"]

#: File names read from a folder (matched case-insensitively).
DEFAULT_HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".html.gz", ".htm.gz", ".xhtml.gz")


def _paths(value: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    if isinstance(value, str | os.PathLike):
        return (Path(value),)
    paths = tuple(Path(item) for item in value)
    if not paths:
        raise ConfigError("paths is empty; name a folder or at least one HTML file")
    return paths


def _suffixes(value: Iterable[str] | str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or not all(isinstance(item, str) and item.startswith(".") for item in items):
        raise ConfigError(f"suffixes must be file endings such as '.html'; got {items!r}")
    return tuple(item.lower() for item in items)


@attrs.frozen
class HtmlFileSource:
    """Reads saved HTML pages from folders and files, one document per file.

    Each file becomes a :class:`~finetune_web.records.Document` whose ``id``
    is its path relative to ``root`` (with ``/`` separators), whose ``text``
    is the decoded page, and whose ``metadata`` holds ``url`` and
    ``final_url`` (the file's ``file://`` URI), ``status`` (always 200),
    ``content_type`` (``text/html``) and ``charset``; or a
    :class:`~finetune_web.records.Rejection` (``empty_body``,
    ``binary_content``, ``too_large``, ``invalid_gzip``, ``read_error``,
    ``duplicate_file``).  Folders are read in sorted order, one file at a time.

    Args:
        paths: a folder, an HTML file, or a list of them.
        root: ids are paths relative to this folder; by default the folder
            given, or the deepest folder holding every path given.
        recursive: read sub-folders too.
        suffixes: the file endings read from folders (files named directly
            are read whatever their ending; ``.gz`` files are decompressed).
        encoding: decode every file with this codec instead of detecting.
        max_bytes: larger (decompressed) files are rejected as ``too_large``.
        name: the ``step`` that rejections carry.
    """

    paths: tuple[Path, ...] = attrs.field(converter=_paths)
    root: Path | None = attrs.field(
        default=None, kw_only=True, converter=attrs.converters.optional(Path)
    )
    recursive: bool = attrs.field(default=True, kw_only=True)
    suffixes: tuple[str, ...] = attrs.field(
        default=DEFAULT_HTML_SUFFIXES, kw_only=True, converter=_suffixes
    )
    encoding: str | None = attrs.field(default=None, kw_only=True, validator=check_encoding)
    max_bytes: int = attrs.field(default=64 * 1024 * 1024, kw_only=True, validator=check_positive)
    name: str | None = attrs.field(default=None, kw_only=True)

    def _step(self) -> str:
        return self.name or type(self).__name__

    def _check(self) -> Path:
        """Check that every path exists and return the root of the ids.

        Raises:
            SourceError: a path does not exist.
        """
        for path in self.paths:
            if not path.exists():
                raise SourceError(
                    f"no such file or folder (resolved to {path.absolute()}); check the path "
                    "and the current working directory",
                    ErrorContext(path=str(path), source=self._step()),
                )
        if self.root is not None:
            return self.root
        folders = [path if path.is_dir() else path.parent for path in self.paths]
        return Path(os.path.commonpath([str(folder.absolute()) for folder in folders]))

    def _wanted(self, name: str) -> bool:
        return name.lower().endswith(self.suffixes)

    def _walk(self, folder: Path) -> Iterator[Path]:
        for current, folders, files in os.walk(folder):
            folders.sort()
            if not self.recursive:
                folders.clear()
            for name in sorted(files):
                if self._wanted(name):
                    yield Path(current) / name

    def _files(self) -> Iterator[Path]:
        for path in self.paths:
            if path.is_dir():
                yield from self._walk(path)
            else:
                yield path

    def input_files(self) -> Sequence[Path]:
        """Return the files this source reads, in reading order."""
        return list(self._files())

    def read(self) -> Iterator[Document | Rejection]:
        """Return an iterator over one document or rejection per file, in order.

        Raises:
            SourceError: a path does not exist (raised here), or no HTML file
                was found (raised when the iterator ends).
        """
        return self._read(self._check())

    def _load(self, path: Path) -> bytes:
        try:
            if path.name.lower().endswith(".gz"):
                with gzip.open(path, "rb") as handle:
                    body = handle.read(self.max_bytes + 1)
            else:
                with path.open("rb") as handle:
                    body = handle.read(self.max_bytes + 1)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise FetchFailure(
                "invalid_gzip", f"the file is not valid gzip data ({exc}); re-save or unzip it"
            ) from None
        except OSError as exc:
            raise FetchFailure("read_error", f"cannot read the file: {exc.strerror}") from None
        if len(body) > self.max_bytes:
            raise FetchFailure(
                "too_large",
                f"the file is over max_bytes={self.max_bytes:,} (decompressed); "
                "raise max_bytes to read it",
                details={"max_bytes": self.max_bytes},
            )
        return body

    def _record(self, path: Path, record_id: str, index: int) -> Document | Rejection:
        location = Location(origin=str(path), index=index)
        try:
            body = self._load(path)
            decoded, mime = decode_page(
                body, content_type="text/html", status=None, encoding=self.encoding
            )
        except FetchFailure as failure:
            return Rejection(
                record_id=record_id,
                step=self._step(),
                reason=failure.reason,
                message=f"{path}: {failure.message}",
                location=location,
                record=str(path),
                details={"path": str(path), **failure.details},
            )
        uri = path.absolute().as_uri()
        metadata = {
            "url": uri,
            "final_url": uri,
            "status": 200,
            "content_type": mime,
            "charset": decoded.charset,
        }
        return Document(id=record_id, text=decoded.text, metadata=metadata, location=location)

    def _read(self, root: Path) -> Iterator[Document | Rejection]:
        seen: dict[str, int] = {}
        index = -1
        for index, path in enumerate(self._files()):
            record_id = Path(os.path.relpath(path.absolute(), root.absolute())).as_posix()
            first = seen.setdefault(record_id, index)
            if first != index:
                yield Rejection(
                    record_id=record_id,
                    step=self._step(),
                    reason="duplicate_file",
                    message=f"{path}: the same file is already at position {first}",
                    location=Location(origin=str(path), index=index),
                    record=str(path),
                    details={"path": str(path), "duplicate_of": first},
                )
                continue
            yield self._record(path, record_id, index)
        if index < 0:
            raise SourceError(
                f"no HTML files ({', '.join(self.suffixes)}) found; check the folder",
                ErrorContext(path=", ".join(str(p) for p in self.paths), source=self._step()),
            )
