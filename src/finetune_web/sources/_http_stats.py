"""Counts of what one ``HttpSource.read()`` did, for the ``on_stats`` callback.

The counts depend on timing and on the cache, so they are reported here and
never put in a document's metadata.
"""

from __future__ import annotations

import threading

import attrs

__all__ = ["FetchStats", "StatsCounter"]


@attrs.frozen(kw_only=True)
class FetchStats:
    """What one read of an :class:`~finetune_web.sources.HttpSource` did.

    Attributes:
        urls: URLs taken from the input.
        documents: documents yielded.
        rejections: rejections yielded.
        requests: HTTP requests sent (retries, redirects and robots.txt included).
        bodies: response bodies downloaded (200 responses read in full).
        not_modified: 304 responses answered from the cache.
        retries: requests sent again after a failure.
        robots_fetched: robots.txt files requested.
        bytes_downloaded: body bytes received (after ``Content-Encoding`` was undone).
    """

    urls: int = 0
    documents: int = 0
    rejections: int = 0
    requests: int = 0
    bodies: int = 0
    not_modified: int = 0
    retries: int = 0
    robots_fetched: int = 0
    bytes_downloaded: int = 0


class StatsCounter:
    """Thread-safe counters behind :class:`FetchStats` (one per read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(attrs.fields_dict(FetchStats), 0)

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (a :class:`FetchStats` field)."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> FetchStats:
        """Return the counts so far."""
        with self._lock:
            return FetchStats(**self._counts)
