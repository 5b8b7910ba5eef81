"""Why one URL could not be fetched, as raised inside :class:`~finetune_web.sources.HttpSource`.

These exceptions never leave ``HttpSource.read()``: a :class:`FetchFailure`
becomes a :class:`~finetune_web.records.Rejection` with its reason code, and
:class:`Stopped` ends a worker when the reader stops early.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FetchFailure", "Stopped"]


class FetchFailure(Exception):
    """One fetch failed; becomes a rejection.

    Args:
        reason: the rejection's reason code (``http_status``, ``timeout``...).
        message: what happened and what to do, without the URL (added later).
        status: the HTTP status, when there was a response.
        retryable: whether sending the request again may help.
        retry_after: the wait the server asked for, in seconds, if it named one.
        details: extra facts for the rejection's ``details``.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.details = dict(details or {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self.reason,
                self.message,
                self.status,
                self.retryable,
                self.retry_after,
                self.details,
            ),
        )


def _rebuild(
    reason: str,
    message: str,
    status: int | None,
    retryable: bool,
    retry_after: float | None,
    details: dict[str, Any],
) -> FetchFailure:
    return FetchFailure(
        reason,
        message,
        status=status,
        retryable=retryable,
        retry_after=retry_after,
        details=details,
    )


class Stopped(Exception):
    """The reader stopped (closed its iterator): the worker gives up quietly."""
