"""OpenAIBackend against the fake API: the happy paths, options, job control and run state."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_web.backends import (
    STATE_FILE,
    AzureConfig,
    JobCancelledError,
    OpenAIBackend,
    OpenAIHyperparameters,
    PollSchedule,
    ProgressLine,
    RunStateError,
)
from finetune_web.errors import ConfigError, SourceError, UnknownModelError, ValidationError
from finetune_web.formats import write_chat_jsonl
from finetune_web.interfaces import Backend
from finetune_web.records import Example, Message, MetricEvent
from finetune_web.testing import check_backend
from tests.backends.conftest import MODEL, SECRET, SHORT, chat, preference
from tests.backends.fake_openai import FakeClock, FakeOpenAI

Factory = Callable[..., OpenAIBackend]


def test_fine_tune_uploads_creates_waits_and_returns_the_model(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example], validation: list[Example]
) -> None:
    """One run uploads each file once, creates one tagged job, streams metrics, returns a model."""
    seen: list[MetricEvent] = []
    backend = make_backend(suffix="blurbs", seed=7, hyperparameters={"n_epochs": 2})
    model = backend.fine_tune(train, validation, callbacks=[seen.append])
    (job,) = fake.jobs.values()
    assert model.model_id == job.body["fine_tuned_model"]
    assert model.model_id.startswith(f"ft:{MODEL}:fake-org:blurbs:")
    assert (model.base_model, model.backend, model.job_id) == (MODEL, "openai", job.body["id"])
    assert model.trained_tokens == job.body["trained_tokens"]
    assert model.result_files == tuple(job.body["result_files"])
    assert model.hyperparameters["n_epochs"] == 2
    assert [event.step for event in seen] == [1, 2, 3, 4, 5, 6]
    assert [event.step for event in model.metrics] == [1, 2, 3, 4, 5, 6]
    assert fake.count("files.create") == 2 and fake.count("jobs.create") == 1
    sent = job.body
    assert sent["metadata"] == {"finetune_web_run": model.metadata["run_id"]}
    assert (sent["suffix"], sent["seed"]) == ("blurbs", 7)
    assert sent["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    names = sorted(obj["filename"] for obj in fake.training_files)
    assert all(name.startswith("ftw-") for name in names)
    assert {name.rsplit("-", 1)[1] for name in names} == {"train.jsonl", "validation.jsonl"}


def test_rerun_of_a_finished_run_uploads_and_creates_nothing(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """Running the same backend on the same data again only checks the finished job."""
    first = make_backend().fine_tune(train)
    before = len(fake.calls)
    again = make_backend().fine_tune(train)
    assert again.model_id == first.model_id
    assert fake.calls[before:] == ["jobs.retrieve", "jobs.events"]


def test_same_content_uploaded_by_another_run_is_reused(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example], tmp_path: Path
) -> None:
    """A second run directory with the same data finds the file by its hash: no second upload."""
    make_backend(run_dir=tmp_path / "one").fine_tune(train)
    make_backend(run_dir=tmp_path / "two").fine_tune(train)
    assert fake.count("files.create") == 1
    assert len(fake.jobs) == 2


def test_dpo_sends_the_method_and_beta(make_backend: Factory, fake: FakeOpenAI) -> None:
    """A DPO run writes preference JSONL and sends method dpo with its hyperparameters."""
    backend = make_backend(method="dpo", hyperparameters=OpenAIHyperparameters(beta=0.2))
    backend.fine_tune([preference(i) for i in range(10)])
    (job,) = fake.jobs.values()
    assert job.body["method"]["type"] == "dpo"
    assert job.body["method"]["dpo"]["hyperparameters"]["beta"] == 0.2
    first_line = (backend.run_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert set(json.loads(first_line)) == {"input", "preferred_output", "non_preferred_output"}


def test_invalid_data_is_refused_before_any_call(make_backend: Factory, fake: FakeOpenAI) -> None:
    """Too few examples and a special token make a ValidationError naming them; nothing is sent."""
    bad = [chat(i) for i in range(3)]
    bad.append(
        Example(
            messages=[
                Message(role="user", content="hi <|endoftext|>"),
                Message(role="assistant", content="ok"),
            ]
        )
    )
    with pytest.raises(ValidationError) as caught:
        make_backend().fine_tune(bad)
    assert "refusing to upload the train file" in str(caught.value)
    assert "special token" in str(caught.value) and "at least 10" in str(caught.value)
    assert fake.calls == []


def test_fine_tune_files_uploads_an_existing_file(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example], tmp_path: Path
) -> None:
    """An existing JSONL file is validated and uploaded as it is."""
    path = tmp_path / "mine.jsonl"
    written = write_chat_jsonl(train, path)
    model = make_backend().fine_tune_files(path)
    (uploaded,) = fake.files_by_content()
    assert uploaded == written.sha256
    assert model.metadata["train_sha256"] == written.sha256


def test_unknown_provider_model_needs_validate_as(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """A model outside the table is refused with a hint; validate_as checks it as a known one."""
    with pytest.raises(UnknownModelError, match="validate_as"):
        make_backend(model="acme-chat-7b").fine_tune(train)
    fake.models["acme-chat-7b"] = dict(fake.models[MODEL], id="acme-chat-7b")
    model = make_backend(model="acme-chat-7b", validate_as="gpt-4o-mini").fine_tune(train)
    assert model.base_model == "acme-chat-7b"


def test_options_reject_unknown_fields_and_bad_values(tmp_path: Path) -> None:
    """Typos and out-of-range values fail at construction with a ConfigError."""
    with pytest.raises(ConfigError, match="accepted: n_epochs"):
        OpenAIBackend(model=MODEL, run_dir=tmp_path, hyperparameters={"epochs": 3})
    with pytest.raises(ConfigError, match="n_epochs"):
        OpenAIHyperparameters(n_epochs=0)
    with pytest.raises(ConfigError, match="batch_size"):
        OpenAIHyperparameters(batch_size=257)
    with pytest.raises(ConfigError, match="learning_rate_multiplier"):
        OpenAIHyperparameters(learning_rate_multiplier=0)
    with pytest.raises(ConfigError, match="beta"):
        OpenAIHyperparameters(beta=2.5)
    with pytest.raises(ConfigError, match="DPO"):
        OpenAIBackend(model=MODEL, run_dir=tmp_path, hyperparameters={"beta": 0.1})
    with pytest.raises(ConfigError, match="1 to 64"):
        OpenAIBackend(model=MODEL, run_dir=tmp_path, suffix="x" * 65)
    with pytest.raises(ConfigError, match="16"):
        OpenAIBackend(model=MODEL, run_dir=tmp_path, metadata={f"k{i}": "v" for i in range(16)})
    with pytest.raises(ConfigError, match="reserved"):
        OpenAIBackend(model=MODEL, run_dir=tmp_path, metadata={"finetune_web_run": "x"})
    with pytest.raises(ConfigError, match="not both"):
        OpenAIBackend(
            model=MODEL,
            run_dir=tmp_path,
            base_url="https://x",
            azure={"endpoint": "https://y", "api_version": "v"},
        )


def test_backend_keeps_the_contract_and_pickles_without_a_client(tmp_path: Path) -> None:
    """The backend implements Backend, pickles, and its repr and description hide the key."""
    backend = OpenAIBackend(model=MODEL, run_dir=tmp_path, api_key=SECRET, seed=3)
    assert isinstance(backend, Backend)
    check_backend(backend)
    assert pickle.loads(pickle.dumps(backend)) == backend
    assert SECRET not in repr(backend) and SECRET not in json.dumps(backend.describe())


def test_api_key_defaults_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without api_key the backend reads OPENAI_API_KEY; without either, a helpful error."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert OpenAIBackend(model=MODEL, run_dir=tmp_path).api_key == SECRET
    monkeypatch.delenv("OPENAI_API_KEY")
    backend = OpenAIBackend(model=MODEL, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        backend.fine_tune([chat(i) for i in range(10)])


def test_azure_uses_the_azure_client(tmp_path: Path, train: list[Example]) -> None:
    """With azure set, calls go to <endpoint>/openai/... with api-version and an api-key header."""
    clock = FakeClock()
    fake = FakeOpenAI(clock=clock, base_url="https://res.openai.azure.com/openai", script=SHORT)
    backend = OpenAIBackend(
        model=MODEL,
        run_dir=tmp_path,
        api_key=SECRET,
        azure=AzureConfig(
            endpoint="https://res.openai.azure.com", api_version="2025-04-01-preview"
        ),
        http_transport=fake.transport,
        sleep=clock.sleep,
        clock=clock,
    )
    model = backend.fine_tune(train)
    assert model.metadata["endpoint"] == "https://res.openai.azure.com"
    versions = {call.request.url.params.get("api-version") for call in fake.router.calls}
    assert versions == {"2025-04-01-preview"}
    assert set(fake.auth) == {SECRET}  # sent as the api-key header, not a bearer token
    rebuilt = OpenAIBackend.from_run_dir(tmp_path, api_key=SECRET, http_transport=fake.transport)
    assert rebuilt.azure == backend.azure
    assert rebuilt.status().status == "succeeded"


def test_azure_endpoint_defaults_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AzureConfig reads AZURE_OPENAI_ENDPOINT when no endpoint is given."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env.openai.azure.com")
    assert AzureConfig(api_version="v1").endpoint == "https://env.openai.azure.com"


def test_job_control_status_events_checkpoints_pause_resume_cancel(
    make_backend: Factory, fake: FakeOpenAI, clock: FakeClock, train: list[Example]
) -> None:
    """The run's job can be inspected and controlled from a backend rebuilt from its run dir."""
    backend = make_backend()
    backend.fine_tune(train)
    control = OpenAIBackend.from_run_dir(
        backend.run_dir, api_key=SECRET, http_transport=fake.transport
    )
    assert control.status().status == "succeeded"
    steps = [c.step for c in control.checkpoints()]
    assert steps == [2, 6]
    events = control.events()
    assert [e.metrics.step for e in events if e.metrics] == [1, 2, 3, 4, 5, 6]
    assert events[0].message.startswith("Created fine-tuning job")


def test_pause_resume_and_cancel_a_running_job(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """Pausing, resuming and cancelling act on the run's job; a cancelled job raises."""
    backend = make_backend()
    actions: list[str] = []

    def control(event: MetricEvent) -> None:
        if event.step == 2 and not actions:
            actions.append(backend.pause().status)
            actions.append(backend.resume().status)
            actions.append(backend.cancel().status)

    with pytest.raises(JobCancelledError) as caught:
        backend.fine_tune(train, callbacks=[control])
    assert actions == ["paused", "running", "cancelled"]
    assert caught.value.code == "cancelled" and caught.value.job_id in fake.jobs


def test_control_without_a_job_says_so(make_backend: Factory, tmp_path: Path) -> None:
    """Status of a run directory with no run state is a RunStateError, not a crash."""
    with pytest.raises(RunStateError, match="no OpenAI run"):
        make_backend(run_dir=tmp_path / "empty").status()


def test_a_run_dir_with_a_job_for_other_data_is_refused(
    make_backend: Factory, train: list[Example]
) -> None:
    """Reusing a run directory for different data fails instead of mixing two jobs."""
    make_backend().fine_tune(train)
    with pytest.raises(RunStateError, match="already holds job"):
        make_backend().fine_tune([chat(50 + i) for i in range(12)])


def test_wait_resumes_watching_without_the_data(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example]
) -> None:
    """wait() continues the recorded job after a restart, given no data at all."""
    backend = make_backend()
    backend.fine_tune(train)
    assert backend.wait().model_id == next(iter(fake.jobs.values())).body["fine_tuned_model"]


def test_state_file_holds_ids_and_hashes(make_backend: Factory, train: list[Example]) -> None:
    """The run state names the run, its files (with hashes and ids) and the job."""
    backend = make_backend()
    model = backend.fine_tune(train)
    state = json.loads((backend.run_dir / STATE_FILE).read_text(encoding="utf-8"))
    assert state["run_id"] == model.metadata["run_id"]
    assert state["job_id"] == model.job_id and state["status"] == "succeeded"
    assert state["files"][0]["file_id"] == model.metadata["train_file"]
    assert state["fine_tuned_model"] == model.model_id


def test_progress_line_prints_one_line_per_event() -> None:
    """ProgressLine writes the step and the losses of each event."""
    import io

    stream = io.StringIO()
    ProgressLine(stream)(MetricEvent(step=3, total_steps=9, train_loss=0.5))
    assert stream.getvalue() == "step 3/9  train_loss=0.5000\n"


def test_result_file_metrics_are_saved_beside_the_run(
    make_backend: Factory, train: list[Example]
) -> None:
    """The job's result CSV (served base64-encoded) is decoded into the run dir and parsed."""
    backend = make_backend()
    model = backend.fine_tune(train)
    (csv_file,) = backend.run_dir.glob("result-*.csv")
    assert csv_file.read_text(encoding="utf-8").startswith("step,train_loss")
    assert model.metrics[0].train_mean_token_accuracy == 0.5


def test_poll_schedule_logs_unknown_and_paused_statuses(
    tmp_path: Path, train: list[Example], caplog: pytest.LogCaptureFixture
) -> None:
    """validating_files, paused and an unknown status keep the wait going; the job then succeeds."""
    from tests.backends.fake_openai import JobScript

    clock = FakeClock()
    script = JobScript(
        phases=(
            ("validating_files", 30.0),
            ("paused", 600.0),
            ("rebalancing_shards", 120.0),
            ("running", 120.0),
        ),
        steps=4,
    )
    fake = FakeOpenAI(clock=clock, script=script)
    backend = OpenAIBackend(
        model=MODEL,
        run_dir=tmp_path,
        api_key=SECRET,
        base_url=fake.base_url,
        http_transport=fake.transport,
        sleep=clock.sleep,
        clock=clock,
        poll=PollSchedule(min_interval=5, max_interval=60),
    )
    with caplog.at_level(logging.INFO, logger="finetune_web"):
        model = backend.fine_tune(train)
    assert model.model_id
    assert "is paused" in caplog.text and "'rebalancing_shards', unknown here" in caplog.text
    assert max(clock.sleeps) == 60 and min(clock.sleeps) == 5


def test_missing_file_and_empty_validation(
    make_backend: Factory, fake: FakeOpenAI, train: list[Example], tmp_path: Path
) -> None:
    """A missing file is a SourceError naming it; an empty validation split is simply left out."""
    with pytest.raises(SourceError, match="cannot read the train file"):
        make_backend().fine_tune_files(tmp_path / "nope.jsonl")
    assert fake.calls == []
    model = make_backend().fine_tune(train, [])
    assert "validation_file" not in model.metadata
    assert fake.count("files.create") == 1
    assert fake.jobs[model.job_id or ""].body["validation_file"] is None
