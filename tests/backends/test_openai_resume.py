"""Crash and resume: a run killed at any API call, then run again, uploads and creates once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from finetune_web.backends import STATE_FILE, OpenAIBackend, PollSchedule
from finetune_web.records import Example
from tests.backends.conftest import MODEL, SECRET, chat
from tests.backends.fake_openai import FakeClock, FakeOpenAI, JobScript, SimulatedCrash

#: A very short job, so that every kill point can be tried quickly.
TINY = JobScript(phases=(("validating_files", 5.0), ("queued", 5.0), ("running", 20.0)), steps=3)
TRAIN = [chat(i) for i in range(12)]
VALIDATION = [chat(100 + i) for i in range(3)]


def _backend(fake: FakeOpenAI, run_dir: Path, **overrides: Any) -> OpenAIBackend:
    """A backend as a fresh process would build it (nothing shared but the run dir)."""
    settings: dict[str, Any] = {
        "model": MODEL,
        "run_dir": run_dir,
        "api_key": SECRET,
        "base_url": fake.base_url,
        "http_transport": fake.transport,
        "sleep": fake.clock.sleep,
        "clock": fake.clock,
        "poll": PollSchedule(min_interval=10, max_interval=10),
        "download_results": False,
    }
    settings.update(overrides)
    return OpenAIBackend(**settings)


def _clean_run_calls(tmp_path: Path, **overrides: Any) -> list[str]:
    fake = FakeOpenAI(clock=FakeClock(), script=TINY)
    _backend(fake, tmp_path / "clean", **overrides).fine_tune(TRAIN, VALIDATION)
    return list(fake.calls)


def _kill_and_rerun(
    run_dir: Path, kill_at: int, after: bool, **overrides: Any
) -> tuple[FakeOpenAI, str]:
    fake = FakeOpenAI(clock=FakeClock(), script=TINY)
    fake.crash_at(kill_at, after=after)
    with pytest.raises(SimulatedCrash):
        _backend(fake, run_dir, **overrides).fine_tune(TRAIN, VALIDATION)
    fake.crash_at(None)
    model = _backend(fake, run_dir, **overrides).fine_tune(TRAIN, VALIDATION)
    return fake, model.job_id or ""


@pytest.mark.parametrize("after", [False, True], ids=["before-server-acts", "after-server-acts"])
@pytest.mark.parametrize(
    "overrides",
    [{}, {"upload_threshold": 1000, "part_size": 1000}],
    ids=["files.create", "uploads-api"],
)
def test_killed_at_every_call_then_rerun_makes_one_upload_per_file_and_one_job(
    tmp_path: Path, after: bool, overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """For every n, a kill at the n-th API call (before or after the server acts) and a re-run
    give exactly one uploaded file per distinct content and exactly one job, which succeeds."""
    # A kill loses no written file: fsync only guards against power loss, and costs most here.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    calls = _clean_run_calls(tmp_path, **overrides)
    assert len(calls) > 10
    for kill_at in range(1, len(calls) + 1):
        fake, job_id = _kill_and_rerun(tmp_path / f"kill-{kill_at}", kill_at, after, **overrides)
        where = f"killed at call {kill_at} ({calls[kill_at - 1]})"
        assert sorted(fake.files_by_content().values()) == [1, 1], where
        assert list(fake.jobs) == [job_id], where
        assert fake.jobs[job_id].body["status"] == "succeeded", where


def test_a_kill_while_waiting_resumes_the_same_job_and_its_metrics(tmp_path: Path) -> None:
    """Killed mid-wait, the re-run watches the same job and still reports every step."""
    fake = FakeOpenAI(clock=FakeClock(), script=TINY)
    fake.crash_at(7)
    with pytest.raises(SimulatedCrash):
        _backend(fake, tmp_path).fine_tune(TRAIN)
    seen: list[int] = []
    model = _backend(fake, tmp_path).fine_tune(
        TRAIN, callbacks=[lambda event: seen.append(event.step)]
    )
    assert fake.count("files.create") == 1 and len(fake.jobs) == 1
    assert seen == [1, 2, 3] and [m.step for m in model.metrics] == [1, 2, 3]


def test_a_stale_multipart_upload_starts_again(tmp_path: Path) -> None:
    """An upload that expired while the process was down is replaced by a new one."""
    fake = FakeOpenAI(clock=FakeClock(), script=TINY)
    fake.crash_at(4)  # files.list, uploads.create, part 1, part 2 (killed)
    with pytest.raises(SimulatedCrash):
        _backend(fake, tmp_path, upload_threshold=1000, part_size=700).fine_tune(TRAIN)
    fake.clock.now += 7200  # the upload expires after an hour
    fake.crash_at(None)
    _backend(fake, tmp_path, upload_threshold=1000, part_size=700).fine_tune(TRAIN)
    assert fake.count("uploads.create") == 2
    assert list(fake.files_by_content().values()) == [1]
    assert len(fake.jobs) == 1


def test_state_survives_a_kill_between_writes(tmp_path: Path) -> None:
    """The state file is replaced atomically: no temporary file is left, it is always JSON."""
    fake = FakeOpenAI(clock=FakeClock(), script=TINY)
    fake.crash_at(3, after=True)
    with pytest.raises(SimulatedCrash):
        _backend(fake, tmp_path).fine_tune(TRAIN)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert (tmp_path / STATE_FILE).read_text(encoding="utf-8").startswith("{")


def test_examples_survive_as_files_for_the_rerun(tmp_path: Path) -> None:
    """The re-run rewrites identical files, so their hashes match the recorded uploads."""
    fake = FakeOpenAI(clock=FakeClock(), script=TINY)
    _backend(fake, tmp_path).fine_tune(TRAIN)
    first = (tmp_path / "train.jsonl").read_bytes()
    _backend(fake, tmp_path).fine_tune(list(TRAIN))
    assert (tmp_path / "train.jsonl").read_bytes() == first
    assert isinstance(TRAIN[0], Example)
