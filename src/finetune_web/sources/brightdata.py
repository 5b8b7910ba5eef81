"""Records straight from Bright Data's Web Scraper API (datasets v3).

:class:`BrightDataSource` starts a collection (``POST /datasets/v3/trigger``),
or takes the snapshot id of one already started, waits until it is ready
(``GET /datasets/v3/progress/{id}``), and streams the snapshot
(``GET /datasets/v3/snapshot/{id}``), in parts when asked.  The records come
out as :class:`~finetune_web.sources.JsonlSource` makes them from a saved
snapshot: failed scrapes (``error_code``) as ``scrape_error`` rejections, the
rest as documents whose ``data`` is the record.

The source is frozen and remembers nothing between reads: each ``read()`` of
a source built with ``inputs`` triggers (and pays for) a new collection.  The
snapshot id is logged and passed to ``on_snapshot`` as soon as it is known;
a source built with ``snapshot_id`` downloads that snapshot and triggers
nothing.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Rejection
from finetune_web.sources._brightdata_api import ScraperApi
from finetune_web.sources._brightdata_read import SnapshotFormat, SnapshotMaker, stream_part
from finetune_web.sources.files import DEFAULT_ERROR_KEY

__all__ = ["BRIGHTDATA_BASE_URL", "BRIGHTDATA_TOKEN_ENV", "BrightDataSource"]

log = logging.getLogger(__name__)

#: Where the API is, unless ``base_url`` says otherwise.
BRIGHTDATA_BASE_URL = "https://api.brightdata.com"
#: The environment variable read for the API token when ``token`` is not given.
BRIGHTDATA_TOKEN_ENV = "BRIGHTDATA_API_TOKEN"
#: The smallest ``batch_size`` the API accepts.
MIN_BATCH_SIZE = 1000

_SNAPSHOT_ID = re.compile(r"[A-Za-z0-9_\-]+")


def _inputs(value: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    if isinstance(value, (str, bytes, Mapping)):
        raise ConfigError(
            "inputs must be a list of objects such as [{'url': 'https://...'}], "
            f"not one {type(value).__name__}"
        )
    items = tuple(value)
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ConfigError(
                f"inputs[{position}] is a {type(item).__name__}, not an object such as "
                "{'url': 'https://...'} or {'keyword': '...'}"
            )
    return tuple(dict(item) for item in items)


def _positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{attribute.name} must be greater than 0, not {value!r}")


def _check_snapshot_id(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not _SNAPSHOT_ID.fullmatch(value):
        raise ConfigError(
            f"snapshot_id={value!r} is not a snapshot id (such as 's_m4x7enmven8djfqak'): "
            "use the id the trigger returned, as logged"
        )


def _check_format(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in ("jsonl", "json"):
        raise ConfigError(f"format must be 'jsonl' or 'json', not {value!r}")


def _check_batch_size(_: object, __: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and value < MIN_BATCH_SIZE:
        raise ConfigError(f"batch_size must be at least {MIN_BATCH_SIZE:,} (the API's minimum)")


def _check_base_url(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"base_url must start with https:// or http://, not {value!r}")


def _base_url(value: str) -> str:
    return value.rstrip("/")


@attrs.frozen(kw_only=True)
class BrightDataSource:
    """Reads the records of a Bright Data Web Scraper API collection.

    Give ``dataset_id`` and ``inputs`` to trigger a collection on each
    :meth:`read`, or ``snapshot_id`` to download a collection already
    triggered (nothing is triggered then, even if ``inputs`` are given too).

    Each record becomes a :class:`~finetune_web.records.Document` with id
    ``<snapshot id>#<index>`` (0-based over the whole snapshot), ``data`` the
    record, ``metadata`` ``{"snapshot_id", "dataset_id"}`` and a location
    naming the download URL and the line; a record with ``error_code`` becomes
    a ``scrape_error`` rejection, a line that is not JSON an ``invalid_json``
    one.  An empty snapshot yields nothing (with a warning in the log).

    Args:
        dataset_id: the scraper to run (``gd_...``); needed to trigger.
        inputs: what to collect, one object per input (``{"url": ...}``,
            ``{"keyword": ...}``...), sent as the trigger's JSON array.
        snapshot_id: download this snapshot instead of triggering.
        discover_by: start a discovery collection (``type=discover_new``) by
            this method (``keyword``, ``category_url``, ``best_sellers_url``...).
        limit_per_input: at most this many records per input (discovery).
        include_errors: ask for failed scrapes too, so each one is accounted
            for as a rejection.
        format: the download format, ``jsonl`` or ``json`` (an array).
        batch_size: download in parts of this many records (at least 1,000).
        text_field: see :class:`~finetune_web.sources.files.FileSource`.
        error_key: see :class:`~finetune_web.sources.files.FileSource`.
        name: the name rejections carry as ``step`` (default: the class name).
        token: the API token; ``None`` reads the ``BRIGHTDATA_API_TOKEN``
            environment variable.  Never shown in a repr, log line or error.
        base_url: the API's address.
        poll_interval: seconds between progress checks, and after a 202 answer.
        timeout: the longest wait, in seconds, for the collection to finish,
            and then for each download to be ready (answers 202).
        request_timeout: seconds before one HTTP request times out.
        on_snapshot: called with the snapshot id right after a trigger.
        transport: an ``httpx`` transport (a proxy, or ``httpx.MockTransport`` in tests).
        sleep: how to wait (a fake clock's in tests).
        clock: monotonic seconds (a fake clock in tests).

    Raises:
        ConfigError: an option is invalid, or neither ``inputs`` (with
            ``dataset_id``) nor ``snapshot_id`` is given.
    """

    dataset_id: str | None = None
    inputs: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=_inputs)
    snapshot_id: str | None = attrs.field(default=None, validator=_check_snapshot_id)
    discover_by: str | None = None
    limit_per_input: int | None = attrs.field(default=None, validator=_positive)
    include_errors: bool = True
    format: SnapshotFormat = attrs.field(default="jsonl", validator=_check_format)
    batch_size: int | None = attrs.field(default=None, validator=_check_batch_size)
    text_field: str | None = None
    error_key: str | None = DEFAULT_ERROR_KEY
    name: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    base_url: str = attrs.field(
        default=BRIGHTDATA_BASE_URL, converter=_base_url, validator=_check_base_url
    )
    poll_interval: float = attrs.field(default=10.0, validator=_positive)
    timeout: float = attrs.field(default=3600.0, validator=_positive)
    request_timeout: float = attrs.field(default=60.0, validator=_positive)
    on_snapshot: Callable[[str], None] | None = attrs.field(default=None, eq=False, repr=False)
    transport: httpx.BaseTransport | None = attrs.field(default=None, eq=False, repr=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.snapshot_id is not None:
            return
        if not self.inputs:
            raise ConfigError(
                "give inputs=[...] (with dataset_id) to trigger a collection, or "
                "snapshot_id=... to download one already triggered"
            )
        if not self.dataset_id:
            raise ConfigError(
                "dataset_id is needed to trigger a collection: the id of the scraper "
                "('gd_...'), shown on its page in the Bright Data control panel"
            )
        if self.discover_by == "":
            raise ConfigError("discover_by must name a discovery method such as 'keyword'")

    def read(self) -> Iterator[Document | Rejection]:
        """Return an iterator over the snapshot's documents and rejections, in order.

        Nothing is sent until the iterator is first advanced; then a source
        built with ``inputs`` triggers a new collection (one per call).

        Raises:
            ConfigError: no API token was given or found (raised here).
            SourceError: (while iterating) the collection failed or could not be
                started, the snapshot expired or does not exist, the timeout
                passed, or the API kept failing or rate-limiting; the message
                says whether and how the snapshot can still be downloaded.
        """
        return self._read(self._token())

    def _step(self) -> str:
        return self.name or type(self).__name__

    def _token(self) -> str:
        token = self.token if self.token is not None else os.environ.get(BRIGHTDATA_TOKEN_ENV)
        token = (token or "").strip()
        if not token:
            raise ConfigError(
                f"no Bright Data API token: set the {BRIGHTDATA_TOKEN_ENV} environment variable "
                "(or pass token=...); create a token in the Bright Data control panel under "
                "Account settings > API keys"
            )
        return token

    def _read(self, token: str) -> Iterator[Document | Rejection]:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(
            base_url=self.base_url,
            headers=headers,
            transport=self.transport,
            timeout=self.request_timeout,
        ) as client:
            api = ScraperApi(
                client,
                token=token,
                step=self._step(),
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                sleep=self.sleep,
                clock=self.clock,
            )
            snapshot_id = self.snapshot_id
            if snapshot_id is None:
                snapshot_id = self._trigger(api)
            else:
                log.info(
                    "downloading snapshot %s; no collection is triggered%s",
                    snapshot_id,
                    f" (the {len(self.inputs)} inputs are not sent)" if self.inputs else "",
                )
            api.resume_hint = (
                f"the snapshot is not lost: read again with snapshot_id={snapshot_id!r} to "
                "download it without triggering (and paying for) a new collection"
            )
            dataset_id = api.wait_until_ready(snapshot_id) or self.dataset_id
            log.info("snapshot %s is ready; downloading it as %s", snapshot_id, self.format)
            yield from self._download(api, snapshot_id, dataset_id)

    def _trigger(self, api: ScraperApi) -> str:
        params = {
            "dataset_id": str(self.dataset_id),
            "include_errors": "true" if self.include_errors else "false",
        }
        if self.discover_by is not None:
            params.update(type="discover_new", discover_by=self.discover_by)
        if self.limit_per_input is not None:
            params["limit_per_input"] = str(self.limit_per_input)
        snapshot_id = api.trigger(params, self.inputs)
        log.info(
            "triggered a collection of %d inputs on dataset %s: snapshot %s (to read it again "
            "without paying for a new collection, pass snapshot_id=%r)",
            len(self.inputs),
            self.dataset_id,
            snapshot_id,
            snapshot_id,
        )
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot_id)
        return snapshot_id

    def _download(
        self, api: ScraperApi, snapshot_id: str, dataset_id: str | None
    ) -> Iterator[Document | Rejection]:
        metadata = {"snapshot_id": snapshot_id, "dataset_id": dataset_id}
        url = f"{self.base_url}/datasets/v3/snapshot/{snapshot_id}"

        def maker(where: str, offset: int) -> SnapshotMaker:
            return SnapshotMaker(
                path=Path(snapshot_id),
                step=self._step(),
                text_field=self.text_field,
                error_key=self.error_key,
                url=where,
                metadata=metadata,
                offset=offset,
            )

        params: dict[str, str] = {"format": self.format}
        if self.batch_size is None:
            yield from stream_part(api, snapshot_id, params, maker(url, 0), self.format)
            return
        params["batch_size"] = str(self.batch_size)
        offset, part, parts = 0, 1, 1
        while part <= parts:
            where = f"{url}?batch_size={self.batch_size}&part={part}"
            part_params = {**params, "part": str(part)}
            count = yield from stream_part(
                api, snapshot_id, part_params, maker(where, offset), self.format
            )
            if count is None:  # the snapshot is empty
                return
            if part == 1:
                parts = api.part_count(snapshot_id, params)
                log.info("snapshot %s comes in %d parts", snapshot_id, parts)
            offset, part = offset + count, part + 1
