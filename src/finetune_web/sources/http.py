"""Web pages fetched over HTTP(S), politely, as documents.

:class:`HttpSource` fetches a list of URLs with a pool of worker threads and
yields one :class:`~finetune_web.records.Document` (the decoded page) or one
:class:`~finetune_web.records.Rejection` (why not) per URL, in input order.
It honours robots.txt, spaces the requests to each host, retries transient
failures, refuses private and internal addresses, and can keep an on-disk
cache so that a second run sends conditional requests only.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import attrs
import httpx

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Location, Rejection
from finetune_web.sources._http_cache import PageCache
from finetune_web.sources._http_errors import FetchFailure
from finetune_web.sources._http_fetch import Fetcher
from finetune_web.sources._http_guard import AddressGuard, Resolver, parse_url
from finetune_web.sources._http_hosts import HostGate
from finetune_web.sources._http_page import DEFAULT_CONTENT_TYPES
from finetune_web.sources._http_send import FetchPolicy, Sender
from finetune_web.sources._http_stats import FetchStats, StatsCounter
from finetune_web.sources.files import check_positive

__all__ = ["FetchStats", "HttpSource", "default_user_agent"]

log = logging.getLogger("finetune_web.sources.http")

#: Item yielded by a read, or the work that will produce it.
_Pending = Future[Document | Rejection] | Document | Rejection


def default_user_agent() -> str:
    """Return ``finetune-web/<version>``, the user agent used when none is given."""
    try:
        version = importlib.metadata.version("finetune-web")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"finetune-web/{version}"


def _urls(value: Iterable[str]) -> Iterable[str]:
    if isinstance(value, str | bytes):
        raise ConfigError(
            "urls must be a list (or any iterable) of URLs, not a single string; write urls=[url]"
        )
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def _urls_repr(value: Iterable[str]) -> str:
    if isinstance(value, tuple):
        return f"<{len(value)} URLs>" if len(value) > 3 else repr(value)
    return f"<{type(value).__name__}>"


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ConfigError(f"{attribute.name} must be 0 or more, not {value!r}")


def _strings(value: Iterable[str] | str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or not all(isinstance(item, str) and "/" in item for item in items):
        raise ConfigError(
            f"content_types must be media types such as 'text/html' or 'text/*'; got {items!r}"
        )
    return tuple(item.strip().lower() for item in items)


def _allow(value: Iterable[str] | str) -> tuple[str, ...]:
    return AddressGuard(allow=value).allow  # checks the entries


@attrs.frozen(kw_only=True)
class HttpSource:
    """Fetches web pages and yields them as documents, in input order.

    Each URL becomes a :class:`~finetune_web.records.Document` whose ``id``
    is the URL as given (without its ``#fragment``), whose ``text`` is the
    decoded page and whose ``metadata`` holds ``url``, ``final_url`` (after
    redirects), ``status``, ``content_type``, ``charset`` and, when the server
    sent them, ``etag`` and ``last_modified``; or a
    :class:`~finetune_web.records.Rejection` whose ``details`` hold ``url``,
    ``status`` (``None`` without a response) and the facts of its ``reason``.

    Args:
        urls: the URLs; a list or tuple, or any iterable, consumed lazily (a
            one-shot iterator can be read only once).
        concurrency: requests in flight at once, over all hosts.
        max_per_host: requests in flight to one host at once.
        min_delay: seconds between the starts of two requests to one host, at least.
        robots: honour robots.txt (fetched once per site per read).
        user_agent: the ``User-Agent`` header, also the agent robots.txt rules
            are read for; ``finetune-web/<version>`` when ``None``.  Add a
            way to reach you, e.g. ``"mybot/1.0 (+mailto:me@example.org)"``.
        max_crawl_delay: sites whose robots.txt asks for a longer delay are not
            crawled (their URLs become ``crawl_delay_too_long`` rejections).
        timeout: seconds to connect, and between two reads of the response.
        max_fetch_seconds: seconds one response may take in all.
        max_attempts: sends of one request at most (the first included).
        retry_wait: seconds before the first retry, doubled each time (capped at 60).
        max_retry_after: the longest ``Retry-After`` honoured (longer asks are capped).
        max_redirects: redirects followed per URL.
        max_bytes: larger bodies are not read (``too_large``).
        content_types: media types fetched (``type/*`` matches a family).
        encoding: decode every page with this codec instead of detecting.
        cache_dir: keep bodies and validators here; later reads revalidate
            with ``If-None-Match`` / ``If-Modified-Since`` and reuse the body on 304.
        allow_private: hosts, addresses or networks (``"127.0.0.1"``,
            ``"10.0.0.0/8"``, ``"intranet.example"``) let through the private
            address guard.
        window: results held at most while waiting for an earlier URL (default
            ``2 * concurrency``).
        name: the ``step`` that rejections carry.
        transport: an httpx transport to send requests with (tests, proxies).
        resolver: ``(host, port) -> addresses`` for the address guard (tests).
        sleep: how to wait (tests); by default a wait that ends when reading stops.
        on_stats: called with a :class:`FetchStats` when a read ends.
    """

    urls: Iterable[str] = attrs.field(converter=_urls, repr=_urls_repr)
    concurrency: int = attrs.field(default=16, validator=check_positive)
    max_per_host: int = attrs.field(default=2, validator=check_positive)
    min_delay: float = attrs.field(default=1.0, validator=_non_negative)
    robots: bool = True
    user_agent: str | None = None
    max_crawl_delay: float = attrs.field(default=60.0, validator=_non_negative)
    timeout: float = attrs.field(default=30.0, validator=_non_negative)
    max_fetch_seconds: float = attrs.field(default=120.0, validator=_non_negative)
    max_attempts: int = attrs.field(default=4, validator=check_positive)
    retry_wait: float = attrs.field(default=1.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=120.0, validator=_non_negative)
    max_redirects: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    max_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=check_positive)
    content_types: tuple[str, ...] = attrs.field(default=DEFAULT_CONTENT_TYPES, converter=_strings)
    encoding: str | None = None
    cache_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    allow_private: tuple[str, ...] = attrs.field(default=(), converter=_allow)
    window: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(check_positive)
    )
    name: str | None = None
    transport: httpx.BaseTransport | None = attrs.field(default=None, eq=False, repr=False)
    resolver: Resolver | None = attrs.field(default=None, eq=False, repr=False)
    sleep: Callable[[float], None] | None = attrs.field(default=None, eq=False, repr=False)
    on_stats: Callable[[FetchStats], None] | None = attrs.field(default=None, eq=False, repr=False)

    def _step(self) -> str:
        return self.name or type(self).__name__

    def _policy(self) -> FetchPolicy:
        return FetchPolicy(
            max_bytes=self.max_bytes,
            max_redirects=self.max_redirects,
            max_attempts=self.max_attempts,
            retry_wait=self.retry_wait,
            max_retry_after=self.max_retry_after,
            timeout=self.timeout,
            max_fetch_seconds=self.max_fetch_seconds,
            content_types=self.content_types,
            encoding=self.encoding,
        )

    def read(self) -> Iterator[Document | Rejection]:
        """Return an iterator over one document or rejection per URL, in input order.

        Nothing is opened until the first item is asked for; stopping early
        (closing the iterator) cancels the fetches not started yet.

        Raises:
            SourceError: the cache folder cannot be created or written.
        """
        cache = PageCache(self.cache_dir) if self.cache_dir is not None else None
        if cache is not None:
            cache.prepare()
        return self._read(cache)

    def _reject(self, raw: object, index: int, failure: FetchFailure) -> Rejection:
        text = raw.strip().split("#", 1)[0] if isinstance(raw, str) else repr(raw)
        return Rejection(
            record_id=text,
            step=self._step(),
            reason=failure.reason,
            message=f"{text}: {failure.message}",
            location=Location(origin=text, index=index),
            record=raw,
            details={"url": text, "status": None, **failure.details},
        )

    def _read(self, cache: PageCache | None) -> Iterator[Document | Rejection]:
        stop = threading.Event()
        stats = StatsCounter()
        agent = self.user_agent or default_user_agent()
        gate = HostGate(
            per_host=self.max_per_host, min_delay=self.min_delay, stop=stop, sleep=self.sleep
        )
        client = httpx.Client(
            transport=self.transport,
            follow_redirects=False,
            timeout=httpx.Timeout(self.timeout or None),
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
            headers={"User-Agent": agent},
        )
        policy = self._policy()
        fetcher = Fetcher(
            sender=Sender(client=client, policy=policy, gate=gate, stats=stats, cache=cache),
            policy=policy,
            guard=AddressGuard(allow=self.allow_private, resolver=self.resolver),
            gate=gate,
            robots_agent=agent if self.robots else None,
            max_crawl_delay=self.max_crawl_delay,
            step=self._step(),
        )
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="finetune-web-http")
        window = self.window or 2 * self.concurrency
        pending: deque[_Pending] = deque()
        seen: dict[str, int] = {}

        def take() -> Document | Rejection:
            item = pending.popleft()
            result = item.result() if isinstance(item, Future) else item
            stats.add("documents" if isinstance(result, Document) else "rejections")
            return result

        try:
            for index, raw in enumerate(self.urls):
                stats.add("urls")
                try:
                    url_id, url = parse_url(raw)
                    first = seen.setdefault(url_id, index)
                    if first != index:
                        raise FetchFailure(
                            "duplicate_url",
                            f"the same URL is already at position {first} of the input",
                            details={"duplicate_of": first},
                        )
                except FetchFailure as failure:
                    pending.append(self._reject(raw, index, failure))
                else:
                    pending.append(pool.submit(fetcher.fetch, url_id, url, index))
                while len(pending) >= window:
                    yield take()
            while pending:
                yield take()
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()
            figures = stats.snapshot()
            log.info("fetched %s", figures)
            if self.on_stats is not None:
                self.on_stats(figures)
