"""BrightDataSource against respx routes faking Bright Data's Web Scraper API (datasets v3).

The routes answer as the real API does: the trigger returns a snapshot id,
progress reports starting/running/ready/failed, the snapshot download answers
202 while it is being built, 400 "Snapshot is expired"/"Snapshot is empty",
404 "Snapshot does not exist" for an unknown id, and 429 when rate-limited.
The sources are built without a transport: respx intercepts httpx's own, so
they stay picklable.  Waiting goes through a fake clock, so no test sleeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import respx

from finetune_web.errors import ConfigError, SourceError
from finetune_web.pipeline import describe_component
from finetune_web.records import Document, Rejection
from finetune_web.sources.brightdata import BRIGHTDATA_TOKEN_ENV, BrightDataSource
from finetune_web.testing import check_source

SID = "s_m4x7enmven8djfqak"
DATASET = "gd_l7q7dkf244hwjntr0"
TOKEN = "bd-token-7f3a9c21e5d84b6f"
API = "https://api.brightdata.com"
KEYWORD_FILE = "brightdata_amazon/amazon_global_dataset_by_keyword.json"

Handler = Callable[[httpx.Request], httpx.Response]


@attrs.frozen
class Answer:
    """One scripted HTTP answer, built afresh for every request it answers."""

    status: int
    body: Any = b""
    headers: dict[str, str] = attrs.field(factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if isinstance(self.body, bytes):
            return httpx.Response(self.status, content=self.body, headers=self.headers)
        if isinstance(self.body, str):
            headers = {"content-type": "text/plain", **self.headers}
            return httpx.Response(self.status, text=self.body, headers=headers)
        return httpx.Response(self.status, json=self.body, headers=self.headers)


def progress(status: str, **extra: Any) -> Answer:
    """The progress endpoint's answer for ``status``."""
    return Answer(200, {"snapshot_id": SID, "dataset_id": DATASET, "status": status, **extra})


def jsonl(records: list[Any]) -> Answer:
    """A 200 snapshot download holding ``records`` as JSON Lines."""
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    return Answer(200, body, {"content-type": "application/jsonl"})


NOT_READY = Answer(
    202, {"status": "building", "message": "Snapshot is not ready yet, try again in 10s"}
)
TOO_MANY = Answer(429, {"error": "Too many requests"})
PRODUCTS = [
    {"title": f"Product {n}", "asin": f"B0{n:08d}", "input": {"keyword": "caliper"}}
    for n in range(5)
]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """A respx router standing in for api.brightdata.com while the test runs.

    Any request to another host, or to a path no route names, fails the test.
    """
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        yield mock


class FakeBrightData:
    """The datasets v3 API as respx routes: scripted answers per endpoint (the last one repeats).

    Routes: POST /datasets/v3/trigger, GET /datasets/v3/progress/{id},
    GET /datasets/v3/snapshot/{id}/parts, GET /datasets/v3/snapshot/{id}, and a
    404 "Snapshot does not exist" for any other snapshot id.  The router keeps
    every request in the order it came.
    """

    def __init__(
        self,
        router: respx.MockRouter,
        *,
        trigger: Sequence[Handler] | None = None,
        progress_answers: Sequence[Handler] | None = None,
        snapshot: Sequence[Handler] | dict[str, list[Handler]] | None = None,
        parts: int = 1,
    ) -> None:
        self.router = router
        self.trigger = list(trigger or [Answer(200, {"snapshot_id": SID})])
        self.progress = list(progress_answers or [progress("ready")])
        snapshot = [jsonl(PRODUCTS)] if snapshot is None else snapshot
        self.snapshot = snapshot if isinstance(snapshot, dict) else list(snapshot)
        router.post("/datasets/v3/trigger", name="trigger").mock(side_effect=self._trigger)
        router.get(f"/datasets/v3/progress/{SID}", name="progress").mock(side_effect=self._progress)
        router.get(f"/datasets/v3/snapshot/{SID}/parts", name="parts").respond(
            200, json={"parts": parts}
        )
        router.get(f"/datasets/v3/snapshot/{SID}", name="snapshot").mock(side_effect=self._snapshot)
        router.get(path__regex=r"^/datasets/v3/snapshot/[^/]+$", name="unknown").respond(
            404, text="Snapshot does not exist"
        )

    def _trigger(self, request: httpx.Request) -> httpx.Response:
        return self._next(self.trigger)(request)

    def _progress(self, request: httpx.Request) -> httpx.Response:
        return self._next(self.progress)(request)

    def _snapshot(self, request: httpx.Request) -> httpx.Response:
        queue = self.snapshot
        if isinstance(queue, dict):
            queue = queue[request.url.params["part"]]
        return self._next(queue)(request)

    @staticmethod
    def _next(queue: list[Handler]) -> Handler:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    @property
    def requests(self) -> list[httpx.Request]:
        """Every request sent, in order (those answered by a raised error too)."""
        return [call.request for call in self.router.calls]

    @property
    def statuses(self) -> list[int]:
        """The status of every answer, in order (raised errors have none)."""
        return [call.response.status_code for call in self.router.calls if call.has_response]

    def sent(self, path_end: str) -> list[httpx.Request]:
        """The requests whose path ends with ``path_end``."""
        return [r for r in self.requests if r.url.path.endswith(path_end)]


class FakeClock:
    """Monotonic time that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class BrokenStream(httpx.SyncByteStream):
    """A body that sends some bytes, then fails as a reset connection does."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.ReadError("connection reset by peer")


def source(clock: FakeClock, **options: Any) -> BrightDataSource:
    """A source (no transport: respx answers) that waits on ``clock``."""
    settings: dict[str, Any] = {"snapshot_id": SID} if "inputs" not in options else {}
    settings.update(options)
    return BrightDataSource(token=TOKEN, sleep=clock.sleep, clock=clock, **settings)


def trigger_source(clock: FakeClock, **options: Any) -> BrightDataSource:
    """A source that triggers a keyword discovery collection."""
    return source(
        clock,
        dataset_id=DATASET,
        inputs=[{"keyword": "digital caliper"}, {"keyword": "tape measure"}],
        **options,
    )


def documents(items: Sequence[object]) -> list[Document]:
    """The documents among ``items``."""
    return [item for item in items if isinstance(item, Document)]


def test_trigger_polls_progress_then_waits_for_the_snapshot(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """Trigger -> progress running, running, ready -> download 202, 202, 200.

    The trigger carries the inputs as a JSON array, the discovery options as
    query parameters and the token as a Bearer header; every wait is one poll
    interval (10 s by default); the snapshot id is logged and passed to
    on_snapshot; documents carry the snapshot and dataset ids.
    """
    caplog.set_level(logging.INFO, logger="finetune_web.sources.brightdata")
    fake = FakeBrightData(
        router,
        progress_answers=[progress("running"), progress("running"), progress("ready")],
        snapshot=[NOT_READY, NOT_READY, jsonl(PRODUCTS)],
    )
    clock, seen = FakeClock(), list[str]()
    items = list(
        trigger_source(
            clock, discover_by="keyword", limit_per_input=5, on_snapshot=seen.append
        ).read()
    )

    (post,) = fake.sent("/trigger")
    assert post.method == "POST"
    assert dict(post.url.params) == {
        "dataset_id": DATASET,
        "include_errors": "true",
        "type": "discover_new",
        "discover_by": "keyword",
        "limit_per_input": "5",
    }
    assert json.loads(post.content) == [{"keyword": "digital caliper"}, {"keyword": "tape measure"}]
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert len(fake.sent(f"/progress/{SID}")) == 3
    downloads = fake.sent(f"/snapshot/{SID}")
    assert len(downloads) == 3 and all(r.url.params["format"] == "jsonl" for r in downloads)
    assert clock.sleeps == [10.0, 10.0, 10.0, 10.0]
    assert seen == [SID]
    assert f"snapshot_id={SID!r}" in caplog.text

    assert [d.data for d in documents(items)] == PRODUCTS
    first = items[0]
    assert isinstance(first, Document)
    assert first.id == f"{SID}#0" and first.text is None
    assert first.metadata == {"snapshot_id": SID, "dataset_id": DATASET}
    assert first.location is not None
    assert (first.location.origin, first.location.line) == (f"{API}/datasets/v3/snapshot/{SID}", 1)
    assert [item.id for item in documents(items)] == [f"{SID}#{n}" for n in range(5)]


def test_a_failed_collection_names_the_snapshot_and_the_reason(router: respx.MockRouter) -> None:
    """Progress status failed raises SourceError with the snapshot id and error_message."""
    fake = FakeBrightData(
        router,
        progress_answers=[
            progress("running"),
            progress("failed", error_message="All inputs failed: bad_input"),
        ],
    )
    with pytest.raises(SourceError) as caught:
        list(trigger_source(FakeClock()).read())
    assert SID in str(caught.value) and "All inputs failed: bad_input" in str(caught.value)
    assert not fake.sent(f"/snapshot/{SID}")


def test_an_expired_snapshot_is_a_clear_error(router: respx.MockRouter) -> None:
    """400 "Snapshot is expired" raises SourceError saying so (not retried)."""
    fake = FakeBrightData(router, snapshot=[Answer(400, "Snapshot is expired")])
    with pytest.raises(SourceError, match="expired") as caught:
        list(source(FakeClock()).read())
    assert SID in str(caught.value)
    assert len(fake.sent(f"/snapshot/{SID}")) == 1


def test_an_empty_snapshot_gives_no_records_and_a_warning(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """400 "Snapshot is empty" is a collection that found nothing: zero records, one warning."""
    FakeBrightData(router, snapshot=[Answer(400, {"error": "Snapshot is empty"})])
    assert list(source(FakeClock()).read()) == []
    assert any(r.levelno == logging.WARNING and "empty" in r.message for r in caplog.records)


def test_an_unknown_snapshot_is_a_clear_error(router: respx.MockRouter) -> None:
    """404 "Snapshot does not exist" raises SourceError telling to check the snapshot_id."""
    FakeBrightData(router, snapshot=[Answer(404, "Snapshot does not exist")])
    with pytest.raises(SourceError, match=r"does not exist.*check the snapshot_id"):
        list(source(FakeClock()).read())


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [("7", 7.0), ("1", 2.0), ("86400", 300.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 2.0)],
)
def test_429_waits_for_retry_after_when_longer_than_the_backoff(
    router: respx.MockRouter, retry_after: str, waited: float
) -> None:
    """A 429 is retried after Retry-After when that is longer than 2 s (capped at 5 minutes)."""
    limited = Answer(429, {"error": "Too many requests"}, {"retry-after": retry_after})
    FakeBrightData(router, progress_answers=[limited, progress("ready")])
    clock = FakeClock()
    assert len(list(source(clock).read())) == len(PRODUCTS)
    assert clock.sleeps == [waited]


def test_429_in_a_row_stops_well_before_the_ip_block(router: respx.MockRouter) -> None:
    """Five 429 answers in a row stop the read: five requests, waits 2, 4, 8, 16 s.

    Bright Data blocks an IP after 25 answers 429 within 5 minutes; the error
    says so and how to resume.
    """
    fake = FakeBrightData(router, progress_answers=[TOO_MANY])
    clock = FakeClock()
    with pytest.raises(SourceError, match="5 times in a row") as caught:
        list(source(clock).read())
    assert len(fake.requests) == 5
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0]
    assert "25" in str(caught.value) and f"snapshot_id={SID!r}" in str(caught.value)


def test_429_count_within_five_minutes_is_capped(router: respx.MockRouter) -> None:
    """429 answers between successes are counted over 5 minutes: at 20, nothing more is sent."""
    fake = FakeBrightData(router, progress_answers=[TOO_MANY, progress("running")] * 40)
    with pytest.raises(SourceError, match="20 times within 5 minutes"):
        list(source(FakeClock()).read())
    assert fake.statuses.count(429) == 20
    assert fake.statuses == [429, 200] * 19 + [429]


def test_429_window_slides(router: respx.MockRouter) -> None:
    """429 answers more than 5 minutes apart do not add up: the read goes on to the end."""
    FakeBrightData(
        router, progress_answers=[TOO_MANY, progress("running")] * 30 + [progress("ready")]
    )
    items = list(source(FakeClock(), poll_interval=120.0, timeout=1e6).read())
    assert len(items) == len(PRODUCTS)


def test_server_errors_are_retried_with_exponential_backoff(router: respx.MockRouter) -> None:
    """500, 502, 503 then success: retried after 2, 4 and 8 s."""
    FakeBrightData(
        router,
        progress_answers=[
            Answer(500, "oops"),
            Answer(502, "bad gateway"),
            Answer(503, ""),
            progress("ready"),
        ],
    )
    clock = FakeClock()
    assert len(list(source(clock).read())) == len(PRODUCTS)
    assert clock.sleeps == [2.0, 4.0, 8.0]


def test_retries_give_up_after_the_backoff_schedule(router: respx.MockRouter) -> None:
    """A request failing with 503 forever is sent 6 times (waits 2..32 s), then SourceError."""
    FakeBrightData(router, progress_answers=[Answer(503, "Service Unavailable")])
    clock = FakeClock()
    with pytest.raises(SourceError, match=r"gave up after 6 attempts.*HTTP 503"):
        list(source(clock).read())
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_connection_errors_are_retried(router: respx.MockRouter) -> None:
    """A refused connection is retried like a 5xx."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    FakeBrightData(router, progress_answers=[refuse, refuse, progress("ready")])
    clock = FakeClock()
    assert len(list(source(clock).read())) == len(PRODUCTS)
    assert clock.sleeps == [2.0, 4.0]


def test_an_ambiguous_trigger_failure_is_not_sent_again(router: respx.MockRouter) -> None:
    """A 500 to the trigger may have started a paid collection: one POST, and an error saying so."""
    fake = FakeBrightData(
        router, trigger=[Answer(500, "Internal Server Error"), Answer(200, {"snapshot_id": SID})]
    )
    with pytest.raises(SourceError, match="may have started"):
        list(trigger_source(FakeClock()).read())
    assert len(fake.requests) == 1


def test_a_rate_limited_trigger_is_sent_again(router: respx.MockRouter) -> None:
    """A 429 to the trigger was not acted on: it is sent again after the backoff."""
    fake = FakeBrightData(router, trigger=[TOO_MANY, Answer(200, {"snapshot_id": SID})])
    clock = FakeClock()
    assert len(list(trigger_source(clock).read())) == len(PRODUCTS)
    assert len(fake.sent("/trigger")) == 2 and clock.sleeps == [2.0]


def test_a_reset_mid_body_restarts_the_part_without_duplicates(router: respx.MockRouter) -> None:
    """A body cut by a ReadError is downloaded again; records already yielded are not repeated."""
    body = jsonl(PRODUCTS).body
    cut = body.index(b"\n", body.index(b"\n") + 1) + 10  # two lines and a bit of the third

    def reset(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=BrokenStream([body[:cut]]))

    fake = FakeBrightData(router, snapshot=[reset, jsonl(PRODUCTS)])
    clock = FakeClock()
    items = list(source(clock).read())
    assert [d.data for d in documents(items)] == PRODUCTS
    assert [item.id for item in documents(items)] == [f"{SID}#{n}" for n in range(5)]
    assert len(fake.sent(f"/snapshot/{SID}")) == 2
    assert clock.sleeps == [2.0]


def test_a_cut_last_line_is_rejected_and_nothing_is_lost(router: respx.MockRouter) -> None:
    """A last line cut mid-object becomes an invalid_json rejection naming its line."""
    body = jsonl(PRODUCTS[:3]).body + b'{"title": "Product 3", "asin": "B0'
    FakeBrightData(router, snapshot=[Answer(200, body, {"content-type": "application/jsonl"})])
    items = list(source(FakeClock()).read())
    assert [d.data for d in documents(items)] == PRODUCTS[:3]
    last = items[-1]
    assert isinstance(last, Rejection) and last.reason == "invalid_json"
    assert last.record_id == f"{SID}#3"
    assert last.location is not None and last.location.line == 4
    assert last.message.startswith(f"{API}/datasets/v3/snapshot/{SID}:4: invalid JSON")
    assert last.record == '{"title": "Product 3", "asin": "B0'


def test_a_cut_json_array_keeps_the_records_before_the_cut(router: respx.MockRouter) -> None:
    """format=json: a body cut inside the array yields its whole records, then one rejection."""
    body = json.dumps(PRODUCTS[:3], indent=1).encode()[:-40]
    FakeBrightData(router, snapshot=[Answer(200, body, {"content-type": "application/json"})])
    items = list(source(FakeClock(), format="json").read())
    assert [d.data for d in documents(items)] == PRODUCTS[:2]
    last = items[-1]
    assert isinstance(last, Rejection) and last.reason == "invalid_json"
    assert last.details == {"records_read": 2, "rest_of_file": True}


def test_an_html_page_instead_of_records_is_a_clear_error(router: respx.MockRouter) -> None:
    """A 200 text/html answer (a proxy's or login page) raises SourceError naming it."""
    page = Answer(200, b"<html><body>Please log in</body></html>", {"content-type": "text/html"})
    FakeBrightData(router, snapshot=[page])
    with pytest.raises(SourceError, match=r"HTML page \(text/html\)"):
        list(source(FakeClock()).read())


def test_parts_are_downloaded_in_order_and_counted_across(router: respx.MockRouter) -> None:
    """batch_size downloads part 1, asks how many parts there are, then the rest, in order."""
    fake = FakeBrightData(
        router,
        snapshot={
            "1": [NOT_READY, jsonl(PRODUCTS[:2])],
            "2": [jsonl(PRODUCTS[2:4])],
            "3": [jsonl(PRODUCTS[4:])],
        },
        parts=3,
    )
    items = list(source(FakeClock(), batch_size=1000).read())
    assert [d.data for d in documents(items)] == PRODUCTS
    assert [item.id for item in documents(items)] == [f"{SID}#{n}" for n in range(5)]
    third = items[2].location
    assert third is not None
    assert (third.origin, third.line, third.index) == (
        f"{API}/datasets/v3/snapshot/{SID}?batch_size=1000&part=2",
        1,
        2,
    )
    asked = [(r.url.path.rsplit("/", 1)[-1], dict(r.url.params)) for r in fake.requests[1:]]
    assert asked == [
        (SID, {"format": "jsonl", "batch_size": "1000", "part": "1"}),
        (SID, {"format": "jsonl", "batch_size": "1000", "part": "1"}),
        ("parts", {"format": "jsonl", "batch_size": "1000"}),
        (SID, {"format": "jsonl", "batch_size": "1000", "part": "2"}),
        (SID, {"format": "jsonl", "batch_size": "1000", "part": "3"}),
    ]


def test_resume_by_snapshot_id_triggers_nothing(router: respx.MockRouter) -> None:
    """Given snapshot_id (even with inputs), nothing is triggered; the Source contract holds."""
    fake = FakeBrightData(router)
    resumed = source(
        FakeClock(), dataset_id=DATASET, inputs=[{"keyword": "caliper"}], snapshot_id=SID
    )
    items = check_source(resumed)  # reads twice: same items both times
    assert [d.data for d in documents(items)] == PRODUCTS
    assert not fake.sent("/trigger")
    assert {r.method for r in fake.requests} == {"GET"}


def test_each_read_of_a_trigger_source_triggers_and_nothing_before_iterating(
    router: respx.MockRouter,
) -> None:
    """read() sends nothing until iterated; each full read of an inputs source triggers once."""
    fake = FakeBrightData(router)
    triggering = trigger_source(FakeClock())
    pending = triggering.read()
    assert fake.requests == []
    list(pending)
    list(triggering.read())
    assert len(fake.sent("/trigger")) == 2


def test_failed_scrapes_become_rejections_with_their_code(router: respx.MockRouter) -> None:
    """Records carrying error_code are scrape_error rejections holding the code and the input."""
    failed = {
        "error_code": "dead_page",
        "error": "Page not found",
        "input": {"url": "https://a.example/2"},
    }
    FakeBrightData(router, snapshot=[jsonl([PRODUCTS[0], failed, PRODUCTS[1]])])
    items = list(source(FakeClock()).read())
    assert [type(item).__name__ for item in items] == ["Document", "Rejection", "Document"]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "scrape_error" and rejection.record_id == f"{SID}#1"
    assert rejection.details["error_code"] == "dead_page"
    assert rejection.details["input"] == {"url": "https://a.example/2"}


def test_the_progress_timeout_says_how_to_resume(router: respx.MockRouter) -> None:
    """A collection still running after `timeout` seconds raises, naming snapshot_id to resume."""
    fake = FakeBrightData(router, progress_answers=[progress("running")])
    clock = FakeClock()
    with pytest.raises(SourceError, match="60 s timeout") as caught:
        list(source(clock, timeout=60.0).read())
    assert f"snapshot_id={SID!r}" in str(caught.value)
    assert sum(clock.sleeps) == 60.0 and len(fake.requests) == 7


def test_a_download_that_stays_202_past_the_timeout_says_how_to_resume(
    router: respx.MockRouter,
) -> None:
    """Answers 202 for longer than `timeout` raise, naming snapshot_id to download it later."""
    FakeBrightData(router, snapshot=[NOT_READY])
    clock = FakeClock()
    with pytest.raises(SourceError, match="30 s timeout") as caught:
        list(source(clock, timeout=30.0, poll_interval=7.0).read())
    assert f"snapshot_id={SID!r}" in str(caught.value)
    assert clock.sleeps == [7.0, 7.0, 7.0, 7.0, 2.0]


@pytest.mark.parametrize("body_format", ["json", "jsonl"])
def test_real_amazon_snapshot_gives_367_documents(
    router: respx.MockRouter, realdata: Path, body_format: str
) -> None:
    """Bright Data's real Amazon keyword output, served as the snapshot, gives all 367 products."""
    path = realdata / KEYWORD_FILE
    expected = json.loads(path.read_text(encoding="utf-8"))
    if body_format == "json":
        answer = Answer(200, path.read_bytes(), {"content-type": "application/json"})
    else:
        answer = jsonl(expected)
    fake = FakeBrightData(router, snapshot=[answer])
    items = list(source(FakeClock(), format=body_format).read())
    assert len(documents(items)) == len(items) == 367
    assert [d.data for d in documents(items)] == expected
    assert fake.requests[-1].url.params["format"] == body_format


def test_the_token_never_shows(router: respx.MockRouter, caplog: pytest.LogCaptureFixture) -> None:
    """The token is in no repr, description, log line or error, even when the server echoes it."""
    caplog.set_level(logging.DEBUG)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": f"bad token: {request.headers['authorization']}"})

    FakeBrightData(
        router, trigger=[echo], progress_answers=[Answer(503, "busy"), progress("ready")]
    )
    triggering = trigger_source(FakeClock())
    with pytest.raises(SourceError) as caught:
        list(triggering.read())
    assert "Bearer ***" in str(caught.value) and "BRIGHTDATA_API_TOKEN" in str(caught.value)
    shown = [str(caught.value), repr(caught.value), repr(triggering), caplog.text]
    shown.append(json.dumps(describe_component(triggering)))
    list(source(FakeClock()).read())  # a retried request logs a warning
    shown.append(caplog.text)
    assert "retrying" in caplog.text
    assert all(TOKEN not in text for text in shown)


def test_a_missing_token_names_the_environment_variable(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token and no BRIGHTDATA_API_TOKEN: ConfigError from read(), before any request."""
    monkeypatch.delenv(BRIGHTDATA_TOKEN_ENV, raising=False)
    fake = FakeBrightData(router)
    tokenless = BrightDataSource(snapshot_id=SID)
    with pytest.raises(ConfigError, match=BRIGHTDATA_TOKEN_ENV):
        tokenless.read()
    assert fake.requests == []


def test_the_token_comes_from_the_environment(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without token=..., BRIGHTDATA_API_TOKEN is sent as the Bearer token."""
    monkeypatch.setenv(BRIGHTDATA_TOKEN_ENV, "from-the-environment")
    fake = FakeBrightData(router)
    clock = FakeClock()
    reader = BrightDataSource(snapshot_id=SID, sleep=clock.sleep, clock=clock)
    list(reader.read())
    assert {r.headers["authorization"] for r in fake.requests} == {"Bearer from-the-environment"}


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({}, "give inputs"),
        ({"inputs": [{"url": "https://a.example"}]}, "dataset_id is needed"),
        ({"snapshot_id": SID, "batch_size": 10}, "at least 1,000"),
        ({"snapshot_id": SID, "format": "csv"}, "'jsonl' or 'json'"),
        ({"snapshot_id": "../../etc"}, "not a snapshot id"),
        ({"dataset_id": DATASET, "inputs": "https://a.example"}, "list of objects"),
        ({"dataset_id": DATASET, "inputs": ["https://a.example"]}, r"inputs\[0\] is a str"),
        ({"snapshot_id": SID, "poll_interval": 0}, "poll_interval must be greater than 0"),
        ({"snapshot_id": SID, "base_url": "api.brightdata.com"}, "https://"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], says: str) -> None:
    """Contradictory or invalid options fail when the source is built, saying what to give."""
    with pytest.raises(ConfigError, match=says):
        BrightDataSource(**options)
