"""Fault injection: what is retried (and how long it waits), what is never retried, job failures."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from finetune_web.backends import (
    DailyRateLimitError,
    FineTuneJobError,
    InvalidTrainingFileError,
    OpenAIBackend,
    ProviderError,
    QuotaExceededError,
    TrainingNotAvailableError,
)
from finetune_web.records import Example
from tests.backends.conftest import SECRET
from tests.backends.fake_openai import FakeClock, FakeOpenAI, Fault, JobScript

Factory = Callable[..., OpenAIBackend]


def _one_of_each(fake: FakeOpenAI) -> None:
    assert set(fake.files_by_content().values()) == {1}
    assert len(fake.jobs) == 1


def test_429_waits_as_long_as_retry_after_says(
    make_backend: Factory, fake: FakeOpenAI, clock: FakeClock, train: list[Example]
) -> None:
    """A 429 rate limit with retry-after: 7 waits exactly 7 s, then the upload succeeds."""
    fake.inject(
        "files.create",
        Fault.http(429, "rate_limit_exceeded", type="requests", headers={"retry-after": "7"}),
    )
    make_backend().fine_tune(train)
    assert clock.sleeps[0] == 7.0
    assert fake.count("files.create") == 2
    _one_of_each(fake)


def test_retry_after_is_capped_at_120_seconds_and_ms_is_read(
    make_backend: Factory, fake: FakeOpenAI, clock: FakeClock, train: list[Example]
) -> None:
    """retry-after: 900 waits 120 s; retry-after-ms: 2500 waits 2.5 s."""
    fake.inject(
        "files.list",
        Fault.http(429, "rate_limit_exceeded", headers={"retry-after": "900"}),
        Fault.http(429, "rate_limit_exceeded", headers={"retry-after-ms": "2500"}),
    )
    make_backend().fine_tune(train)
    assert clock.sleeps[:2] == [120.0, 2.5]


def test_500_and_503_are_retried_with_growing_waits(
    make_backend: Factory, fake: FakeOpenAI, clock: FakeClock, train: list[Example]
) -> None:
    """Server errors while polling are retried after 1 s, then 2 s; the run still succeeds."""
    backend = make_backend()
    fake.inject("jobs.retrieve", Fault(status=500), Fault.http(503, type="server_error"))
    model = backend.fine_tune(train)
    assert model.model_id
    assert clock.sleeps[:2] == [1.0, 2.0]


def test_timeouts_are_retried(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """A read timeout on listing files is retried."""
    fake.inject("files.list", Fault.timeout(), Fault.timeout())
    make_backend().fine_tune(train)
    assert fake.count("files.list") == 3
    _one_of_each(fake)


@pytest.mark.parametrize("after", [False, True], ids=["lost-request", "lost-response"])
def test_connection_reset_during_upload_never_uploads_twice(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example], after: bool
) -> None:
    """A reset while uploading is retried; if the server got the file, it is found, not resent."""
    fake.inject("files.create", Fault.reset(after=after))
    make_backend().fine_tune(train)
    assert fake.count("files.create") == (1 if after else 2)
    _one_of_each(fake)


def test_reset_during_a_multipart_upload_part(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """Above the threshold the Uploads API is used in parts; a reset part is sent again."""
    fake.inject("uploads.parts", Fault.reset())
    backend = make_backend(upload_threshold=1000, part_size=700)
    backend.fine_tune(train)
    size = (backend.run_dir / "train.jsonl").stat().st_size
    parts = -(-size // 700)
    assert fake.count("uploads.parts") == parts + 1
    assert fake.count("uploads.create") == 1 and fake.count("files.create") == 0
    _one_of_each(fake)


def test_timeout_after_the_server_created_the_job_finds_it_by_metadata(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """jobs.create times out after the job was made: the backend lists by run id, no 2nd job."""
    fake.inject("jobs.create", Fault.timeout(after=True))
    model = make_backend().fine_tune(train)
    assert fake.count("jobs.create") == 1 and fake.count("jobs.list") == 1
    assert len(fake.jobs) == 1 and model.job_id in fake.jobs


def test_500_before_the_job_was_made_creates_it_once(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """A 500 on jobs.create (job not made): lookup finds nothing, create is sent again, once."""
    fake.inject("jobs.create", Fault(status=500))
    make_backend().fine_tune(train)
    assert fake.count("jobs.create") == 2 and fake.count("jobs.list") == 1
    assert len(fake.jobs) == 1


def test_rerun_after_a_lost_create_response_finds_the_job(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """With no retries left the run fails; the re-run looks the job up by metadata first."""
    fake.inject("jobs.create", Fault.timeout(after=True))
    with pytest.raises(ProviderError, match="timed out"):
        make_backend(retry={"max_attempts": 1}).fine_tune(train)
    model = make_backend().fine_tune(train)
    assert fake.count("jobs.create") == 1 and len(fake.jobs) == 1
    assert model.job_id in fake.jobs


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (429, "insufficient_quota", QuotaExceededError),
        (429, "daily_rate_limit_exceeded", DailyRateLimitError),
        (403, "training_not_available", TrainingNotAvailableError),
    ],
)
def test_never_retried_codes_raise_their_own_error(
    make_backend: Factory,
    fake: FakeOpenAI,
    clock: FakeClock,
    train: list[Example],
    status: int,
    code: str,
    cls: type[ProviderError],
) -> None:
    """insufficient_quota, daily_rate_limit_exceeded, training_not_available: one call, no wait."""
    fake.inject("jobs.create", Fault.http(status, code, type=code, message="No."))
    with pytest.raises(cls) as caught:
        make_backend().fine_tune(train)
    error = caught.value
    assert (error.code, error.status) == (code, status)
    assert code in str(error) and "not retried" in str(error)
    assert fake.count("jobs.create") == 1 and clock.sleeps == []
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.code, str(again)) == (cls, code, str(error))


def test_training_not_available_points_to_other_paths(
    tmp_path: object, clock: FakeClock, train: list[Example], make_backend: Factory
) -> None:
    """A blocked account (403 training_not_available) explains the shutdown and the ways out."""
    fake = FakeOpenAI(clock=clock, training_available=False)
    backend = make_backend(http_transport=fake.transport)
    with pytest.raises(TrainingNotAvailableError) as caught:
        backend.fine_tune(train)
    text = str(caught.value)
    assert "self-serve fine-tuning is closed" in text
    assert "local backend" in text and "base_url" in text
    assert isinstance(caught.value, PermissionError)


def test_a_failed_job_raises_its_code_message_and_param(
    make_backend: Factory, clock: FakeClock, train: list[Example]
) -> None:
    """A job that fails with an error object raises FineTuneJobError carrying all three."""
    error = {
        "code": "invalid_training_file",
        "message": "The job failed due to an invalid training file.",
        "param": "training_file",
    }
    fake = FakeOpenAI(
        clock=clock,
        script=JobScript(phases=(("validating_files", 30.0),), outcome="failed", error=error),
    )
    with pytest.raises(FineTuneJobError) as caught:
        make_backend(http_transport=fake.transport).fine_tune(train)
    failure = caught.value
    assert (failure.code, failure.param) == ("invalid_training_file", "training_file")
    assert failure.job_id in fake.jobs
    assert "invalid training file" in str(failure) and failure.job_id in str(failure)


def test_a_400_about_the_file_is_an_invalid_file_error(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """jobs.create answering 400 for param training_file raises InvalidTrainingFileError."""
    fake.inject(
        "jobs.create",
        Fault.http(
            400, "invalid_file_format", param="training_file", message="Invalid file format."
        ),
    )
    with pytest.raises(InvalidTrainingFileError, match="Invalid file format") as caught:
        make_backend().fine_tune(train)
    assert caught.value.param == "training_file" and isinstance(caught.value, ValueError)


def test_retries_run_out(
    make_backend: Factory, fake: FakeOpenAI, clock: FakeClock, train: list[Example]
) -> None:
    """Six 503s in a row give up with the status and the number of attempts."""
    fake.inject("files.list", *[Fault(status=503)] * 6)
    with pytest.raises(ProviderError, match="after 6 attempts") as caught:
        make_backend().fine_tune(train)
    assert caught.value.status == 503
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_401_is_not_retried_and_hides_the_key(
    make_backend: Factory, fake: FakeOpenAI, clock: FakeClock, train: list[Example]
) -> None:
    """A 401 whose message echoes the key raises at once, with a hint and the key masked."""
    fake.inject(
        "files.list",
        Fault.http(401, "invalid_api_key", message=f"Incorrect API key provided: {SECRET}."),
    )
    with pytest.raises(ProviderError, match="OPENAI_API_KEY") as caught:
        make_backend().fine_tune(train)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    assert clock.sleeps == []
