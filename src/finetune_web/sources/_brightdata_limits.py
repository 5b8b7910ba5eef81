"""How often the Bright Data source may ask again, so that its IP is never blocked.

Bright Data blocks an IP that gets 25 HTTP 429 (too many requests) answers
within 5 minutes.  A request that fails with a 429, a 5xx or a connection
error is sent again after 2, 4, 8, 16 and 32 s (or after ``Retry-After``
when that is longer, up to 5 minutes), and :class:`RateGuard` stops a read
after :data:`MAX_CONSECUTIVE_429` answers 429 in a row or :data:`WINDOW_LIMIT`
within 5 minutes, well before the block.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import httpx

from finetune_web._retry_after import retry_after_seconds

__all__ = [
    "BACKOFF",
    "BLOCK_WINDOW",
    "BODY_ERRORS",
    "MAX_CONSECUTIVE_429",
    "MAX_RETRY_AFTER",
    "WINDOW_LIMIT",
    "RateGuard",
    "retry_after",
]

#: Seconds to wait before each retry of a request (after a 429, a 5xx or a connection error).
BACKOFF: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0)
#: The longest ``Retry-After`` honoured, in seconds.
MAX_RETRY_AFTER = 300.0
#: Bright Data blocks an IP after 25 HTTP 429 answers within this many seconds.
BLOCK_WINDOW = 300.0
#: No request is sent once this many 429 answers came within :data:`BLOCK_WINDOW`.
WINDOW_LIMIT = 20
#: No request is sent after this many 429 answers in a row.
MAX_CONSECUTIVE_429 = 5

#: Errors of a connection or of a body that breaks while it is read: worth another try.
BODY_ERRORS = (httpx.TransportError, httpx.DecodingError)


class RateGuard:
    """Counts HTTP 429 answers: in a row, and within the last :data:`BLOCK_WINDOW` seconds.

    Args:
        clock: monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.in_a_row = 0
        self.recent: collections.deque[float] = collections.deque()

    def note(self, status: int) -> str | None:
        """Record one answer's status; return why no more request may be sent, else ``None``."""
        if status != 429:
            self.in_a_row = 0
            return None
        now = self.clock()
        self.in_a_row += 1
        self.recent.append(now)
        while now - self.recent[0] >= BLOCK_WINDOW:
            self.recent.popleft()
        if self.in_a_row >= MAX_CONSECUTIVE_429:
            return f"HTTP 429 (too many requests) {self.in_a_row} times in a row"
        if len(self.recent) >= WINDOW_LIMIT:
            return f"HTTP 429 (too many requests) {len(self.recent)} times within 5 minutes"
        return None


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (a number or an HTTP date), if any."""
    return retry_after_seconds(response.headers, now)
