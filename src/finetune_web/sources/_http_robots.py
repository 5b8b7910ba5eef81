"""robots.txt: fetched once per site and read, checked before every request.

What a robots.txt answer means follows Google's rules: a 2xx body is parsed
(its first 500 KiB); any other 4xx means "no rules, crawl everything"; 429,
5xx and a site that cannot be reached mean "crawl nothing" (for this read).
``Crawl-delay`` and ``Request-rate`` for the user agent become the host's
delay between requests; a delay longer than the source's ``max_crawl_delay``
makes the site's URLs rejections instead of a crawl that would never end.
"""

from __future__ import annotations

import threading
import urllib.robotparser
from collections.abc import Callable

import httpx

from finetune_web.sources._http_errors import FetchFailure
from finetune_web.sources._http_hosts import HostGate

__all__ = ["ROBOTS_MAX_BYTES", "RobotsBook", "RobotsFetch", "origin_of"]

#: The part of a robots.txt file that is read (Google reads 500 KiB).
ROBOTS_MAX_BYTES = 500 * 1024

#: Fetches a robots.txt URL: returns ``(status, body)`` or raises FetchFailure.
RobotsFetch = Callable[[httpx.URL], tuple[int, bytes]]


def origin_of(url: httpx.URL) -> str:
    """Return ``scheme://host:port`` (the scope of one robots.txt)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.scheme}://{url.host}:{port}"


class _Rules:
    def __init__(self, parser: urllib.robotparser.RobotFileParser, status: int | None, why: str):
        self.parser = parser
        self.status = status
        self.why = why
        self.too_slow: float | None = None


class RobotsBook:
    """The robots.txt rules of every site met during one read.

    Args:
        agent: the user agent whose rules apply (its product token, before ``/``, is matched).
        fetch: gets a robots.txt file.
        gate: the per-host politeness gate, told each site's crawl delay.
        max_crawl_delay: the longest delay honoured; a site asking for more is not crawled.
    """

    def __init__(
        self, *, agent: str, fetch: RobotsFetch, gate: HostGate, max_crawl_delay: float
    ) -> None:
        self._agent = agent
        self._fetch = fetch
        self._gate = gate
        self._max_delay = max_crawl_delay
        self._rules: dict[str, _Rules] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _load(self, url: httpx.URL) -> _Rules:
        parser = urllib.robotparser.RobotFileParser()
        robots_url = url.copy_with(path="/robots.txt", query=None, fragment=None)
        try:
            status, body = self._fetch(robots_url)
        except FetchFailure as failure:
            code = failure.status
            if code is not None and 400 <= code < 500 and code != 429:
                parser.parse([])  # no rules: everything is allowed
                return _Rules(parser, code, f"robots.txt answered {code}: no rules")
            parser.parse(["User-agent: *", "Disallow: /"])
            why = f"status {code}" if code is not None else failure.message
            return _Rules(parser, code, f"robots.txt could not be read ({why})")
        text = body[:ROBOTS_MAX_BYTES].decode("utf-8", "replace")
        parser.parse(text.splitlines())
        rules = _Rules(parser, status, "robots.txt disallows it")
        delay = self._delay(parser)
        if delay is not None:
            if delay > self._max_delay:
                rules.too_slow = delay
            else:
                self._gate.set_delay(url.host.lower(), delay)
        return rules

    def _delay(self, parser: urllib.robotparser.RobotFileParser) -> float | None:
        delays: list[float] = []
        crawl_delay = parser.crawl_delay(self._agent)
        if crawl_delay is not None:
            delays.append(float(crawl_delay))
        rate = parser.request_rate(self._agent)
        if rate is not None and rate.requests > 0:
            delays.append(rate.seconds / rate.requests)
        return max(delays) if delays else None

    def rules(self, url: httpx.URL) -> _Rules:
        """Return the rules of the URL's site, fetching its robots.txt the first time."""
        origin = origin_of(url)
        with self._lock:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:
            rules = self._rules.get(origin)
            if rules is None:
                rules = self._rules[origin] = self._load(url)
            return rules

    def check(self, url: httpx.URL) -> None:
        """Refuse a URL that the site's robots.txt keeps this user agent from.

        Raises:
            FetchFailure: ``robots_disallowed`` or ``crawl_delay_too_long``.
        """
        rules = self.rules(url)
        details = {"robots_status": rules.status}
        if rules.too_slow is not None:
            raise FetchFailure(
                "crawl_delay_too_long",
                f"robots.txt asks for {rules.too_slow:g} s between requests, more than "
                f"max_crawl_delay={self._max_delay:g}; raise max_crawl_delay to crawl this site",
                details={**details, "crawl_delay": rules.too_slow},
            )
        if not rules.parser.can_fetch(self._agent, str(url)):
            raise FetchFailure(
                "robots_disallowed",
                f"{rules.why} for user agent {self._agent!r}; it is not fetched",
                details=details,
            )
