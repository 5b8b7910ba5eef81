"""The steps of one OpenAI run after its files are ready: client, job, wait, result.

These are the backend's private workings, as functions of explicit
settings, so that :class:`~finetune_web.backends.OpenAIBackend` stays a thin
record of options.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import openai
from openai.types.fine_tuning import FineTuningJob

from finetune_web.backends._openai_errors import (
    FineTuneJobError,
    JobCancelledError,
    ProviderError,
    RunStateError,
)
from finetune_web.backends._openai_monitor import FINAL_STATUSES, JobWatcher, PollSchedule
from finetune_web.backends._openai_options import RUN_METADATA_KEY, AzureConfig
from finetune_web.backends._openai_retry import Caller
from finetune_web.backends._openai_state import (
    FileState,
    RunJournal,
    RunState,
    StateStore,
)
from finetune_web.backends.results import decode_result_file, parse_result_csv
from finetune_web.errors import ConfigError, ErrorContext, SourceError
from finetune_web.interfaces import MetricCallback
from finetune_web.records import FineTunedModel, MetricEvent

__all__ = ["create_job", "find_job", "make_client", "open_journal", "wait_for_model"]

log = logging.getLogger("finetune_web.backends.openai")


def make_client(
    *,
    api_key: str | None,
    base_url: str | None,
    azure: AzureConfig | None,
    timeout: float,
    http_transport: httpx.BaseTransport | None,
    context: ErrorContext,
) -> openai.OpenAI:
    """Build the SDK client, with the SDK's retries off (``max_retries=0``).

    Raises:
        ConfigError: no API key, or Azure without an endpoint.
    """
    http_client: Any = None
    if http_transport is not None:
        # The SDK also accepts an httpx.Client (its types name only httpx2.Client).
        http_client = httpx.Client(transport=http_transport, timeout=timeout)
    try:
        if azure is not None:
            if azure.endpoint is None:
                raise ConfigError(
                    "azure needs an endpoint: azure={'endpoint': 'https://<resource>"
                    ".openai.azure.com', ...} or the AZURE_OPENAI_ENDPOINT variable",
                    context,
                )
            return openai.AzureOpenAI(
                azure_endpoint=azure.endpoint,
                api_version=azure.api_version,
                api_key=api_key,
                max_retries=0,
                timeout=timeout,
                http_client=http_client,
            )
        if api_key is None:
            raise ConfigError(
                "no API key: set the OPENAI_API_KEY environment variable or pass api_key=...",
                context,
            )
        return openai.OpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )
    except openai.OpenAIError as exc:  # the SDK found no credentials
        raise ConfigError(
            f"cannot build the API client: {type(exc).__name__}; pass api_key=... "
            "(or set OPENAI_API_KEY, AZURE_OPENAI_API_KEY for Azure)",
            context,
        ) from None


def open_journal(
    store: StateStore,
    files: Mapping[str, FileState],
    *,
    fingerprint: str,
    model: str,
    method: str,
    endpoint: str,
    api_version: str | None,
    context: ErrorContext,
) -> RunJournal:
    """Load (or start) the run state for a request, and record its files.

    A state made for another request (``fingerprint``) is replaced when its
    run never tried to create a job, and refused otherwise.  A file whose
    content did not change keeps its upload.

    Raises:
        RunStateError: the run directory holds a job for other data or settings.
    """
    state = loaded = store.load()
    if state is not None and state.fingerprint != fingerprint:
        if state.job_id is not None or state.create_attempts:
            raise RunStateError(
                f"this run directory already holds job {state.job_id or '(being created)'} "
                "for other data or settings; use a new run_dir (or move "
                f"{store.path.name} away to start over)",
                context,
            )
        state = None
    if state is None:
        state = RunState.new(
            model=model,
            method=method,
            endpoint=endpoint,
            api_version=api_version,
            fingerprint=fingerprint,
        )
    for entry in files.values():
        known = state.file(entry.role)
        if known is None or known.sha256 != entry.sha256:
            state = state.with_file(entry)
    if state != loaded:
        store.save(state)
    return RunJournal(store, state)


def find_job(client: openai.OpenAI, caller: Caller, run_id: str) -> FineTuningJob | None:
    """Return the job whose metadata carries ``run_id``, if there is one.

    The metadata filter is also checked here, for providers that ignore it.
    """
    after: str | None = None
    query = {RUN_METADATA_KEY: run_id}
    while True:
        cursor = after

        def fetch(cursor: str | None = cursor) -> Any:
            if cursor is None:
                return client.fine_tuning.jobs.list(metadata=query, limit=100)
            return client.fine_tuning.jobs.list(metadata=query, limit=100, after=cursor)

        page = caller.call("look up the run's job", fetch)
        for job in page.data:
            if (job.metadata or {}).get(RUN_METADATA_KEY) == run_id:
                return cast(FineTuningJob, job)
        if not page.data or page.has_more is not True:
            return None
        after = page.data[-1].id


def create_job(
    client: openai.OpenAI, caller: Caller, journal: RunJournal, params: dict[str, Any]
) -> str:
    """Create the run's job once, and save its id.

    The attempt count is saved before each ``jobs.create``; after an
    ambiguous failure, or when a previous process had already tried, the job
    is first looked up by the run id in its metadata.

    Args:
        client: the SDK client.
        caller: the retry layer.
        journal: the run state.
        params: the ``jobs.create`` arguments (metadata with the run id included).

    Returns:
        The job id.
    """
    run_id = journal.state.run_id

    def create() -> FineTuningJob:
        journal.update(create_attempts=journal.state.create_attempts + 1)
        return client.fine_tuning.jobs.create(**params)

    job = caller.create_once(
        "create the fine-tuning job",
        create,
        lambda: find_job(client, caller, run_id),
        look_first=journal.state.create_attempts > 0,
    )
    journal.update(job_id=job.id, status=str(job.status))
    log.info("run %s: job %s (%s) for %s", run_id, job.id, job.status, params["model"])
    return job.id


def _raise_if_unsuccessful(job: FineTuningJob, context: ErrorContext) -> None:
    if job.status == "succeeded" and job.fine_tuned_model:
        return
    error = job.error
    code = error.code if error else ("cancelled" if job.status == "cancelled" else None)
    reason = error.message if error else f"the job ended {job.status} without a model"
    param = error.param if error else None
    where = f" (param {param})" if param else ""
    cls = JobCancelledError if job.status == "cancelled" else FineTuneJobError
    advice = "" if job.status == "cancelled" else "; fix the cause, then run with a new run_dir"
    raise cls(
        f"fine-tuning job {job.id} {job.status}: {reason}{where} [code {code}]{advice}",
        context,
        code,
        None,
        param,
        job.id,
    )


def _result_metrics(
    client: openai.OpenAI, caller: Caller, file_id: str, run_dir: Path
) -> tuple[MetricEvent, ...] | None:
    target = run_dir / f"result-{file_id}.csv"
    try:
        if not target.is_file():
            data = caller.call(
                f"download result file {file_id}", lambda: client.files.content(file_id).content
            )
            target.write_text(decode_result_file(data), encoding="utf-8")
        return parse_result_csv(target.read_text(encoding="utf-8"), origin=str(target))
    except (ProviderError, SourceError) as exc:
        log.warning("result file %s not used (%s); metrics come from job events", file_id, exc)
        return None


def _model_of(
    job: FineTuningJob, state: RunState, metrics: tuple[MetricEvent, ...], run_dir: Path
) -> FineTunedModel:
    method = job.method
    chosen = getattr(method, method.type, None) if method is not None else None
    hyper = getattr(chosen, "hyperparameters", None) or job.hyperparameters
    metadata: dict[str, Any] = {
        "run_id": state.run_id,
        "run_dir": str(run_dir),
        "method": state.method,
        "endpoint": state.endpoint,
        "seed": job.seed,
    }
    for entry in state.files:
        metadata[f"{entry.role}_file"] = entry.file_id
        metadata[f"{entry.role}_sha256"] = entry.sha256
    return FineTunedModel(
        model_id=job.fine_tuned_model or "",
        base_model=job.model,
        backend="openai",
        job_id=job.id,
        trained_tokens=job.trained_tokens,
        hyperparameters=hyper.model_dump(exclude_none=True) if hyper is not None else {},
        result_files=tuple(job.result_files or ()),
        metrics=metrics,
        metadata=metadata,
    )


def wait_for_model(
    client: openai.OpenAI,
    caller: Caller,
    journal: RunJournal,
    *,
    schedule: PollSchedule,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    callbacks: Sequence[MetricCallback],
    download_results: bool,
    context: ErrorContext,
) -> FineTunedModel:
    """Wait for the run's job to end and return its model.

    Args:
        client: the SDK client.
        caller: the retry layer.
        journal: the run state (its job id is set).
        schedule: the polling schedule.
        sleep: how to wait.
        clock: monotonic seconds.
        callbacks: called with each new metric event.
        download_results: read the job's result CSV for the final metrics.
        context: added to errors (the run directory).

    Returns:
        The fine-tuned model.

    Raises:
        FineTuneJobError: the job failed (``JobCancelledError``: it was cancelled).
    """
    job_id = journal.state.job_id
    assert job_id is not None  # the job was created or found before
    run_dir = journal.store.run_dir

    def on_status(status: str) -> None:
        if status in FINAL_STATUSES and status != journal.state.status:
            journal.update(status=status)  # saved once it is final (each save is fsynced)

    watcher = JobWatcher(
        client=client,
        caller=caller,
        job_id=job_id,
        schedule=schedule,
        sleep=sleep,
        clock=clock,
        callbacks=callbacks,
        on_status=on_status,
    )
    job = watcher.wait()
    _raise_if_unsuccessful(job, context)
    model_id = job.fine_tuned_model
    assert model_id is not None  # checked by _raise_if_unsuccessful
    metrics = tuple(watcher.metrics)
    if download_results and job.result_files:
        metrics = _result_metrics(client, caller, job.result_files[0], run_dir) or metrics
    journal.update(fine_tuned_model=model_id)
    return _model_of(job, journal.state, metrics, run_dir)
