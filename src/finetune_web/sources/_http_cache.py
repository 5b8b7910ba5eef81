"""An on-disk cache of fetched bodies and their validators, for conditional GETs.

One file per URL, named by the SHA-256 of the URL: a first line of JSON
(the URL, status, headers kept, ``ETag`` and ``Last-Modified``) then the body
bytes.  Files are written to a temporary name and renamed, so a reader sees
a whole entry or none, even with several threads or processes writing.  Only
responses with a validator are stored: without one the server cannot answer
``304 Not Modified``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from finetune_web.errors import ErrorContext, SourceError

__all__ = ["CacheEntry", "PageCache"]

_FORMAT = 1


@attrs.frozen(kw_only=True)
class CacheEntry:
    """A stored response.

    Attributes:
        url: the URL requested.
        status: its status (200).
        content_type: the ``Content-Type`` header, as sent.
        etag: the ``ETag`` header, if any.
        last_modified: the ``Last-Modified`` header, if any.
        body: the body (after ``Content-Encoding`` was undone).
    """

    url: str
    status: int
    content_type: str | None
    etag: str | None
    last_modified: str | None
    body: bytes = attrs.field(repr=False)

    def conditional_headers(self) -> dict[str, str]:
        """Return the ``If-None-Match`` / ``If-Modified-Since`` headers to revalidate it."""
        headers: dict[str, str] = {}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@attrs.frozen
class PageCache:
    """The cache folder.

    Args:
        root: the folder; created on first use.
    """

    root: Path = attrs.field(converter=Path)

    def prepare(self) -> None:
        """Create the folder.

        Raises:
            SourceError: it cannot be created.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(
                f"cannot create the cache folder: {exc.strerror}; pass a writable cache_dir",
                ErrorContext(path=str(self.root)),
            ) from exc

    def _path(self, url: str) -> Path:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.root / key[:2] / f"{key}.page"

    def lookup(self, url: str) -> CacheEntry | None:
        """Return the stored response for ``url``, or ``None`` (absent or unreadable)."""
        try:
            with self._path(url).open("rb") as handle:
                head = json.loads(handle.readline())
                body = handle.read()
        except (OSError, ValueError):
            return None
        if not isinstance(head, dict) or head.get("format") != _FORMAT or head.get("url") != url:
            return None
        if head.get("size") != len(body):
            return None
        return CacheEntry(
            url=url,
            status=int(head["status"]),
            content_type=head.get("content_type"),
            etag=head.get("etag"),
            last_modified=head.get("last_modified"),
            body=body,
        )

    def store(self, entry: CacheEntry) -> None:
        """Store a response that has a validator (others are ignored).

        Raises:
            SourceError: the cache folder cannot be written.
        """
        if entry.etag is None and entry.last_modified is None:
            return
        head: dict[str, Any] = {
            "format": _FORMAT,
            "url": entry.url,
            "status": entry.status,
            "content_type": entry.content_type,
            "etag": entry.etag,
            "last_modified": entry.last_modified,
            "size": len(entry.body),
        }
        path = self._path(entry.url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(json.dumps(head, ensure_ascii=True).encode("ascii") + b"\n")
                    out.write(entry.body)
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise SourceError(
                f"cannot write to the cache folder: {exc.strerror}; pass a writable cache_dir",
                ErrorContext(path=str(path)),
            ) from exc
