"""Watch a fine-tuning job: adaptive polling, job events as metric events, snapshots.

Polling is frequent while a job is young and sparse once it has run a
while (see :class:`PollSchedule`).  Only ``succeeded``, ``failed`` and
``cancelled`` end the wait: ``validating_files``, ``queued``, ``running``,
``paused`` and any status this version does not know keep it going.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import attrs
import openai
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from finetune_web.backends._openai_retry import Caller
from finetune_web.backends.results import metric_event_from_data
from finetune_web.interfaces import MetricCallback
from finetune_web.records import MetricEvent

__all__ = [
    "FINAL_STATUSES",
    "Checkpoint",
    "JobEvent",
    "JobSnapshot",
    "JobWatcher",
    "PollSchedule",
    "ProgressLine",
    "checkpoint_of",
    "list_events",
    "snapshot_of",
]

#: The statuses after which a job never changes again.
FINAL_STATUSES = frozenset(("succeeded", "failed", "cancelled"))
_KNOWN_STATUSES = FINAL_STATUSES | {"validating_files", "queued", "running", "paused"}
log = logging.getLogger("finetune_web.backends.openai")


@attrs.frozen(kw_only=True)
class PollSchedule:
    """How long to wait between two status checks of a job.

    The wait is ``growth`` times the time spent watching so far, kept
    between ``min_interval`` and ``max_interval``: with the defaults, every
    5 s for the first 50 s, then longer and longer waits, every 60 s after
    10 minutes.  A paused job is checked every ``max_interval``.  So a job
    is never checked more than ``3600 / min_interval`` (720) times an hour,
    and a long job about 60 times an hour.

    Attributes:
        min_interval: the shortest wait, in seconds.
        max_interval: the longest wait, in seconds.
        growth: the wait as a fraction of the time watched so far.
    """

    min_interval: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    max_interval: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    growth: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.min_interval:
            raise ValueError("max_interval must be at least min_interval")

    def interval(self, elapsed: float, status: str | None = None) -> float:
        """Return the seconds to wait after ``elapsed`` seconds of watching a job in ``status``."""
        if status == "paused":
            return self.max_interval
        return min(self.max_interval, max(self.min_interval, self.growth * elapsed))

    @property
    def max_polls_per_hour(self) -> float:
        """The most status checks one hour of watching can make."""
        return 3600.0 / self.min_interval


@attrs.frozen(kw_only=True)
class JobEvent:
    """One event of a job, as the provider reported it.

    Attributes:
        id: the event id.
        created_at: Unix time.
        level: ``info``, ``warn`` or ``error``.
        message: the text.
        type: ``message`` or ``metrics`` (``None`` when not given).
        metrics: the metric event, for ``metrics`` events.
    """

    id: str
    created_at: int
    level: str
    message: str
    type: str | None = None
    metrics: MetricEvent | None = None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class JobSnapshot:
    """A job's state at one moment.

    Attributes:
        job_id: the job.
        status: its status (possibly one this version does not know).
        model: the base model.
        fine_tuned_model: the resulting model, once it succeeded.
        trained_tokens: billable tokens, once finished.
        result_files: result file ids.
        error_code: for a failed job, the provider's error code.
        error_message: for a failed job, the provider's message.
        error_param: for a failed job, the parameter blamed.
        estimated_finish: Unix time the provider expects it to end, when it says.
    """

    job_id: str
    status: str
    model: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    result_files: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    error_code: str | None = None
    error_message: str | None = None
    error_param: str | None = None
    estimated_finish: int | None = None

    @property
    def final(self) -> bool:
        """True once the job can no longer change."""
        return self.status in FINAL_STATUSES


@attrs.frozen(kw_only=True)
class Checkpoint:
    """A usable model saved during a job.

    Attributes:
        id: the checkpoint id.
        model: the checkpoint's model name (usable for chat).
        step: the training step it was taken at.
        metrics: its metrics.
    """

    id: str
    model: str
    step: int
    metrics: MetricEvent


def snapshot_of(job: FineTuningJob) -> JobSnapshot:
    """Return the snapshot of an SDK job object."""
    error = job.error
    return JobSnapshot(
        job_id=job.id,
        status=str(job.status),
        model=job.model,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        result_files=tuple(job.result_files or ()),
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        error_param=error.param if error else None,
        estimated_finish=job.estimated_finish,
    )


def checkpoint_of(item: FineTuningJobCheckpoint) -> Checkpoint:
    """Return the checkpoint record of an SDK checkpoint object."""
    data = item.metrics.model_dump(exclude_none=True)
    data.setdefault("step", item.step_number)
    metrics = metric_event_from_data(data) or MetricEvent(step=item.step_number)
    return Checkpoint(
        id=item.id, model=item.fine_tuned_model_checkpoint, step=item.step_number, metrics=metrics
    )


def _event_of(item: FineTuningJobEvent) -> JobEvent:
    metrics = None
    if isinstance(item.data, Mapping):
        metrics = metric_event_from_data(item.data)
    return JobEvent(
        id=item.id,
        created_at=item.created_at,
        level=str(item.level),
        message=item.message,
        type=item.type,
        metrics=metrics,
    )


def list_events(
    client: openai.OpenAI, caller: Caller, job_id: str, *, seen: Callable[[str], bool]
) -> list[JobEvent]:
    """Return a job's events that ``seen`` does not know yet, oldest first.

    Events come newest first, 100 a page; pages are read until one holds an
    event already seen (older ones were seen too) or there are no more.
    """
    found: list[JobEvent] = []
    after: str | None = None
    while True:
        cursor = after

        def fetch(cursor: str | None = cursor) -> Any:
            if cursor is None:
                return client.fine_tuning.jobs.list_events(job_id, limit=100)
            return client.fine_tuning.jobs.list_events(job_id, limit=100, after=cursor)

        page = caller.call(f"list the events of {job_id}", fetch)
        known = [seen(item.id) for item in page.data]
        found.extend(_event_of(item) for item, old in zip(page.data, known, strict=True) if not old)
        if any(known) or not page.data or page.has_more is not True:
            break
        after = page.data[-1].id
    ordered = found[::-1]
    ordered.sort(key=lambda event: event.created_at)  # stable: ties keep the service's order
    return ordered


@attrs.define
class JobWatcher:
    """Waits for one job to end, passing its new metric events to callbacks.

    It lives for one wait (never stored on a backend): it remembers the
    event ids already passed on, so every event reaches the callbacks once.

    Attributes:
        client: the SDK client.
        caller: the retry layer.
        job_id: the job.
        schedule: the polling schedule.
        sleep: how to wait.
        clock: monotonic seconds.
        callbacks: called with each new metric event.
        on_status: called with each new status (to save it).
        metrics: the metric events passed on so far, in order.
        polls: the status checks made so far.
    """

    client: openai.OpenAI
    caller: Caller
    job_id: str
    schedule: PollSchedule
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    callbacks: Sequence[MetricCallback] = ()
    on_status: Callable[[str], None] | None = None
    metrics: list[MetricEvent] = attrs.field(factory=list)
    polls: int = 0
    _seen: set[str] = attrs.field(factory=set)
    _status: str | None = None

    def _deliver(self) -> None:
        for event in list_events(self.client, self.caller, self.job_id, seen=self._is_seen):
            self._seen.add(event.id)
            if event.metrics is not None:
                self.metrics.append(event.metrics)
                for callback in self.callbacks:
                    callback(event.metrics)
            elif event.level != "info":
                log.warning("job %s: %s", self.job_id, event.message)
            else:
                log.info("job %s: %s", self.job_id, event.message)

    def _is_seen(self, event_id: str) -> bool:
        return event_id in self._seen

    def _note(self, status: str) -> None:
        if status == self._status:
            return
        self._status = status
        if status == "paused":
            log.warning("job %s is paused: resume it with the backend's resume()", self.job_id)
        elif status not in _KNOWN_STATUSES:
            log.warning("job %s has status %r, unknown here: still waiting", self.job_id, status)
        else:
            log.info("job %s is %s", self.job_id, status)
        if self.on_status is not None:
            self.on_status(status)

    def poll(self) -> FineTuningJob:
        """Check the job once and pass on its new events; return the job."""
        job = self.caller.call(
            f"check job {self.job_id}", lambda: self.client.fine_tuning.jobs.retrieve(self.job_id)
        )
        self.polls += 1
        self._deliver()
        self._note(str(job.status))
        return job

    def wait(self) -> FineTuningJob:
        """Poll until the job reaches a final status, and return it."""
        start = self.clock()
        while True:
            job = self.poll()
            if str(job.status) in FINAL_STATUSES:
                return job
            self.sleep(self.schedule.interval(self.clock() - start, str(job.status)))


@attrs.define
class ProgressLine:
    """A metric callback that prints one progress line per event (``step 12/309 ...``).

    Attributes:
        stream: where to write (e.g. ``sys.stderr``).
    """

    stream: TextIO

    def __call__(self, event: MetricEvent) -> None:
        """Write the event as one line."""
        total = f"/{event.total_steps}" if event.total_steps else ""
        parts = [f"step {event.step}{total}"]
        for name in ("train_loss", "valid_loss", "train_mean_token_accuracy"):
            value = getattr(event, name)
            if value is not None:
                parts.append(f"{name}={value:.4f}")
        self.stream.write("  ".join(parts) + "\n")
        self.stream.flush()
