"""Bright Data's Web Scraper API (datasets v3) over HTTP, kept within its rate limits.

One :class:`ScraperApi` serves one ``read()`` of a
:class:`~finetune_web.sources.brightdata.BrightDataSource` and keeps that
read's state (the HTTP 429 answers seen), so the source itself stays
frozen.

Every request goes through :meth:`ScraperApi.send`, which retries 429, 5xx
and connection errors within the limits of
:mod:`~finetune_web.sources._brightdata_limits`.  A request that starts a
paid collection is sent again only when the server cannot have acted on it
(a 429, or a connection that was never opened).

The API token travels in the ``Authorization`` header only and is masked in
every message and log line built here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from finetune_web.errors import ErrorContext, SourceError
from finetune_web.sources._brightdata_limits import (
    BACKOFF,
    BODY_ERRORS,
    MAX_RETRY_AFTER,
    RateGuard,
    retry_after,
)

__all__ = ["ScraperApi", "server_text"]

log = logging.getLogger("finetune_web.sources.brightdata")

_MESSAGE_CHARS = 300
# Failures that happen before a request leaves this machine: safe to retry even for a trigger.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_HTML = frozenset(("text/html", "application/xhtml+xml"))


def server_text(response: httpx.Response) -> str:
    """Return what the server said: the ``error``/``message`` of a JSON body, else its text."""
    try:
        body = response.read()
    except BODY_ERRORS:
        return "(the body could not be read)"
    finally:
        response.close()
    text = body[: _MESSAGE_CHARS * 4].decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            value = response.json()
        except ValueError:
            value = None
        if isinstance(value, dict):
            for key in ("error_message", "error", "message"):
                if isinstance(value.get(key), str) and value[key]:
                    return str(value[key])[:_MESSAGE_CHARS]
    return " ".join(text.split())[:_MESSAGE_CHARS] or "(empty body)"


class ScraperApi:
    """The requests of one read: trigger, progress, snapshot download and parts.

    Args:
        client: the HTTP client (its base URL is the API's).
        token: the API token, masked in every message.
        step: the source's name, for error context.
        poll_interval: seconds between progress checks and after a 202 answer.
        timeout: the longest wait for the collection to be ready, and then for
            each download to be ready (202 answers).
        sleep: how to wait.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        token: str,
        step: str,
        poll_interval: float,
        timeout: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self._token = token
        self.step = step
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.guard = RateGuard(clock)
        #: Appended to errors after which the snapshot can still be downloaded.
        self.resume_hint = ""

    def __repr__(self) -> str:
        return f"ScraperApi(base_url={str(self.client.base_url)!r}, step={self.step!r})"

    # -- plumbing -------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """Return ``text`` with the token masked."""
        return text.replace(self._token, "***") if self._token else text

    def error(self, path: str, message: str, *, resumable: bool = False) -> SourceError:
        """Return a :class:`SourceError` about ``path``, the token masked.

        Args:
            path: the API path the error is about.
            message: what went wrong and what to do.
            resumable: the snapshot can still be downloaded: add how.
        """
        if resumable and self.resume_hint:
            message = f"{message}; {self.resume_hint}"
        url = str(self.client.base_url).rstrip("/") + path
        return SourceError(self.redact(message), ErrorContext(source=self.step, path=url))

    def send(
        self,
        what: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Sequence[Any] | None = None,
        stream: bool = False,
        paid: bool = False,
    ) -> httpx.Response:
        """Send a request, retrying 429, 5xx and connection errors within the API's limits.

        Args:
            what: the action, for messages ("check progress").
            method: ``GET`` or ``POST``.
            path: the API path.
            params: query parameters.
            body: a JSON array to send.
            stream: return before reading the body (the caller closes the response).
            paid: the request starts a paid collection: it is sent again only when
                the server cannot have acted on it.

        Returns:
            The first response that is neither a 429 nor a 5xx.

        Raises:
            SourceError: retrying stopped (see the module docstring).
        """
        request = self.client.build_request(method, path, params=params, json=body)
        failures = 0
        while True:
            try:
                response = self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if paid and not isinstance(exc, _NOT_SENT):
                    raise self._maybe_started(path, what, reason) from exc
                failures = self.back_off(what, path, failures, reason)
                continue
            status = response.status_code
            stop = self.guard.note(status)
            if status == 429 or status >= 500:
                reason = f"HTTP {status}: {server_text(response)}"
                if stop is not None:
                    raise self.error(
                        path,
                        f"{what}: stopped sending requests: Bright Data answered {stop}, and it "
                        "blocks an IP that gets 25 of them within 5 minutes; wait a few "
                        f"minutes before reading again (last answer {reason})",
                        resumable=True,
                    )
                if paid and status >= 500:
                    raise self._maybe_started(path, what, reason)
                failures = self.back_off(what, path, failures, reason, retry_after(response))
                continue
            if stream:
                return response
            try:
                response.read()
            except BODY_ERRORS as exc:
                response.close()
                reason = f"{type(exc).__name__} while reading the answer: {exc}"
                if paid:
                    raise self._maybe_started(path, what, reason) from exc
                failures = self.back_off(what, path, failures, reason)
                continue
            return response

    def back_off(
        self, what: str, path: str, failures: int, reason: str, asked: float | None = None
    ) -> int:
        """Wait before the next attempt of a failed request; return the new failure count.

        Args:
            what: the action, for messages.
            path: the API path.
            failures: how many attempts failed before this one.
            reason: why this one failed.
            asked: the seconds a ``Retry-After`` header asked for.

        Raises:
            SourceError: there were already as many failures as :data:`BACKOFF` has waits.
        """
        if failures >= len(BACKOFF):
            raise self.error(
                path,
                f"{what}: gave up after {failures + 1} attempts; the last failed with {reason}",
                resumable=True,
            )
        wait = BACKOFF[failures]
        if asked is not None and asked > wait:
            wait = min(asked, MAX_RETRY_AFTER)
        log.warning("%s failed (%s); retrying in %g s", what, self.redact(reason), wait)
        self.sleep(wait)
        return failures + 1

    def _maybe_started(self, path: str, what: str, reason: str) -> SourceError:
        return self.error(
            path,
            f"{what}: the request failed after it was sent ({reason}), so Bright Data may have "
            "started (and will charge for) the collection anyway; it is not sent again. Look "
            "for a new snapshot in the control panel (or with GET "
            "/datasets/v3/snapshots?dataset_id=...) and read it with snapshot_id=... before "
            "triggering again",
        )

    def refused(self, what: str, path: str, response: httpx.Response) -> SourceError:
        """Return the error for an answer that is not the one expected."""
        status, text = response.status_code, server_text(response)
        if status in (401, 403):
            advice = (
                "Bright Data refused the API token: check BRIGHTDATA_API_TOKEN (or token=...) "
                "and that the token may use this dataset"
            )
        elif status == 404:
            advice = "not found: check the dataset_id or snapshot_id"
        else:
            advice = "the request was refused"
        return self.error(path, f"{what}: HTTP {status} ({text}); {advice}")

    def json_of(self, what: str, path: str, response: httpx.Response) -> dict[str, Any]:
        """Return the JSON object of a response.

        Raises:
            SourceError: the body is not a JSON object.
        """
        try:
            value = response.json()
        except ValueError:
            value = None
        if not isinstance(value, dict):
            preview = " ".join(response.text[:_MESSAGE_CHARS].split())
            raise self.error(path, f"{what}: the answer is not a JSON object: {preview!r}")
        return value

    def wait(self, what: str, path: str, reason: str, deadline: float) -> None:
        """Sleep one poll interval (less if ``deadline`` is nearer).

        Raises:
            SourceError: the deadline has passed.
        """
        now = self.clock()
        if now >= deadline:
            raise self.error(
                path,
                f"{what}: still not ready after the {self.timeout:g} s timeout ({reason}); "
                "the collection goes on at Bright Data",
                resumable=True,
            )
        self.sleep(min(self.poll_interval, deadline - now))

    # -- endpoints ------------------------------------------------------------------------

    def trigger(self, params: Mapping[str, str], inputs: Sequence[Mapping[str, Any]]) -> str:
        """Start a collection and return its snapshot id (sent once unless surely not acted on).

        Raises:
            SourceError: the collection could not be started, or may have been.
        """
        path, what = "/datasets/v3/trigger", "trigger a collection"
        body = [dict(item) for item in inputs]
        response = self.send(what, "POST", path, params=params, body=body, paid=True)
        if response.status_code != 200:
            raise self.refused(what, path, response)
        snapshot_id = self.json_of(what, path, response).get("snapshot_id")
        if not isinstance(snapshot_id, str) or not snapshot_id:
            raise self._maybe_started(path, what, "the answer holds no snapshot_id")
        return snapshot_id

    def wait_until_ready(self, snapshot_id: str) -> str | None:
        """Poll the collection's progress until it is ready; return its dataset id.

        Raises:
            SourceError: the collection failed, the timeout passed, or the API refused.
        """
        path, what = f"/datasets/v3/progress/{snapshot_id}", f"check snapshot {snapshot_id}"
        deadline = self.clock() + self.timeout
        while True:
            response = self.send(what, "GET", path)
            if response.status_code != 200:
                raise self.refused(what, path, response)
            progress = self.json_of(what, path, response)
            status = progress.get("status")
            dataset_id = progress.get("dataset_id")
            if status == "ready":
                return dataset_id if isinstance(dataset_id, str) else None
            if status == "failed":
                message = progress.get("error_message") or progress.get("error") or "no reason"
                raise self.error(
                    path,
                    f"the collection of snapshot {snapshot_id} failed at Bright Data: {message}; "
                    "check the inputs and options, then trigger it again",
                )
            log.debug("snapshot %s is %s; checking again soon", snapshot_id, status)
            self.wait(what, path, f"status {status!r}", deadline)

    def open_snapshot(self, snapshot_id: str, params: Mapping[str, str]) -> httpx.Response | None:
        """Open the download of a snapshot (or one part), waiting while it is being built.

        Returns:
            The streamed 200 response (the caller closes it), or ``None`` when
            Bright Data says the snapshot is empty.

        Raises:
            SourceError: the snapshot has expired or does not exist, the answer
                is an HTML page, or the timeout passed.
        """
        path, what = f"/datasets/v3/snapshot/{snapshot_id}", f"download snapshot {snapshot_id}"
        deadline = self.clock() + self.timeout
        while True:
            response = self.send(what, "GET", path, params=params, stream=True)
            status = response.status_code
            if status == 200:
                self._check_content_type(what, path, response)
                return response
            text = server_text(response)
            if status == 202:
                log.info("snapshot %s is not ready to download yet (%s)", snapshot_id, text)
                self.wait(what, path, text, deadline)
            elif status == 400 and "empty" in text.lower():
                log.warning("snapshot %s is empty: it holds no records (%s)", snapshot_id, text)
                return None
            elif status == 400 and "expired" in text.lower():
                raise self.error(
                    path,
                    f"{what}: the snapshot has expired ({text}): Bright Data keeps results for "
                    "a limited time; trigger the collection again",
                )
            elif status == 404:
                raise self.error(
                    path,
                    f"{what}: the snapshot does not exist (HTTP 404: {text}); check the "
                    "snapshot_id and that the token belongs to the account that made it",
                )
            else:
                raise self.error(path, f"{what}: HTTP {status} ({text})")

    def part_count(self, snapshot_id: str, params: Mapping[str, str]) -> int:
        """Return how many parts a batched download has (after part 1 was requested).

        Raises:
            SourceError: the answer is not a part count.
        """
        path = f"/datasets/v3/snapshot/{snapshot_id}/parts"
        what = f"count the parts of snapshot {snapshot_id}"
        response = self.send(what, "GET", path, params=params)
        if response.status_code != 200:
            raise self.refused(what, path, response)
        parts = self.json_of(what, path, response).get("parts")
        if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
            raise self.error(path, f"{what}: expected a positive part count, got {parts!r}")
        return parts

    def _check_content_type(self, what: str, path: str, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media not in _HTML:
            return
        head = server_text(response)
        raise self.error(
            path,
            f"{what}: the answer is an HTML page ({media}), not the snapshot's records: a proxy, "
            "firewall or login page may stand between this machine and Bright Data, or base_url "
            f"is not Bright Data's API; the page begins {head[:120]!r}",
        )
