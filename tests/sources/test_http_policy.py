"""HttpSource's rules: redirects, robots.txt, the address guard, politeness, order, cache.

The sites are respx routes (one per path); the sources hold no transport.
"""

from __future__ import annotations

import ipaddress
import itertools
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Rejection
from finetune_web.sources._http_errors import FetchFailure, Stopped
from finetune_web.sources._http_guard import AddressGuard, is_blocked
from finetune_web.sources._http_hosts import HostGate
from finetune_web.sources.http import FetchStats, HttpSource

PAGE = "<html><body><p>page</p></body></html>"


def public(host: str, port: int) -> list[str]:
    """Resolve every name to a public address (no DNS in tests)."""
    return ["93.184.215.14"]


Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """respx answering every request while the test runs."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock


class Site:
    """A mock site on a respx router: a route per given path, PAGE for any other path.

    The router keeps every request in the order it was answered.
    """

    def __init__(self, router: respx.MockRouter, routes: dict[str, Answer]) -> None:
        self.router = router
        for path, answer in routes.items():
            router.route(path=path).mock(side_effect=answer)
        router.route().respond(200, headers={"content-type": "text/html"}, text=PAGE)

    @property
    def requests(self) -> list[httpx.Request]:
        """The requests answered, in order."""
        return [call.request for call in self.router.calls]

    def paths(self) -> list[str]:
        """The paths requested, in order."""
        return [r.url.path for r in self.requests]


def redirect(location: str, status: int = 301) -> Answer:
    """A route redirecting to ``location``."""
    return lambda request: httpx.Response(status, headers={"location": location})


def text(body: str, status: int = 200) -> Answer:
    """A route answering a text body."""
    return lambda request: httpx.Response(status, text=body)


def make(urls: Any, **options: Any) -> HttpSource:
    """An HttpSource (no transport: respx answers), without politeness delays."""
    options.setdefault("min_delay", 0)
    options.setdefault("retry_wait", 0)
    return HttpSource(urls=urls, resolver=public, **options)


# -- redirects -------------------------------------------------------------------------


def test_redirects_are_followed_and_final_url_kept(router: respx.MockRouter) -> None:
    """Relative and absolute redirects are followed; the id stays the URL given."""
    Site(router, {"/a": redirect("/b"), "/b": redirect("https://www.example.com/c", 308)})
    (item,) = make(["https://example.com/a#top"], robots=False).read()
    assert isinstance(item, Document)
    assert item.id == "https://example.com/a"
    assert item.metadata["final_url"] == "https://www.example.com/c"


def test_redirect_loop_is_too_many_redirects(router: respx.MockRouter) -> None:
    """A loop is found at once (not after max_redirects hops)."""
    site = Site(router, {"/a": redirect("/b"), "/b": redirect("/a")})
    (item,) = make(["https://example.com/a"], robots=False).read()
    assert isinstance(item, Rejection) and item.reason == "too_many_redirects"
    assert item.details["loop"] is True and item.details["status"] == 301
    assert site.paths() == ["/a", "/b"]


def test_redirect_chain_over_limit(router: respx.MockRouter) -> None:
    """More hops than max_redirects is too_many_redirects."""
    site = Site(router, {f"/{n}": redirect(f"/{n + 1}", 302) for n in range(10)})
    (item,) = make(["https://example.com/0"], robots=False, max_redirects=3).read()
    assert isinstance(item, Rejection) and item.reason == "too_many_redirects"
    assert item.details["loop"] is False and len(site.requests) == 4


def test_redirect_without_location_or_to_other_scheme(router: respx.MockRouter) -> None:
    """A redirect without Location is http_status; one to ftp:// is bad_url."""
    Site(router, {"/a": lambda r: httpx.Response(302), "/b": redirect("ftp://example.com/x")})
    items = list(make(["https://example.com/a", "https://example.com/b"], robots=False).read())
    assert [i.reason for i in items if isinstance(i, Rejection)] == ["http_status", "bad_url"]


def test_redirect_to_private_address_is_blocked(router: respx.MockRouter) -> None:
    """Every hop passes the guard: a redirect to 127.0.0.1 or metadata is refused."""
    site = Site(
        router,
        {"/a": redirect("http://127.0.0.1/admin"), "/b": redirect("http://169.254.169.254/")},
    )
    items = list(make(["https://example.com/a", "https://example.com/b"], robots=False).read())
    assert [i.reason for i in items if isinstance(i, Rejection)] == ["blocked_address"] * 2
    assert {r.url.host for r in site.requests} == {"example.com"}


# -- robots.txt ------------------------------------------------------------------------


def test_robots_fetched_once_per_site_and_user_agent_rules(router: respx.MockRouter) -> None:
    """robots.txt is fetched once per site per read; the agent's own group applies."""
    robots = "User-agent: mybot\nDisallow: /secret\n\nUser-agent: *\nDisallow: /\n"
    site = Site(router, {"/robots.txt": text(robots)})
    urls = [f"https://example.com/p{n}" for n in range(6)] + ["https://example.com/secret/1"]
    agent = "mybot/1.0 (+mailto:crawler@example.org)"
    items = list(make(urls, user_agent=agent, concurrency=4, max_per_host=4).read())
    *pages, secret = items
    assert all(isinstance(i, Document) for i in pages) and len(pages) == 6
    assert isinstance(secret, Rejection) and secret.reason == "robots_disallowed"
    assert secret.details["robots_status"] == 200
    assert Counter(site.paths())["/robots.txt"] == 1
    assert "/secret/1" not in site.paths()
    assert {r.headers["user-agent"] for r in site.requests} == {agent}

    other = list(make(urls[:1], user_agent="otherbot").read())
    assert isinstance(other[0], Rejection) and other[0].reason == "robots_disallowed"


def test_robots_4xx_allows_all_and_5xx_disallows_all() -> None:
    """A 404 robots.txt means no rules; a 503 (after retries) means crawl nothing.

    The two sites are the same host, so each gets its own respx router.
    """
    with respx.mock(assert_all_called=False) as router:
        Site(router, {"/robots.txt": text("gone", 404)})
        (item,) = make(["https://example.com/x"]).read()
    assert isinstance(item, Document)

    with respx.mock(assert_all_called=False) as router:
        down = Site(router, {"/robots.txt": text("down", 503)})
        (item,) = make(["https://example.com/x"], max_attempts=2).read()
        assert down.paths() == ["/robots.txt", "/robots.txt"]  # calls are cleared on exit
    assert isinstance(item, Rejection) and item.reason == "robots_disallowed"
    assert item.details["robots_status"] == 503


def test_robots_crawl_delay_sets_host_delay_and_too_long_is_rejected(
    router: respx.MockRouter,
) -> None:
    """Crawl-delay spaces the requests; a delay over max_crawl_delay rejects the site."""
    sleeps: list[float] = []
    Site(router, {"/robots.txt": text("User-agent: *\nCrawl-delay: 3\n")})
    urls = [f"https://example.com/{n}" for n in range(4)]
    items = list(make(urls, sleep=sleeps.append, max_per_host=1).read())
    assert all(isinstance(i, Document) for i in items)
    assert len([s for s in sleeps if s > 2]) == 3

    (item,) = make(urls[:1], max_crawl_delay=2).read()
    assert isinstance(item, Rejection) and item.reason == "crawl_delay_too_long"
    assert item.details["crawl_delay"] == 3


def test_robots_off(router: respx.MockRouter) -> None:
    """robots=False never asks for robots.txt."""
    site = Site(router, {"/robots.txt": text("User-agent: *\nDisallow: /\n")})
    (item,) = make(["https://example.com/x"], robots=False).read()
    assert isinstance(item, Document) and "/robots.txt" not in site.paths()


# -- the address guard -------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
    ],
)
def test_blocked_addresses(address: str) -> None:
    """Private, loopback, link-local, reserved, multicast, unspecified and wrapped IPv4."""
    assert is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses(address: str) -> None:
    """Public addresses pass."""
    assert not is_blocked(ipaddress.ip_address(address))


def test_guard_resolution_and_allowances() -> None:
    """A name resolving to any private address is refused unless allowed by host or network."""

    def resolver(host: str, port: int) -> list[str]:
        return {"mixed.example": ["93.184.215.14", "10.1.2.3"], "intranet.example": ["10.9.9.9"]}[
            host
        ]

    guard = AddressGuard(resolver=resolver)
    with pytest.raises(FetchFailure) as caught:
        guard.check(httpx.URL("http://mixed.example/"))
    assert caught.value.reason == "blocked_address"
    assert caught.value.details["addresses"] == ["10.1.2.3"]
    AddressGuard(allow=("10.0.0.0/8",), resolver=resolver).check(httpx.URL("http://mixed.example/"))
    AddressGuard(allow=("intranet.example",), resolver=resolver).check(
        httpx.URL("http://intranet.example/")
    )
    AddressGuard(allow=("[::1]",)).check(httpx.URL("http://[::1]:8080/"))

    def failing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(FetchFailure) as caught:
        AddressGuard(resolver=failing).check(httpx.URL("http://nowhere.invalid/"))
    assert caught.value.reason == "connection_error"


def test_bad_urls_and_duplicates_keep_their_place(router: respx.MockRouter) -> None:
    """Bad URLs and repeated URLs are rejections in input order; nothing is lost."""
    Site(router, {})
    urls = [
        "https://example.com/a",
        "ftp://example.com/file",
        "not a url",
        "https://example.com/a#again",
        "javascript:alert(1)",
        "https://example.com/b",
    ]
    items = list(make(urls, robots=False).read())
    reasons = [i.reason if isinstance(i, Rejection) else "ok" for i in items]
    assert reasons == ["ok", "bad_url", "bad_url", "duplicate_url", "bad_url", "ok"]
    duplicate = items[3]
    assert isinstance(duplicate, Rejection)
    assert duplicate.details == {"url": "https://example.com/a", "status": None, "duplicate_of": 0}
    assert [i.location.index for i in items if i.location is not None] == list(range(6))


# -- order, laziness, politeness -------------------------------------------------------------


def test_input_order_is_kept_when_answers_come_back_out_of_order(router: respx.MockRouter) -> None:
    """Early URLs answered last still come out first."""

    def slow_first(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/0":
            time.sleep(0.05)
        return httpx.Response(200, headers={"content-type": "text/html"}, text=request.url.path)

    Site(router, {"/0": slow_first})
    urls = [f"https://example.com/{n}" for n in range(12)]
    items = list(make(urls, robots=False, concurrency=4, max_per_host=4).read())
    assert [i.id for i in items if isinstance(i, Document)] == urls


def test_urls_are_consumed_lazily_with_a_bounded_window(router: respx.MockRouter) -> None:
    """An endless URL iterator works: only a window's worth is taken ahead of the reader."""
    taken = itertools.count()

    def endless() -> Iterator[str]:
        for n in itertools.count():
            next(taken)
            yield f"https://example.com/{n}"

    stats: list[FetchStats] = []
    Site(router, {})
    source = make(endless(), robots=False, concurrency=2, window=4, on_stats=stats.append)
    items = list(itertools.islice(source.read(), 10))
    assert len(items) == 10
    assert next(taken) <= 10 + 4
    assert stats and stats[0].documents == 10


def test_max_per_host_is_never_exceeded(router: respx.MockRouter) -> None:
    """At most max_per_host requests to one host are in flight; other hosts run beside it."""
    lock = threading.Lock()
    live: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    def answer(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        with lock:
            live[host] += 1
            peak[host] = max(peak[host], live[host])
        time.sleep(0.01)
        with lock:
            live[host] -= 1
        return httpx.Response(200, headers={"content-type": "text/html"}, text=PAGE)

    urls = [f"https://{h}.example.com/{n}" for n in range(10) for h in ("a", "b")]
    router.get(host__regex=r"^[ab]\.example\.com$").mock(side_effect=answer)
    source = HttpSource(
        urls=urls, resolver=public, robots=False, min_delay=0, concurrency=8, max_per_host=2
    )
    assert all(isinstance(i, Document) for i in source.read())
    assert max(peak.values()) <= 2


def test_host_gate_spacing_with_a_fake_clock() -> None:
    """The gate books start times min_delay apart; defer pushes them; delays never drop."""
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    gate = HostGate(
        per_host=1, min_delay=2.0, stop=threading.Event(), sleep=sleep, clock=lambda: now[0]
    )
    for _ in range(3):
        with gate.turn("a.example"):
            pass
    assert waits == [2.0, 2.0]
    gate.defer("a.example", 10.0)
    with gate.turn("a.example"):
        pass
    assert waits[-1] == 10.0
    gate.set_delay("a.example", 5.0)
    gate.set_delay("a.example", 1.0)
    for _ in range(2):
        with gate.turn("a.example"):
            pass
    assert waits[-2:] == [2.0, 5.0]  # the first start was booked before the change
    count = len(waits)
    with gate.turn("b.example"):
        pass
    assert len(waits) == count  # another host has its own clock


def test_host_gate_stop_ends_waits() -> None:
    """After stop, taking a turn raises Stopped instead of waiting."""
    stop = threading.Event()
    gate = HostGate(per_host=1, min_delay=60.0, stop=stop)
    stop.set()
    with pytest.raises(Stopped), gate.turn("a.example"):
        pass


# -- cache -------------------------------------------------------------------------------


def test_cache_sends_conditional_requests(router: respx.MockRouter, tmp_path: Path) -> None:
    """With cache_dir, a second read revalidates (ETag or Last-Modified) and downloads nothing."""
    lm = "Wed, 21 Oct 2015 07:28:00 GMT"

    def etag(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"etag": '"v1"'})
        return httpx.Response(
            200, headers={"content-type": "text/html", "etag": '"v1"'}, text="<p>e</p>"
        )

    def last_modified(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-modified-since") == lm:
            return httpx.Response(304)
        return httpx.Response(
            200, headers={"content-type": "text/html", "last-modified": lm}, text="<p>m</p>"
        )

    Site(router, {"/etag": etag, "/lm": last_modified, "/robots.txt": text("", 404)})
    urls = ["https://example.com/etag", "https://example.com/lm"]
    stats: list[FetchStats] = []
    source = make(urls, cache_dir=tmp_path / "cache", on_stats=stats.append)
    first = list(source.read())
    second = list(source.read())
    assert first == second and all(isinstance(i, Document) for i in first)
    assert stats[0].bodies == 2 and stats[1].bodies == 0 and stats[1].not_modified == 2


# -- the record itself -------------------------------------------------------------------


def test_options_are_checked() -> None:
    """Bad options raise ConfigError naming the option."""
    with pytest.raises(ConfigError, match="single string"):
        HttpSource(urls="https://example.com/")
    with pytest.raises(ConfigError, match="concurrency"):
        HttpSource(urls=[], concurrency=0)
    with pytest.raises(ConfigError, match="allow_private"):
        HttpSource(urls=[], allow_private=("",))
    with pytest.raises(ConfigError, match="content_types"):
        HttpSource(urls=[], content_types=("html",))


def never_called(request: httpx.Request) -> httpx.Response:
    """A transport handler for a source that never reads: any request fails the test."""
    raise AssertionError(f"unexpected request {request!r}")


def test_source_pickles_and_hides_hooks() -> None:
    """The source is a frozen, picklable record; hooks stay out of repr and equality.

    No request is made: the transport is only held, because the test is about
    the transport option itself (kept out of repr and equality).
    """
    source = HttpSource(urls=["https://example.com/"], cache_dir="c", allow_private="127.0.0.1")
    assert pickle.loads(pickle.dumps(source)) == source
    assert source.allow_private == ("127.0.0.1",)
    hooked = HttpSource(
        urls=["https://example.com/"],
        cache_dir="c",
        allow_private="127.0.0.1",
        transport=httpx.MockTransport(never_called),
        sleep=time.sleep,
    )
    assert hooked == source and "transport" not in repr(hooked)
    with pytest.raises(AttributeError):
        source.concurrency = 3  # type: ignore[misc]
