"""HttpSource under faults injected with respx: retries, Retry-After, timeouts, broken connections.

Each route's ``side_effect`` lists the answers in the order they are given: a response, an
exception (raised as the transport would), or a callable building a fresh response.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from finetune_web._retry_after import retry_after_seconds
from finetune_web.records import Document, Rejection
from finetune_web.sources.http import FetchStats, HttpSource

PAGE = "<html><head><title>T</title></head><body><p>Hello</p></body></html>"
URL = "https://example.com/page"


def public(host: str, port: int) -> list[str]:
    """Resolve every name to a public address (no DNS in tests)."""
    return ["93.184.215.14"]


def html(text: str = PAGE, status: int = 200, **headers: str) -> httpx.Response:
    """An HTML response."""
    return httpx.Response(status, headers={"content-type": "text/html", **headers}, text=text)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """respx answering every request while the test runs; an unrouted request fails the test."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def make(urls: list[str], **options: Any) -> HttpSource:
    """An HttpSource (no transport: respx answers), no politeness delay and no robots.txt."""
    options.setdefault("min_delay", 0)
    options.setdefault("robots", False)
    options.setdefault("retry_wait", 0)
    return HttpSource(urls=urls, resolver=public, **options)


def one(source: HttpSource) -> Document | Rejection:
    """Read a one-URL source."""
    (item,) = source.read()
    return item


class BrokenStream(httpx.SyncByteStream):
    """A body that sends a first chunk, then fails like a reset connection."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield b"<html><body><p>first part of the page"
        raise self.error


def test_429_retry_after_is_honoured_through_the_host_gate(router: respx.MockRouter) -> None:
    """A 429 with Retry-After: 5 makes the next attempt wait 5 s, then the page is fetched."""
    sleeps: list[float] = []
    route = router.get(URL).mock(
        side_effect=[html("slow down", 429, **{"retry-after": "5"}), html()]
    )
    item = one(make([URL], sleep=sleeps.append))
    assert isinstance(item, Document) and item.text == PAGE
    assert route.call_count == 2
    assert max(sleeps) == pytest.approx(5, abs=0.5)


def test_retry_after_is_capped(router: respx.MockRouter) -> None:
    """A Retry-After of an hour is cut to max_retry_after."""
    sleeps: list[float] = []
    router.get(URL).mock(side_effect=[html("later", 503, **{"retry-after": "3600"}), html()])
    item = one(make([URL], sleep=sleeps.append, max_retry_after=7))
    assert isinstance(item, Document)
    assert max(sleeps) == pytest.approx(7, abs=0.5)
    assert all(s <= 7 for s in sleeps)


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date gives the seconds until then; junk gives None."""
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": date}), now=now) == 30
    assert retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after_seconds(httpx.Headers({"retry-after": "-4"})) == 0
    assert retry_after_seconds(httpx.Headers()) is None


def test_backoff_doubles_without_retry_after(router: respx.MockRouter) -> None:
    """Without Retry-After the waits are retry_wait, 2x, 4x..."""
    sleeps: list[float] = []
    router.get(URL).mock(side_effect=[html("", 500), html("", 502), html("", 503), html()])
    item = one(make([URL], sleep=sleeps.append, retry_wait=1.0))
    assert isinstance(item, Document)
    assert [round(s) for s in sleeps] == [1, 2, 4]


@respx.mock(assert_all_called=True)
def test_500_502_503_then_success(respx_mock: respx.MockRouter) -> None:
    """5xx answers are retried (respx side effects) until the page comes."""
    route = respx_mock.get(URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(503), html()]
    )
    source = HttpSource(urls=[URL], resolver=public, robots=False, min_delay=0, retry_wait=0)
    item = one(source)
    assert isinstance(item, Document) and item.metadata["status"] == 200
    assert route.call_count == 4


def test_exhausted_retries_become_a_rejection(router: respx.MockRouter) -> None:
    """A server that keeps failing gives an http_status rejection after max_attempts sends."""
    route = router.get(URL).mock(side_effect=[httpx.Response(503)] * 3)
    item = one(make([URL], max_attempts=3))
    assert isinstance(item, Rejection)
    assert item.reason == "http_status"
    assert item.details["status"] == 503 and item.details["attempts"] == 3
    assert item.details["url"] == URL and item.record_id == URL
    assert route.call_count == 3


def test_404_is_not_retried(router: respx.MockRouter) -> None:
    """A 404 is a rejection at once, with its status."""
    route = router.get(URL).respond(404)
    item = one(make([URL]))
    assert isinstance(item, Rejection) and item.reason == "http_status"
    assert item.details["status"] == 404 and route.call_count == 1
    assert "404" in item.message and URL in item.message


def test_timeouts_are_retried_then_rejected(router: respx.MockRouter) -> None:
    """Timeouts are retried; when they persist the URL is a timeout rejection."""
    route = router.get(URL).mock(side_effect=httpx.ReadTimeout)
    item = one(make([URL], max_attempts=2))
    assert isinstance(item, Rejection) and item.reason == "timeout"
    assert item.details["status"] is None and item.details["attempts"] == 2
    assert route.call_count == 2


def test_timeout_then_success(router: respx.MockRouter) -> None:
    """One timeout, then the page: a document."""
    router.get(URL).mock(side_effect=[httpx.ConnectTimeout, html()])
    assert isinstance(one(make([URL])), Document)


def test_connection_refused_is_a_connection_error(router: respx.MockRouter) -> None:
    """A refused connection, after retries, is a connection_error rejection."""
    router.get(URL).mock(side_effect=httpx.ConnectError)
    item = one(make([URL], max_attempts=2))
    assert isinstance(item, Rejection) and item.reason == "connection_error"


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete body"),
    ],
    ids=["read_error", "remote_protocol_error"],
)
def test_connection_reset_mid_body(router: respx.MockRouter, error: Exception) -> None:
    """A body cut off in the middle is retried; when it keeps failing it is rejected with the
    status the response had, and no partial page is ever yielded."""

    def broken() -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/html"}, stream=BrokenStream(error)
        )

    route = router.get(URL).mock(side_effect=[broken(), broken()])
    item = one(make([URL], max_attempts=2))
    assert isinstance(item, Rejection) and item.reason == "connection_error"
    assert item.details["status"] == 200 and route.call_count == 2

    route.mock(side_effect=[broken(), html()])
    document = one(make([URL]))
    assert isinstance(document, Document) and document.text == PAGE


def test_stats_count_requests_and_retries(router: respx.MockRouter) -> None:
    """on_stats gets the counts of a read: requests, retries, bodies, documents."""
    seen: list[FetchStats] = []
    router.get(host="example.com").mock(side_effect=[httpx.Response(500), html(), html()])
    list(make([URL, "https://example.com/missing#x"], on_stats=seen.append).read())
    (stats,) = seen
    assert stats.urls == 2 and stats.documents == 2 and stats.rejections == 0
    assert stats.requests == 3 and stats.retries == 1 and stats.bodies == 2
