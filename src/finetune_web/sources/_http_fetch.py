"""Fetching one page: address guard, robots.txt and redirects, then decoding.

Redirects are followed here, one hop at a time, so that every hop passes the
address guard and the robots.txt rules of its own site before its request
is sent (see :mod:`._http_send` for the request itself).
"""

from __future__ import annotations

from typing import Any

import httpx

from finetune_web.records import Document, Location, Rejection
from finetune_web.sources._http_errors import FetchFailure
from finetune_web.sources._http_guard import AddressGuard, parse_url
from finetune_web.sources._http_hosts import HostGate
from finetune_web.sources._http_page import Reply, check_content_type, decode_page
from finetune_web.sources._http_robots import ROBOTS_MAX_BYTES, RobotsBook
from finetune_web.sources._http_send import REDIRECT_STATUSES, Accept, FetchPolicy, Sender

__all__ = ["Fetcher"]

_ROBOTS_REDIRECTS = 5


class Fetcher:
    """Fetches pages for one read (shared by its worker threads).

    Args:
        sender: sends single requests.
        policy: limits and retries.
        guard: the address guard.
        gate: per-host politeness (told robots.txt crawl delays).
        robots_agent: the user agent robots.txt rules are read for; ``None``
            ignores robots.txt.
        max_crawl_delay: the longest robots.txt crawl delay honoured.
        step: the name rejections carry.
    """

    def __init__(
        self,
        *,
        sender: Sender,
        policy: FetchPolicy,
        guard: AddressGuard,
        gate: HostGate,
        robots_agent: str | None,
        max_crawl_delay: float,
        step: str,
    ) -> None:
        self._sender = sender
        self._policy = policy
        self._guard = guard
        self._step = step
        self._robots = (
            None
            if robots_agent is None
            else RobotsBook(
                agent=robots_agent,
                fetch=self._fetch_robots,
                gate=gate,
                max_crawl_delay=max_crawl_delay,
            )
        )

    def _follow(
        self,
        url: httpx.URL,
        *,
        limit: int,
        truncate: bool,
        accept: Accept | None,
        max_redirects: int,
        robots: bool,
    ) -> Reply:
        seen = {str(url)}
        hops = 0
        while True:
            self._guard.check(url)
            if robots and self._robots is not None:
                self._robots.check(url)
            reply = self._sender.send(url, limit=limit, truncate=truncate, accept=accept)
            if reply.status not in REDIRECT_STATUSES:
                return reply
            if not reply.location:
                raise FetchFailure(
                    "http_status",
                    f"the server answered {reply.status} (a redirect) without a Location header",
                    status=reply.status,
                )
            target = url.join(reply.location)
            _, url = parse_url(str(target), what=f"redirect target {str(target)!r}")
            hops += 1
            if str(url) in seen or hops > max_redirects:
                loop = str(url) in seen
                why = "a redirect loop" if loop else f"more than max_redirects={max_redirects}"
                raise FetchFailure(
                    "too_many_redirects",
                    f"{why} (after {hops} redirect{'s' if hops > 1 else ''}, the last to {url})",
                    status=reply.status,
                    details={"redirects": hops, "last_location": str(url), "loop": loop},
                )
            seen.add(str(url))

    def _fetch_robots(self, url: httpx.URL) -> tuple[int, bytes]:
        self._sender.stats.add("robots_fetched")
        reply = self._follow(
            url,
            limit=ROBOTS_MAX_BYTES,
            truncate=True,
            accept=None,
            max_redirects=_ROBOTS_REDIRECTS,
            robots=False,
        )
        return reply.status, reply.body

    def _accept_page(self, response: httpx.Response) -> None:
        check_content_type(
            response.headers.get("content-type"),
            self._policy.content_types,
            response.status_code,
        )

    def fetch(self, url_id: str, url: httpx.URL, index: int) -> Document | Rejection:
        """Fetch one page and return its document, or the rejection saying why not.

        Args:
            url_id: the URL as given, without its fragment (the document's id).
            url: the same, parsed.
            index: its position in the input.
        """
        location = Location(origin=url_id, index=index)
        final_url: str | None = None
        try:
            reply = self._follow(
                url,
                limit=self._policy.max_bytes,
                truncate=False,
                accept=self._accept_page,
                max_redirects=self._policy.max_redirects,
                robots=True,
            )
            final_url = str(reply.url)
            decoded, mime = decode_page(
                reply.body,
                content_type=reply.content_type,
                status=reply.status,
                encoding=self._policy.encoding,
            )
        except FetchFailure as failure:
            details: dict[str, Any] = {"url": url_id, "status": failure.status}
            if final_url is not None and final_url != url_id:
                details["final_url"] = final_url
            details.update(failure.details)
            return Rejection(
                record_id=url_id,
                step=self._step,
                reason=failure.reason,
                message=f"{url_id}: {failure.message}",
                location=location,
                record=url_id,
                details=details,
            )
        metadata: dict[str, Any] = {
            "url": url_id,
            "final_url": final_url,
            "status": reply.status,
            "content_type": mime,
            "charset": decoded.charset,
        }
        if reply.etag is not None:
            metadata["etag"] = reply.etag
        if reply.last_modified is not None:
            metadata["last_modified"] = reply.last_modified
        return Document(id=url_id, text=decoded.text, metadata=metadata, location=location)
