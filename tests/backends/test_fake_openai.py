"""The fake API itself: the real SDK, validating strictly, accepts every answer it gives."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.backends.conftest import SECRET
from tests.backends.fake_openai import (
    BASE_MODELS,
    FakeClock,
    FakeOpenAI,
    Fault,
    JobScript,
    SimulatedCrash,
)

SCRIPT = JobScript(phases=(("validating_files", 10.0), ("running", 60.0)), steps=3)


@pytest.fixture
def sdk() -> Iterator[tuple[openai.OpenAI, FakeOpenAI]]:
    """A strict SDK client (responses validated against its types) on a fresh fake."""
    fake = FakeOpenAI(clock=FakeClock(), script=SCRIPT)
    client = openai.OpenAI(
        api_key=SECRET,
        base_url=fake.base_url,
        max_retries=0,
        http_client=httpx.Client(transport=fake.transport),
        _strict_response_validation=True,
    )
    with client:
        yield client, fake


def test_files_uploads_jobs_events_checkpoints_and_models_parse_strictly(
    sdk: tuple[openai.OpenAI, FakeOpenAI],
) -> None:
    """Each endpoint's answer is accepted by the SDK's strict validation, end to end."""
    client, fake = sdk
    data = b'{"messages": []}\n'
    created = client.files.create(file=("a.jsonl", data), purpose="fine-tune")
    assert client.files.retrieve(created.id).filename == "a.jsonl"
    assert [item.id for item in client.files.list(purpose="fine-tune").data] == [created.id]
    assert client.files.content(created.id).content == data
    upload = client.uploads.create(
        bytes=len(data), filename="b.jsonl", mime_type="application/jsonl", purpose="fine-tune"
    )
    part = client.uploads.parts.create(upload.id, data=data)
    done = client.uploads.complete(upload.id, part_ids=[part.id])
    assert done.status == "completed" and done.file is not None and done.file.bytes == len(data)
    job = client.fine_tuning.jobs.create(
        model=BASE_MODELS[0], training_file=created.id, metadata={"run": "r1"}
    )
    assert job.status == "validating_files"
    assert client.fine_tuning.jobs.list(metadata={"run": "r1"}).data[0].id == job.id
    assert client.fine_tuning.jobs.list(metadata={"run": "other"}).data == []
    fake.clock.sleep(100)
    finished = client.fine_tuning.jobs.retrieve(job.id)
    assert finished.status == "succeeded" and finished.fine_tuned_model
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert [e.data["step"] for e in events if e.type == "metrics"] == [3, 2, 1]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert {c.step_number for c in checkpoints} == {1, 3}
    assert finished.fine_tuned_model in {m.id for m in client.models.list().data}
    assert client.models.retrieve(finished.fine_tuned_model).owned_by == "fake-org"


def test_pause_resume_cancel(sdk: tuple[openai.OpenAI, FakeOpenAI]) -> None:
    """Pause stops the clock of a job, resume restarts it, cancel ends it.

    The SDK's status type has no ``paused`` (strict validation refuses it),
    which is why the backend parses leniently and treats unknown statuses as
    not final.
    """
    client, fake = sdk
    lenient = openai.OpenAI(
        api_key=SECRET,
        base_url=fake.base_url,
        max_retries=0,
        http_client=httpx.Client(transport=fake.transport),
    )
    file = client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE_MODELS[0], training_file=file.id)
    with pytest.raises(openai.APIResponseValidationError):
        client.fine_tuning.jobs.pause(job.id)
    with lenient:
        assert lenient.fine_tuning.jobs.retrieve(job.id).status == "paused"
    fake.clock.sleep(1000)
    assert client.fine_tuning.jobs.resume(job.id).status == "validating_files"
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"


def test_errors_have_the_real_shape(sdk: tuple[openai.OpenAI, FakeOpenAI]) -> None:
    """Errors parse into the SDK's exceptions with message, type, code and param."""
    client, fake = sdk
    with pytest.raises(openai.NotFoundError) as missing:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert missing.value.param == "fine_tuning_job_id"
    with pytest.raises(openai.BadRequestError) as bad:
        client.fine_tuning.jobs.create(model=BASE_MODELS[0], training_file="file-nope")
    assert (bad.value.code, bad.value.param) == ("invalid_file_id", "training_file")
    fake.inject("models.list", Fault.http(429, "insufficient_quota", type="insufficient_quota"))
    with pytest.raises(openai.RateLimitError) as quota:
        client.models.list()
    assert (quota.value.code, quota.value.type) == ("insufficient_quota", "insufficient_quota")


def test_faults_and_crashes_fire_once_where_asked(sdk: tuple[openai.OpenAI, FakeOpenAI]) -> None:
    """An injected timeout fires on its route once; a crash fires at the n-th call only."""
    client, fake = sdk
    fake.inject("models.list", Fault.timeout())
    with pytest.raises(openai.APITimeoutError):
        client.models.list()
    assert client.models.list().data
    fake.crash_at(2, after=True)
    client.models.list()
    with pytest.raises(SimulatedCrash):
        client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    assert len(fake.training_files) == 1  # the server acted before the "kill"
