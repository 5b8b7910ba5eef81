"""The operations on a run's existing job: wait, status, cancel, pause, resume, events, checkpoints.

:class:`JobControls` holds these public methods of
:class:`~finetune_web.backends.OpenAIBackend`.  They find the job through
the run state saved in the run directory, so they work from a fresh process
(see ``OpenAIBackend.from_run_dir``) without the training data.  The class
that uses it says how to reach the provider: the SDK client, the retry
layer, the error context and the wait for the model.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openai

from finetune_web.backends._openai_errors import RunStateError
from finetune_web.backends._openai_monitor import (
    Checkpoint,
    JobEvent,
    JobSnapshot,
    checkpoint_of,
    list_events,
    snapshot_of,
)
from finetune_web.backends._openai_retry import Caller
from finetune_web.backends._openai_state import RunJournal, StateStore, load_state
from finetune_web.errors import ErrorContext
from finetune_web.interfaces import MetricCallback
from finetune_web.records import FineTunedModel

__all__ = ["JobControls"]


class JobControls(abc.ABC):
    """The methods that act on the job recorded in ``run_dir``.

    Attributes:
        run_dir: the run directory, holding the run state.
    """

    __slots__ = ()

    run_dir: Path

    @abc.abstractmethod
    def _context(self) -> ErrorContext:
        """Return the context added to errors (the run directory)."""

    @abc.abstractmethod
    def _caller(self) -> Caller:
        """Return the retry layer for the SDK's requests."""

    @abc.abstractmethod
    def _client(self) -> openai.OpenAI:
        """Build the SDK client (closed by the caller)."""

    @abc.abstractmethod
    def _wait(
        self,
        client: openai.OpenAI,
        caller: Caller,
        journal: RunJournal,
        callbacks: Sequence[MetricCallback],
    ) -> FineTunedModel:
        """Wait for the job of ``journal`` to end and return its model."""

    def _job_id(self) -> str:
        state = load_state(StateStore(self.run_dir))
        if state.job_id is None:
            raise RunStateError("this run has no job yet: run fine_tune first", self._context())
        return state.job_id

    def wait(self, *, callbacks: Sequence[MetricCallback] = ()) -> FineTunedModel:
        """Wait for the run's job (after a restart, without the data) and return the model.

        Raises:
            RunStateError: the run has no job yet.
            FineTuneJobError: the job failed or was cancelled.
        """
        store = StateStore(self.run_dir)
        journal = RunJournal(store, load_state(store))
        self._job_id()
        with self._client() as client:
            return self._wait(client, self._caller(), journal, callbacks)

    def _job_call(self, what: str, act: Callable[[openai.OpenAI, str], Any]) -> Any:
        job_id = self._job_id()
        with self._client() as client:
            return self._caller().call(f"{what} job {job_id}", lambda: act(client, job_id))

    def status(self) -> JobSnapshot:
        """Return the run's job as it is now."""
        return snapshot_of(self._job_call("check", lambda c, j: c.fine_tuning.jobs.retrieve(j)))

    def cancel(self) -> JobSnapshot:
        """Cancel the run's job."""
        return snapshot_of(self._job_call("cancel", lambda c, j: c.fine_tuning.jobs.cancel(j)))

    def pause(self) -> JobSnapshot:
        """Pause the run's job (resume it with :meth:`resume`)."""
        return snapshot_of(self._job_call("pause", lambda c, j: c.fine_tuning.jobs.pause(j)))

    def resume(self) -> JobSnapshot:
        """Resume the run's paused job."""
        return snapshot_of(self._job_call("resume", lambda c, j: c.fine_tuning.jobs.resume(j)))

    def events(self) -> tuple[JobEvent, ...]:
        """Return all the events of the run's job, oldest first."""
        job_id = self._job_id()
        with self._client() as client:
            found = list_events(client, self._caller(), job_id, seen=lambda _: False)
        return tuple(found)

    def checkpoints(self) -> tuple[Checkpoint, ...]:
        """Return the checkpoints of the run's job, by step."""
        page = self._job_call(
            "list the checkpoints of",
            lambda c, j: c.fine_tuning.jobs.checkpoints.list(j, limit=100),
        )
        return tuple(sorted((checkpoint_of(item) for item in page.data), key=lambda c: c.step))
