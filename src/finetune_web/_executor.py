"""Run a pipeline's steps in this process, counting and checking every record."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import attrs

from finetune_web.errors import (
    AccountingError,
    ErrorContext,
    FinetuneWebError,
    RecordError,
    StepError,
)
from finetune_web.interfaces import Source, Transformer, step_name
from finetune_web.records import MetricMode, Record, Rejection, StepMetric
from finetune_web.report import StepReport

__all__ = ["ErrorPolicy", "LocalExecutor", "RunSpec", "StepCounter"]

RejectHandler = Callable[[Rejection], None]


class ErrorPolicy(enum.Enum):
    """What a run does with a rejected record."""

    #: Send it to the rejects sink and go on (the default).
    REJECT = "reject"
    #: Stop the run with a :class:`~finetune_web.errors.RecordError`.
    RAISE = "raise"


class RunSpec(Protocol):
    """What an executor needs of a pipeline (the :class:`~finetune_web.Pipeline` has it)."""

    @property
    def source(self) -> Source:
        """Where records come from."""
        ...

    @property
    def steps(self) -> tuple[Transformer, ...]:
        """The steps, in order."""
        ...

    @property
    def seed(self) -> int:
        """The run's seed."""
        ...

    @property
    def error_policy(self) -> ErrorPolicy:
        """Reject or raise on bad records."""
        ...

    def describe(self) -> dict[str, Any]:
        """The pipeline as JSON data."""
        ...

    def fingerprint(self) -> str:
        """The sha256 of the description."""
        ...


@attrs.define
class StepCounter:
    """Live counts of one step while a pipeline runs."""

    name: str
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    reasons: Counter[str] = attrs.field(factory=Counter)
    metrics: dict[str, float] = attrs.field(factory=dict)

    def add_metric(self, metric: StepMetric) -> None:
        """Combine a figure the step reported into its metrics."""
        if metric.mode is MetricMode.SUM:
            self.metrics[metric.name] = self.metrics.get(metric.name, 0) + metric.value
        else:
            self.metrics[metric.name] = metric.value

    def report(self) -> StepReport:
        """Freeze the counts into a :class:`StepReport`."""
        return StepReport(
            name=self.name,
            records_in=self.records_in,
            records_out=self.records_out,
            rejected=self.rejected,
            reasons=dict(sorted(self.reasons.items())),
            metrics=dict(sorted(self.metrics.items())),
        )


def _step_error(exc: Exception, name: str) -> StepError:
    return StepError(
        f"{type(exc).__name__}: {exc}; this is a bug in the step or a resource problem",
        ErrorContext(step=name),
    )


@attrs.frozen
class LocalExecutor:
    """Runs a pipeline lazily in the current process.

    Steps are chained as generators, so records stream through one at a
    time.  Each step's inputs are counted and every input must leave as an
    output (same id, or as the ``parent_id`` of an output) or as a rejection;
    otherwise :class:`~finetune_web.errors.AccountingError` names the lost ids.
    """

    def stream(
        self, pipeline: RunSpec, on_reject: RejectHandler
    ) -> tuple[Iterator[Record], Sequence[StepCounter]]:
        """Return the output stream and the counters it updates as it is consumed.

        Args:
            pipeline: what to run.
            on_reject: called with every rejection (under the ``reject`` policy).
        """
        raise_on_reject = pipeline.error_policy is ErrorPolicy.RAISE

        def reject(counter: StepCounter, rejection: Rejection) -> None:
            counter.rejected += 1
            counter.reasons[rejection.reason] += 1
            if raise_on_reject:
                location = rejection.location
                raise RecordError(
                    rejection.message,
                    ErrorContext(
                        path=location.origin if location else None,
                        line=location.line if location else None,
                        index=location.index if location else None,
                        record_id=rejection.record_id,
                        step=rejection.step,
                    ),
                    reason=rejection.reason,
                )
            on_reject(rejection)

        source_counter = StepCounter(name=step_name(pipeline.source))
        counters = [source_counter]

        def from_source() -> Iterator[Record]:
            try:
                for item in pipeline.source.read():
                    if isinstance(item, Rejection):
                        source_counter.records_in += 1
                        reject(source_counter, item)
                        continue
                    source_counter.records_in += 1
                    source_counter.records_out += 1
                    yield item
            except FinetuneWebError as exc:
                exc.with_context(ErrorContext(step=source_counter.name))
                raise
            except Exception as exc:
                raise _step_error(exc, source_counter.name) from exc

        stream: Iterator[Record] = from_source()
        for step in pipeline.steps:
            counter = StepCounter(name=step_name(step))
            counters.append(counter)
            stream = _through(step, counter, stream, reject)
        return stream, counters


def _through(
    step: object,
    counter: StepCounter,
    upstream: Iterable[Record],
    reject: Callable[[StepCounter, Rejection], None],
) -> Iterator[Record]:
    pending: dict[str, int] = {}

    def settle(record_id: str | None) -> bool:
        if record_id is None or record_id not in pending:
            return False
        left = pending[record_id] - 1
        if left:
            pending[record_id] = left
        else:
            del pending[record_id]
        return True

    def feed() -> Iterator[Record]:
        for record in upstream:
            counter.records_in += 1
            pending[record.id] = pending.get(record.id, 0) + 1
            yield record

    transform = step.transform  # type: ignore[attr-defined]
    try:
        for item in transform(feed()):
            if isinstance(item, StepMetric):
                counter.add_metric(item)
                continue
            if isinstance(item, Rejection):
                settle(item.record_id)
                reject(counter, item)
                continue
            counter.records_out += 1
            if not settle(item.id):
                settle(item.parent_id)
            yield item
    except FinetuneWebError as exc:
        exc.with_context(ErrorContext(step=counter.name))
        raise
    except Exception as exc:
        raise _step_error(exc, counter.name) from exc
    if pending:
        lost = sorted(pending)
        shown = ", ".join(lost[:5]) + (" ..." if len(lost) > 5 else "")
        raise AccountingError(
            f"{sum(pending.values())} record(s) entered the step but left neither as output "
            f"nor as a rejection: {shown}. A step must yield every input or a Rejection for it.",
            ErrorContext(step=counter.name),
        )
