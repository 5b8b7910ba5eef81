"""API calls the OpenAI backend makes for one job, counted through the in-process fake.

What is measured
----------------
One supervised job (12 examples, 30 simulated minutes: 30 s validating
files, 90 s queued, 1,687 s running) runs through ``OpenAIBackend`` against
the stateful fake of the fine-tuning API (``tests/backends/fake_openai.py``,
respx, in-process).  A fake clock is injected, so the job's 30 minutes pass
in milliseconds and nothing sleeps.  Counted:

- ``uploads``: files created (``files.create``; the Uploads API for big files);
- ``creates``: ``jobs.create`` calls;
- ``polls``: ``jobs.retrieve`` calls until the job is seen ``succeeded``
  (each poll also lists new events: ``event_calls``);
- the same backend run again on the same data (a finished run):
  ``rerun_uploads`` and ``rerun_creates`` (both must be 0), ``rerun_polls``;
- ``polls_per_hour``: polls per simulated hour of waiting, with the default
  adaptive schedule (5 s at first, growing to 60 s after 10 minutes; never
  more than 720 an hour).

Side by side, the same job polled at a fixed 5 s and a fixed 60 s interval,
with how late each one notices the end of the job.

Run it::

    TIKTOKEN_CACHE_DIR=../shared/tiktoken-cache .venv/bin/python benchmarks/openai_calls.py

It prints a short table, then, as its last line, one JSON object with the
figures.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the fake lives in the test suite

from tests.backends.fake_openai import FakeClock, FakeOpenAI, JobScript  # noqa: E402

from finetune_web.backends import OpenAIBackend, PollSchedule  # noqa: E402  (after sys.path)
from finetune_web.records import Example, Message  # noqa: E402

JOB = JobScript(
    phases=(("validating_files", 30.0), ("queued", 90.0), ("running", 1687.0)), steps=60
)
KEY = "sk-benchmark-not-a-key"


def _examples() -> list[Example]:
    return [
        Example(
            messages=[
                Message(role="system", content="You write short product blurbs."),
                Message(role="user", content=f"Describe product {i}."),
                Message(role="assistant", content=f"Product {i} is sturdy and light."),
            ]
        )
        for i in range(12)
    ]


def _run(run_dir: Path, schedule: PollSchedule) -> dict[str, Any]:
    clock = FakeClock()
    fake = FakeOpenAI(clock=clock, script=JOB)
    backend = OpenAIBackend(
        model="gpt-4o-mini-2024-07-18",
        run_dir=run_dir,
        api_key=KEY,
        base_url=fake.base_url,
        http_transport=fake.transport,
        sleep=clock.sleep,
        clock=clock,
        poll=schedule,
    )
    data = _examples()
    backend.fine_tune(data)
    job = next(iter(fake.jobs.values()))
    started, finished = job.body["created_at"], job.ended_at
    waited = clock.now - started
    first = {
        "uploads": len(fake.training_files),
        "creates": fake.count("jobs.create"),
        "polls": fake.count("jobs.retrieve"),
        "event_calls": fake.count("jobs.events"),
        "calls": len(fake.calls),
        "job_minutes": round((finished - started) / 60, 1),
        "noticed_after_s": round(clock.now - finished, 1),
    }
    before = (len(fake.training_files), fake.count("jobs.create"), fake.count("jobs.retrieve"))
    backend.fine_tune(data)
    first["rerun_uploads"] = len(fake.training_files) - before[0]
    first["rerun_creates"] = fake.count("jobs.create") - before[1]
    first["rerun_polls"] = fake.count("jobs.retrieve") - before[2]
    first["polls_per_hour"] = round(first["polls"] * 3600 / waited, 1)
    first["waited_minutes"] = round(waited / 60, 1)
    return first


def main() -> None:
    """Run the three schedules and print the table and the JSON figures."""
    logging.disable(logging.WARNING)  # the validator's shutdown warnings are not figures
    schedules = {
        "adaptive (default)": PollSchedule(),
        "fixed 5 s": PollSchedule(min_interval=5, max_interval=5),
        "fixed 60 s": PollSchedule(min_interval=60, max_interval=60),
    }
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for number, (name, schedule) in enumerate(schedules.items()):
            results[name] = _run(Path(folder) / f"run{number}", schedule)
    print(
        f"{'schedule':<20} {'uploads':>7} {'creates':>7} {'polls':>6} {'polls/h':>8} "
        f"{'late s':>7} {'rerun up/create':>16}"
    )
    for name, row in results.items():
        print(
            f"{name:<20} {row['uploads']:>7} {row['creates']:>7} {row['polls']:>6} "
            f"{row['polls_per_hour']:>8} {row['noticed_after_s']:>7} "
            f"{row['rerun_uploads']:>8}/{row['rerun_creates']}"
        )
    main_row = results["adaptive (default)"]
    figures = dict(main_row)
    figures["max_polls_per_hour"] = PollSchedule().max_polls_per_hour
    figures["fixed_5s_polls"] = results["fixed 5 s"]["polls"]
    figures["fixed_60s_polls"] = results["fixed 60 s"]["polls"]
    figures["fixed_60s_noticed_after_s"] = results["fixed 60 s"]["noticed_after_s"]
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
