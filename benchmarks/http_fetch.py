"""HTTP fetching: HttpSource's worker pool against a plain sequential httpx loop.

What is measured
----------------
1. **A local server** (not timed): ``http.server.ThreadingHTTPServer`` on
   127.0.0.1, HTTP/1.1 with keep-alive, that waits ``--latency`` seconds
   (50 ms) before each answer, like a remote site would, and serves
   ``--pages`` distinct pages: the article extraction benchmark's real pages
   (``../shared/realdata/article_extraction_benchmark/html``) cycled, each
   with a marker comment unique to its URL.  A permissive robots.txt is
   served.  Without the real data, generated pages are used instead.
2. **Ours**: ``HttpSource(urls, concurrency=16, max_per_host=16, min_delay=0,
   allow_private=("127.0.0.1",))`` with robots.txt honoured (fetched once),
   the address guard on, reading every page into a document in input order.
3. **Baseline**: one ``httpx.Client`` fetching the same URLs one after the
   other (``client.get(url).text``), the usual first version of a scraper.
4. **Reference**: the same client shared by a pool of ``--concurrency``
   threads, with none of HttpSource's work (robots.txt, guard, politeness,
   checks, decoding): the ceiling of threads over httpx on this machine.
5. **Identical**: every document's text equals the baseline's text for the
   same URL, in the same order.

The server runs in a child process, so that it does not compete with the
client for this process's GIL (in one process it halves the client's speed).

Each side runs ``--repeats`` times, alternating; the best time of each counts.

Run it (about 40 s at the defaults)::

    .venv/bin/python benchmarks/http_fetch.py
    .venv/bin/python benchmarks/http_fetch.py --pages 200 --repeats 1   # quicker

It prints a table, then, as its last line, one JSON object with the figures
(``pages_per_s``, ``sequential_pages_per_s``, ``speedup``, ``identical``...).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from finetune_web.records import Document
from finetune_web.sources.http import FetchStats, HttpSource

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
PAGES_DIR = REALDATA / "article_extraction_benchmark" / "html"


def load_pages(count: int) -> tuple[dict[str, bytes], str]:
    """Return ``count`` distinct pages by path, and where their HTML came from."""
    files = sorted(PAGES_DIR.glob("*.html.gz")) if PAGES_DIR.is_dir() else []
    if files:
        bodies = [gzip.decompress(f.read_bytes()) for f in files]
        origin = f"{len(files)} real pages of the article extraction benchmark, cycled"
    else:
        paragraph = "<p>" + "A sentence of generated filler text. " * 200 + "</p>"
        bodies = [
            f"<html><body><h1>Page {n}</h1>{paragraph}</body></html>".encode() for n in range(50)
        ]
        origin = "50 generated pages, cycled (../shared/realdata is absent)"
    pages = {}
    for n in range(count):
        body = bodies[n % len(bodies)]
        marker = f"<!-- page {n:05d} -->".encode()
        pages[f"/page/{n:05d}.html"] = marker + body
    return pages, origin


class Server(ThreadingHTTPServer):
    """A threaded server whose listen backlog takes a burst of connections."""

    daemon_threads = True
    request_queue_size = 128  # the default, 5, drops connections when 16 arrive at once


def _serve(count: int, latency: float, ports: multiprocessing.Queue[int]) -> None:
    """Serve ``count`` pages until killed (runs in a child process)."""
    pages, _ = load_pages(count)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(latency)
            if self.path == "/robots.txt":
                body, kind, status = b"User-agent: *\nDisallow:\n", "text/plain", 200
            elif self.path in pages:
                body, kind, status = pages[self.path], "text/html; charset=utf-8", 200
            else:
                body, kind, status = b"not found", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = Server(("127.0.0.1", 0), Handler)
    ports.put(server.server_address[1])
    server.serve_forever()


def start_server(count: int, latency: float) -> tuple[multiprocessing.Process, str]:
    """Start the slow local server in its own process (so that it does not share this
    process's GIL with the client); return the process and the base URL."""
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(count, latency, ports), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{ports.get(timeout=60)}"


def run_ours(urls: list[str], concurrency: int) -> tuple[float, list[str], FetchStats]:
    """Fetch with HttpSource; return the seconds, the texts, and the read's counts."""
    stats: list[FetchStats] = []
    source = HttpSource(
        urls=urls,
        concurrency=concurrency,
        max_per_host=concurrency,
        min_delay=0,
        allow_private=("127.0.0.1",),
        on_stats=stats.append,
    )
    start = time.perf_counter()
    texts = [item.text or "" if isinstance(item, Document) else "" for item in source.read()]
    return time.perf_counter() - start, texts, stats[0]


def run_sequential(urls: list[str]) -> tuple[float, list[str]]:
    """Fetch with one httpx.Client, one URL after the other."""
    start = time.perf_counter()
    with httpx.Client() as client:
        texts = [client.get(url).text for url in urls]
    return time.perf_counter() - start, texts


def run_threaded(urls: list[str], threads: int) -> tuple[float, list[str]]:
    """Fetch with one httpx.Client shared by a thread pool (no robots, guard or checks)."""
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    start = time.perf_counter()
    with httpx.Client(limits=limits) as client, ThreadPoolExecutor(threads) as pool:
        texts = list(pool.map(lambda url: client.get(url).text, urls))
    return time.perf_counter() - start, texts


def main(argv: list[str] | None = None) -> None:
    """Start the server, run both fetchers, print a table and the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=500, help="distinct pages to fetch")
    parser.add_argument("--latency", type=float, default=0.05, help="server wait per answer (s)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each side")
    args = parser.parse_args(argv)

    pages, origin = load_pages(args.pages)
    server, base = start_server(args.pages, args.latency)
    urls = [base + path for path in pages]
    try:
        ours_runs: list[float] = []
        theirs_runs: list[float] = []
        pool_runs: list[float] = []
        for _ in range(args.repeats):
            seconds, ours_texts, stats = run_ours(urls, args.concurrency)
            ours_runs.append(seconds)
            seconds, their_texts = run_sequential(urls)
            theirs_runs.append(seconds)
            seconds, pool_texts = run_threaded(urls, args.concurrency)
            pool_runs.append(seconds)
    finally:
        server.terminate()
        server.join()
    ours_s, theirs_s, pool_s = min(ours_runs), min(theirs_runs), min(pool_runs)
    identical = ours_texts == their_texts == pool_texts and all(ours_texts)
    megabytes = sum(len(body) for body in pages.values()) / 1e6
    n = len(urls)

    print(f"{n} pages ({megabytes:.1f} MB), {origin}; server latency {args.latency * 1000:.0f} ms")
    print(f"{'':36} {'seconds':>8} {'pages/s':>8} {'MB/s':>6}")
    label = f"HttpSource concurrency={args.concurrency}"
    print(f"{label:36} {ours_s:8.2f} {n / ours_s:8.1f} {megabytes / ours_s:6.1f}")
    for name, seconds in (
        ("httpx.Client, sequential", theirs_s),
        (f"httpx.Client + {args.concurrency} threads (bare)", pool_s),
    ):
        print(f"{name:36} {seconds:8.2f} {n / seconds:8.1f} {megabytes / seconds:6.1f}")
    print(f"speedup {theirs_s / ours_s:.1f}x; identical texts: {identical}")
    print(
        f"HttpSource requests: {stats.requests} (robots.txt {stats.robots_fetched}), "
        f"bodies {stats.bodies}, retries {stats.retries}"
    )
    figures: dict[str, Any] = {
        "pages": n,
        "megabytes": round(megabytes, 2),
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "seconds": round(ours_s, 3),
        "sequential_seconds": round(theirs_s, 3),
        "pages_per_s": round(n / ours_s, 1),
        "sequential_pages_per_s": round(n / theirs_s, 1),
        "speedup": round(theirs_s / ours_s, 2),
        "bare_threads_pages_per_s": round(n / pool_s, 1),
        "ideal_speedup": args.concurrency,
        "identical": identical,
        "requests": stats.requests,
        "retries": stats.retries,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
