"""One HTTP request, sent politely and with retries, read within limits.

Each request takes a turn at its host's politeness gate.  Timeouts,
connection errors (also in the middle of a body), 408, 429 and 5xx are sent
again (tenacity), up to ``max_attempts`` sends; the wait is the server's
``Retry-After`` (capped at ``max_retry_after``) or an exponential back-off,
and it holds back every request to that host, not only this one.  A cached
response with a validator turns the request into a conditional GET, and a
304 answer gives the cached body back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs
import httpx
import tenacity

from finetune_web._retry_after import retry_after_seconds
from finetune_web.sources._http_cache import CacheEntry, PageCache
from finetune_web.sources._http_errors import FetchFailure
from finetune_web.sources._http_hosts import HostGate
from finetune_web.sources._http_page import Reply
from finetune_web.sources._http_stats import StatsCounter

__all__ = ["REDIRECT_STATUSES", "FetchPolicy", "Sender"]

log = logging.getLogger("finetune_web.sources.http")

#: Statuses that redirect (their ``Location`` is followed by the caller).
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
_MAX_BACKOFF = 60.0

#: Checks a response's headers before its body is read; raises FetchFailure.
Accept = Callable[[httpx.Response], None]


@attrs.frozen(kw_only=True)
class FetchPolicy:
    """The limits of one fetch (see :class:`~finetune_web.sources.HttpSource`)."""

    max_bytes: int
    max_redirects: int
    max_attempts: int
    retry_wait: float
    max_retry_after: float
    timeout: float
    max_fetch_seconds: float
    content_types: tuple[str, ...]
    encoding: str | None


def _failure_for(exc: httpx.HTTPError, status: int | None, timeout: float) -> FetchFailure:
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailure(
            "timeout",
            f"no answer within timeout={timeout:g} s ({name}); the server is slow or down",
            status=status,
            retryable=True,
        )
    if isinstance(exc, httpx.DecodingError):
        return FetchFailure(
            "bad_content_encoding",
            f"the body's Content-Encoding could not be undone ({exc})",
            status=status,
        )
    retryable = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
    return FetchFailure(
        "connection_error",
        f"the connection failed ({name}: {exc or 'no detail'})",
        status=status,
        retryable=retryable,
    )


class Sender:
    """Sends single requests for one read (shared by its worker threads).

    Args:
        client: the HTTP client (redirects off).
        policy: limits and retries.
        gate: per-host politeness.
        stats: counters for the ``on_stats`` callback.
        cache: the on-disk cache, if any.
    """

    def __init__(
        self,
        *,
        client: httpx.Client,
        policy: FetchPolicy,
        gate: HostGate,
        stats: StatsCounter,
        cache: PageCache | None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._gate = gate
        self.stats = stats
        self._cache = cache

    def _read_body(
        self, response: httpx.Response, *, limit: int, truncate: bool, deadline: float
    ) -> bytes:
        status = response.status_code
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > limit:
            raise FetchFailure(
                "too_large",
                f"the body is {int(declared):,} bytes (Content-Length), over "
                f"max_bytes={limit:,}; raise max_bytes to fetch it",
                status=status,
                details={"max_bytes": limit, "size": int(declared)},
            )
        parts: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                if truncate:
                    parts.append(chunk[: len(chunk) - (size - limit)])
                    break
                raise FetchFailure(
                    "too_large",
                    f"the body is over max_bytes={limit:,} (reading stopped there); "
                    "raise max_bytes to fetch it",
                    status=status,
                    details={"max_bytes": limit},
                )
            parts.append(chunk)
            if time.monotonic() > deadline:
                raise FetchFailure(
                    "timeout",
                    f"the body took longer than max_fetch_seconds="
                    f"{self._policy.max_fetch_seconds:g} to arrive",
                    status=status,
                )
        self.stats.add("bodies")
        self.stats.add("bytes_downloaded", size)
        return b"".join(parts)

    def _answer(
        self,
        response: httpx.Response,
        url: httpx.URL,
        cached: CacheEntry | None,
        *,
        limit: int,
        truncate: bool,
        accept: Accept | None,
        deadline: float,
    ) -> Reply:
        status = response.status_code
        headers = response.headers
        if status == 304 and cached is not None:
            self.stats.add("not_modified")
            return Reply(
                url=url,
                status=cached.status,
                content_type=cached.content_type,
                etag=cached.etag,
                last_modified=cached.last_modified,
                body=cached.body,
            )
        if status in REDIRECT_STATUSES:
            return Reply(url=url, status=status, location=headers.get("location"))
        if status in (408, 429) or status >= 500:
            raise FetchFailure(
                "http_status",
                f"the server answered {status} {response.reason_phrase}".rstrip(),
                status=status,
                retryable=True,
                retry_after=retry_after_seconds(headers),
            )
        if not 200 <= status < 300:
            raise FetchFailure(
                "http_status",
                f"the server answered {status} {response.reason_phrase}".rstrip(),
                status=status,
            )
        if accept is not None:
            accept(response)
        body = self._read_body(response, limit=limit, truncate=truncate, deadline=deadline)
        reply = Reply(
            url=url,
            status=status,
            content_type=headers.get("content-type"),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            body=body,
        )
        if self._cache is not None and status == 200:
            self._cache.store(
                CacheEntry(
                    url=str(url),
                    status=status,
                    content_type=reply.content_type,
                    etag=reply.etag,
                    last_modified=reply.last_modified,
                    body=body,
                )
            )
        return reply

    def _attempt(
        self,
        url: httpx.URL,
        cached: CacheEntry | None,
        *,
        limit: int,
        truncate: bool,
        accept: Accept | None,
    ) -> Reply:
        headers = cached.conditional_headers() if cached is not None else {}
        status: int | None = None
        with self._gate.turn(url.host.lower()):
            self.stats.add("requests")
            log.debug("GET %s", url)
            deadline = time.monotonic() + self._policy.max_fetch_seconds
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    status = response.status_code
                    return self._answer(
                        response,
                        url,
                        cached,
                        limit=limit,
                        truncate=truncate,
                        accept=accept,
                        deadline=deadline,
                    )
            except httpx.HTTPError as exc:
                raise _failure_for(exc, status, self._policy.timeout) from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        asked = failure.retry_after if isinstance(failure, FetchFailure) else None
        if asked is not None:
            return min(asked, self._policy.max_retry_after)
        return float(min(self._policy.retry_wait * 2 ** (state.attempt_number - 1), _MAX_BACKOFF))

    def send(
        self,
        url: httpx.URL,
        *,
        limit: int,
        truncate: bool,
        accept: Accept | None,
    ) -> Reply:
        """Send one request, with retries; the waits hold back the whole host."""
        host = url.host.lower()
        cached = self._cache.lookup(str(url)) if self._cache is not None else None

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.stats.add("retries")
            failure = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.info(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                url,
                state.attempt_number,
                failure,
                wait,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._policy.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, FetchFailure) and exc.retryable
            ),
            sleep=lambda seconds: self._gate.defer(host, seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        attempts = 0

        def attempt() -> Reply:
            nonlocal attempts
            attempts += 1
            return self._attempt(url, cached, limit=limit, truncate=truncate, accept=accept)

        try:
            return retrying(attempt)
        except FetchFailure as failure:
            if failure.retryable:
                failure.details["attempts"] = attempts
                failure.message += f" (after {attempts} attempt{'s' if attempts > 1 else ''})"
            raise
