"""Read the wait a server asks for in ``Retry-After`` (or ``retry-after-ms``) headers."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

__all__ = ["retry_after_seconds"]


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Return the seconds the headers ask a client to wait before retrying, if they say.

    ``retry-after-ms`` (milliseconds, sent by OpenAI) wins over ``retry-after``,
    which may be a number of seconds or an HTTP date.  Header names are looked
    up in lower case, as ``httpx.Headers`` stores them.

    Args:
        headers: the response's headers.
        now: the current Unix time, for an HTTP-date value (default: the clock).

    Returns:
        The wait in seconds (never negative), or ``None`` when no header
        gives a usable value.
    """
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if divisor != 1.0:
                continue
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            seconds = parsed.timestamp() - (time.time() if now is None else now)
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None
