"""HttpSource under injected faults: retries, Retry-After, timeouts, broken connections."""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Callable, Iterator
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


def make(
    handler: Callable[[httpx.Request], httpx.Response], urls: list[str], **options: Any
) -> HttpSource:
    """An HttpSource over a mock transport, with no politeness delay and no robots.txt."""
    options.setdefault("min_delay", 0)
    options.setdefault("robots", False)
    options.setdefault("retry_wait", 0)
    return HttpSource(urls=urls, transport=httpx.MockTransport(handler), resolver=public, **options)


def one(source: HttpSource) -> Document | Rejection:
    """Read a one-URL source."""
    (item,) = source.read()
    return item


Answer = httpx.Response | Exception | Callable[[], httpx.Response]


class Sequence:
    """A handler answering with the given responses (or raising the exceptions) in turn;
    the last answer repeats.  A callable answer builds a fresh response each time."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            answer = self.answers[min(self.calls, len(self.answers) - 1)]
            self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else answer()


class BrokenStream(httpx.SyncByteStream):
    """A body that sends a first chunk, then fails like a reset connection."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield b"<html><body><p>first part of the page"
        raise self.error


def test_429_retry_after_is_honoured_through_the_host_gate() -> None:
    """A 429 with Retry-After: 5 makes the next attempt wait 5 s, then the page is fetched."""
    sleeps: list[float] = []
    handler = Sequence(html("slow down", 429, **{"retry-after": "5"}), html())
    item = one(make(handler, [URL], sleep=sleeps.append))
    assert isinstance(item, Document) and item.text == PAGE
    assert handler.calls == 2
    assert max(sleeps) == pytest.approx(5, abs=0.5)


def test_retry_after_is_capped() -> None:
    """A Retry-After of an hour is cut to max_retry_after."""
    sleeps: list[float] = []
    handler = Sequence(html("later", 503, **{"retry-after": "3600"}), html())
    item = one(make(handler, [URL], sleep=sleeps.append, max_retry_after=7))
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


def test_backoff_doubles_without_retry_after() -> None:
    """Without Retry-After the waits are retry_wait, 2x, 4x..."""
    sleeps: list[float] = []
    handler = Sequence(html("", 500), html("", 502), html("", 503), html())
    item = one(make(handler, [URL], sleep=sleeps.append, retry_wait=1.0))
    assert isinstance(item, Document)
    assert [round(s) for s in sleeps] == [1, 2, 4]


@respx.mock(assert_all_called=True)
def test_500_502_503_then_success(respx_mock: respx.MockRouter) -> None:
    """5xx answers are retried (respx side effects) until the page comes."""
    route = respx_mock.get(URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(503), html()]
    )
    source = HttpSource(
        urls=[URL],
        transport=httpx.MockTransport(respx_mock.handler),
        resolver=public,
        robots=False,
        min_delay=0,
        retry_wait=0,
    )
    item = one(source)
    assert isinstance(item, Document) and item.metadata["status"] == 200
    assert route.call_count == 4


def test_exhausted_retries_become_a_rejection() -> None:
    """A server that keeps failing gives an http_status rejection after max_attempts sends."""
    handler = Sequence(httpx.Response(503))
    item = one(make(handler, [URL], max_attempts=3))
    assert isinstance(item, Rejection)
    assert item.reason == "http_status"
    assert item.details["status"] == 503 and item.details["attempts"] == 3
    assert item.details["url"] == URL and item.record_id == URL
    assert handler.calls == 3


def test_404_is_not_retried() -> None:
    """A 404 is a rejection at once, with its status."""
    handler = Sequence(httpx.Response(404))
    item = one(make(handler, [URL]))
    assert isinstance(item, Rejection) and item.reason == "http_status"
    assert item.details["status"] == 404 and handler.calls == 1
    assert "404" in item.message and URL in item.message


def test_timeouts_are_retried_then_rejected() -> None:
    """Timeouts are retried; when they persist the URL is a timeout rejection."""
    request = httpx.Request("GET", URL)
    handler = Sequence(httpx.ReadTimeout("timed out", request=request))
    item = one(make(handler, [URL], max_attempts=2))
    assert isinstance(item, Rejection) and item.reason == "timeout"
    assert item.details["status"] is None and item.details["attempts"] == 2
    assert handler.calls == 2


def test_timeout_then_success() -> None:
    """One timeout, then the page: a document."""
    request = httpx.Request("GET", URL)
    handler = Sequence(httpx.ConnectTimeout("timed out", request=request), html())
    assert isinstance(one(make(handler, [URL])), Document)


def test_connection_refused_is_a_connection_error() -> None:
    """A refused connection, after retries, is a connection_error rejection."""
    request = httpx.Request("GET", URL)
    handler = Sequence(httpx.ConnectError("connection refused", request=request))
    item = one(make(handler, [URL], max_attempts=2))
    assert isinstance(item, Rejection) and item.reason == "connection_error"


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete body"),
    ],
    ids=["read_error", "remote_protocol_error"],
)
def test_connection_reset_mid_body(error: Exception) -> None:
    """A body cut off in the middle is retried; when it keeps failing it is rejected with the
    status the response had, and no partial page is ever yielded."""

    def broken() -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/html"}, stream=BrokenStream(error)
        )

    handler = Sequence(broken)
    item = one(make(handler, [URL], max_attempts=2))
    assert isinstance(item, Rejection) and item.reason == "connection_error"
    assert item.details["status"] == 200 and handler.calls == 2

    again = Sequence(broken, html())
    document = one(make(again, [URL]))
    assert isinstance(document, Document) and document.text == PAGE


def test_stats_count_requests_and_retries() -> None:
    """on_stats gets the counts of a read: requests, retries, bodies, documents."""
    seen: list[FetchStats] = []
    handler = Sequence(httpx.Response(500), html())
    list(make(handler, [URL, "https://example.com/missing#x"], on_stats=seen.append).read())
    (stats,) = seen
    assert stats.urls == 2 and stats.documents == 2 and stats.rejections == 0
    assert stats.requests == 3 and stats.retries == 1 and stats.bodies == 2
