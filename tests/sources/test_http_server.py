"""HttpSource end to end against a real HTTP server on 127.0.0.1, serving real pages.

The server (``http.server`` in a thread) serves 20 pages of the article
extraction benchmark, a robots.txt that disallows ``/private/`` and sets a
Crawl-delay, and answers ``If-None-Match`` with 304.  It counts what it
serves and how many requests are in flight at once.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from finetune_web.records import Document, Rejection
from finetune_web.sources.html_files import HtmlFileSource
from finetune_web.sources.http import FetchStats, HttpSource
from finetune_web.testing import check_source

PAGES = 20
CRAWL_DELAY = 2
ROBOTS = f"User-agent: *\nCrawl-delay: {CRAWL_DELAY}\nDisallow: /private/\n"


class Server:
    """A local site and what it saw."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.robots = ROBOTS
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []
        self.in_flight = 0
        self.peak = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    time.sleep(0.005)  # let requests overlap
                    self._answer()
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self) -> None:
                if self.path == "/robots.txt":
                    body, kind = server.robots.encode(), "text/plain"
                elif self.path in server.pages:
                    body, kind = server.pages[self.path], "text/html"
                else:
                    self._send(404, b"not found", "text/plain")
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    with server.lock:
                        server.log.append((self.path, 304))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self._send(200, body, kind, etag)

            def _send(self, status: int, body: bytes, kind: str, etag: str | None = None) -> None:
                with server.lock:
                    server.log.append((self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if etag is not None:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def statuses(self, status: int) -> list[str]:
        """The paths answered with ``status``."""
        with self.lock:
            return [path for path, code in self.log if code == status]


@pytest.fixture
def pages_dir(realdata: Path) -> Path:
    """The benchmark's gzipped pages."""
    folder = realdata / "article_extraction_benchmark" / "html"
    if not folder.is_dir():
        pytest.skip("article_extraction_benchmark/html is absent from ../shared/realdata")
    return folder


@pytest.fixture
def server(pages_dir: Path) -> Iterator[Server]:
    """A running local server with 20 real pages and one page under /private/."""
    files = sorted(pages_dir.glob("*.html.gz"))[:PAGES]
    pages = {f"/pages/{f.name[:-3]}": gzip.decompress(f.read_bytes()) for f in files}
    pages["/private/secret.html"] = b"<html><body><p>secret</p></body></html>"
    site = Server(pages)
    site.thread.start()
    try:
        yield site
    finally:
        site.httpd.shutdown()
        site.httpd.server_close()
        site.thread.join()


def page_urls(site: Server) -> list[str]:
    """The URLs of the 20 public pages."""
    return [site.base + path for path in site.pages if path.startswith("/pages/")]


def test_crawl_honours_robots_and_politeness(server: Server, pages_dir: Path) -> None:
    """robots.txt is fetched once and honoured (the private page is never requested), the
    Crawl-delay spaces the requests, no more than max_per_host requests are ever in flight,
    and every page decodes to the same text as the same file read from disk."""
    sleeps: list[float] = []
    urls = [*page_urls(server), server.base + "/private/secret.html"]
    source = HttpSource(
        urls=urls,
        allow_private=("127.0.0.1",),
        concurrency=8,
        max_per_host=2,
        min_delay=0,
        sleep=sleeps.append,  # record the waits instead of waiting 40 s
    )
    items = list(source.read())
    assert [i.id if isinstance(i, Document) else i.record_id for i in items] == urls
    *documents, private = items
    assert isinstance(private, Rejection) and private.reason == "robots_disallowed"
    assert all(isinstance(d, Document) for d in documents)
    assert "/private/secret.html" not in [path for path, _ in server.log]
    assert server.statuses(200).count("/robots.txt") == 1
    assert server.peak <= 2
    # Crawl-delay: 2 books one start every 2 s: the waits reach about 2 * (pages - 1) s.
    assert len([s for s in sleeps if s > CRAWL_DELAY / 2]) >= PAGES - 2
    assert max(sleeps) > CRAWL_DELAY * (PAGES - 1) - 5

    files = HtmlFileSource([pages_dir / (url.rsplit("/", 1)[1] + ".gz") for url in urls[:-1]])
    from_disk = [d.text for d in files.read() if isinstance(d, Document)]
    assert [d.text for d in documents if isinstance(d, Document)] == from_disk
    first = documents[0]
    assert isinstance(first, Document)
    assert first.metadata["status"] == 200 and first.metadata["charset"] == "utf-8"
    assert first.metadata["etag"].startswith('"')


def test_second_run_downloads_nothing(server: Server, tmp_path: Path) -> None:
    """With the same cache_dir, a second run gets only 304s (robots.txt included), downloads
    zero bodies, and yields identical documents."""
    server.robots = "User-agent: *\nDisallow: /private/\n"
    stats: list[FetchStats] = []
    source = HttpSource(
        urls=page_urls(server),
        allow_private=("127.0.0.1",),
        min_delay=0,
        max_per_host=4,
        cache_dir=tmp_path / "cache",
        on_stats=stats.append,
    )
    first = list(source.read())
    served = len(server.statuses(200))
    assert served == PAGES + 1  # the pages and robots.txt
    second = list(source.read())
    assert second == first
    assert len(server.statuses(200)) == served  # not one more body
    assert len(server.statuses(304)) == PAGES + 1
    assert stats[1].bodies == 0 and stats[1].not_modified == PAGES + 1


def test_address_guard_refuses_private_hosts(server: Server) -> None:
    """Private, link-local, loopback (IPv4, IPv6 and a name resolving to loopback) addresses
    are refused without a request; allowing 127.0.0.1 explicitly lets the page through."""
    page = next(iter(server.pages))
    urls = [
        "http://10.0.0.1/",
        "http://192.168.1.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{server.port}{page}",
        f"http://localhost:{server.port}{page}",
        f"{server.base}{page}",
    ]
    items = list(HttpSource(urls=urls, min_delay=0).read())
    assert [i.reason for i in items if isinstance(i, Rejection)] == ["blocked_address"] * 6
    assert server.log == []

    allowed = list(HttpSource(urls=urls[-1:], allow_private=("127.0.0.1",), min_delay=0).read())
    assert isinstance(allowed[0], Document)
    assert [path for path, _ in server.log] == ["/robots.txt", page]


def test_name_resolving_to_loopback_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public-looking host name that resolves to 127.0.0.1 is refused (the system resolver
    is asked, so a DNS answer pointing inside cannot smuggle a request in)."""
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_getaddrinfo)
    url = f"http://innocent.example:{server.port}/pages/x"
    (item,) = HttpSource(urls=[url], min_delay=0).read()
    assert isinstance(item, Rejection) and item.reason == "blocked_address"
    assert item.details["addresses"] == ["127.0.0.1"]
    assert server.log == []


def _loopback_getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
    """getaddrinfo answering 127.0.0.1 for every name."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def test_check_source_contract(server: Server) -> None:
    """check_source passes: picklable, same items twice, unique ids."""
    server.robots = "User-agent: *\nDisallow: /private/\n"
    source = HttpSource(urls=page_urls(server)[:5], allow_private=("127.0.0.1",), min_delay=0)
    items = check_source(source)
    assert len(items) == 5 and all(isinstance(i, Document) for i in items)
