"""Fine-tune on OpenAI, Azure OpenAI or any OpenAI-compatible fine-tuning endpoint.

:class:`OpenAIBackend` writes the examples as JSONL, validates them, uploads
each distinct file once, creates one job tagged with the run id, waits for
it, and returns a :class:`~finetune_web.records.FineTunedModel`.  Its state
is saved in the run directory before every step that must not be repeated,
so a run killed at any point and started again continues the same job.

The SDK client is built inside each call (never stored on the backend, so
the backend pickles) with ``max_retries=0``: retries are done once, by the
backend's own layer (see :mod:`finetune_web.backends._openai_retry`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import openai

from finetune_web._types import StrPath
from finetune_web.backends._openai_control import JobControls
from finetune_web.backends._openai_monitor import PollSchedule
from finetune_web.backends._openai_options import (
    RUN_METADATA_KEY,
    AzureConfig,
    Method,
    OpenAIHyperparameters,
    check_metadata,
    check_suffix,
    default_api_key,
    to_azure,
    to_hyperparameters,
    to_metadata,
    to_poll,
    to_retry,
)
from finetune_web.backends._openai_prepare import file_kind, prepare_file, write_training_file
from finetune_web.backends._openai_retry import Caller, RetryPolicy
from finetune_web.backends._openai_run import (
    create_job,
    make_client,
    open_journal,
    wait_for_model,
)
from finetune_web.backends._openai_state import (
    FileState,
    RunJournal,
    StateStore,
    fingerprint,
    load_state,
)
from finetune_web.backends._openai_upload import (
    DEFAULT_PART_SIZE,
    DEFAULT_UPLOAD_THRESHOLD,
    MAX_PART_SIZE,
    ensure_uploaded,
    file_state,
)
from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.interfaces import MetricCallback
from finetune_web.records import Example, FineTunedModel, Preference

__all__ = ["OPENAI_BASE_URL", "OpenAIBackend"]

#: Where jobs go when neither ``base_url`` nor ``azure`` is given.
OPENAI_BASE_URL = "https://api.openai.com/v1"
log = logging.getLogger("finetune_web.backends.openai")


@attrs.frozen(kw_only=True)
class OpenAIBackend(JobControls):
    """Fine-tunes through an OpenAI-compatible fine-tuning API; resumes after any crash.

    Besides starting runs, it acts on the job a run directory records:
    :meth:`wait`, :meth:`status`, :meth:`cancel`, :meth:`pause`,
    :meth:`resume`, :meth:`events` and :meth:`checkpoints`, from any process.

    Attributes:
        model: the base model (``gpt-4.1-mini-2025-04-14``...).
        run_dir: where the JSONL files, the run state and the results go.
        method: ``supervised`` (chat examples) or ``dpo`` (preference pairs).
        hyperparameters: epochs, batch size, learning-rate multiplier, DPO beta
            (an :class:`OpenAIHyperparameters` or a table of them).
        suffix: added to the fine-tuned model's name (1-64 characters).
        seed: the job's seed, for reproducibility.
        metadata: up to 15 string pairs attached to the job (the run id is the 16th).
        api_key: the API key; by default the ``OPENAI_API_KEY`` environment
            variable (for Azure, ``None`` lets the SDK read ``AZURE_OPENAI_API_KEY``).
            Never shown in a repr, a log line, a saved file or an error.
        base_url: another OpenAI-compatible endpoint (``None``: OpenAI).
        azure: an Azure OpenAI resource (an :class:`AzureConfig` or a table);
            when set, the SDK's ``AzureOpenAI`` client is used.
        validate_as: the model whose limits the data is checked against,
            for a provider's model that is not in the model table.
        upload_threshold: files larger than this (bytes) go through the
            Uploads API in parts; 512 MB by default.
        part_size: the Uploads API part size (at most 64 MB).
        poll: the adaptive polling schedule.
        retry: the retry policy (the SDK's own retries are off).
        timeout: seconds before one HTTP request times out.
        download_results: fetch the job's result CSV for the final metrics.
        http_transport: an ``httpx`` transport for the SDK's requests (a
            proxy, or a test double such as ``httpx.MockTransport``).
        sleep: how to wait (a fake clock's in tests).
        clock: monotonic seconds (a fake clock in tests).
    """

    model: str
    run_dir: Path = attrs.field(converter=Path)
    method: Method = attrs.field(
        default="supervised", validator=attrs.validators.in_(("supervised", "dpo"))
    )
    hyperparameters: OpenAIHyperparameters = attrs.field(
        factory=OpenAIHyperparameters,
        converter=to_hyperparameters,
    )
    suffix: str | None = attrs.field(default=None, validator=check_suffix)
    seed: int | None = None
    metadata: dict[str, str] = attrs.field(
        factory=dict, converter=to_metadata, validator=check_metadata
    )
    api_key: str | None = attrs.field(factory=default_api_key, repr=False)
    base_url: str | None = None
    azure: AzureConfig | None = attrs.field(default=None, converter=to_azure)
    validate_as: str | None = None
    upload_threshold: int = attrs.field(
        default=DEFAULT_UPLOAD_THRESHOLD, validator=attrs.validators.gt(0)
    )
    part_size: int = attrs.field(
        default=DEFAULT_PART_SIZE,
        validator=[attrs.validators.gt(0), attrs.validators.le(MAX_PART_SIZE)],
    )
    poll: PollSchedule = attrs.field(factory=PollSchedule, converter=to_poll)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, converter=to_retry)
    timeout: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))
    download_results: bool = True
    http_transport: httpx.BaseTransport | None = attrs.field(default=None, repr=False, eq=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False, eq=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.azure is not None and self.base_url is not None:
            raise ConfigError("give base_url or azure, not both")
        self.hyperparameters.for_method(self.method)  # beta only with dpo

    # -- settings -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Where the jobs live: the Azure endpoint, ``base_url``, or OpenAI's API."""
        if self.azure is not None:
            return self.azure.endpoint or "<AZURE_OPENAI_ENDPOINT unset>"
        return self.base_url or OPENAI_BASE_URL

    def describe(self) -> dict[str, Any]:
        """Return the public settings as JSON (never the API key), for run manifests."""
        return {
            "model": self.model,
            "method": self.method,
            "hyperparameters": attrs.asdict(self.hyperparameters),
            "suffix": self.suffix,
            "seed": self.seed,
            "metadata": dict(self.metadata),
            "endpoint": self.endpoint,
            "azure_api_version": self.azure.api_version if self.azure else None,
            "run_dir": str(self.run_dir),
        }

    @classmethod
    def from_run_dir(cls, run_dir: StrPath, **settings: Any) -> OpenAIBackend:
        """Rebuild the backend of an existing run (for status, events, cancel, wait).

        Args:
            run_dir: the run directory.
            settings: fields to set or override (``api_key``, ``http_transport``...).

        Raises:
            RunStateError: the directory holds no run state.
        """
        state = load_state(StateStore(Path(run_dir)))
        found: dict[str, Any] = {"model": state.model, "method": state.method}
        if state.api_version is not None:
            found["azure"] = AzureConfig(endpoint=state.endpoint, api_version=state.api_version)
        elif state.endpoint != OPENAI_BASE_URL:
            found["base_url"] = state.endpoint
        return cls(run_dir=Path(run_dir), **{**found, **settings})

    # -- plumbing -------------------------------------------------------------------------

    def _context(self) -> ErrorContext:
        return ErrorContext(path=str(self.run_dir))

    def _caller(self) -> Caller:
        return Caller(
            policy=self.retry, sleep=self.sleep, secret=self.api_key, context=self._context()
        )

    def _client(self) -> openai.OpenAI:
        return make_client(
            api_key=self.api_key,
            base_url=self.base_url,
            azure=self.azure,
            timeout=self.timeout,
            http_transport=self.http_transport,
            context=self._context(),
        )

    # -- training -------------------------------------------------------------------------

    def fine_tune(
        self,
        train: Iterable[Example | Preference],
        validation: Iterable[Example | Preference] | None = None,
        *,
        callbacks: Sequence[MetricCallback] = (),
    ) -> FineTunedModel:
        """Train on examples (or preference pairs for DPO) and return the model.

        Writes ``train.jsonl`` (and ``validation.jsonl``) in the run directory,
        validates them, and refuses to upload invalid data.  Running it again
        with the same data continues the same run: nothing is uploaded or
        created twice.

        Args:
            train: the training records.
            validation: validation records (none: no validation file).
            callbacks: each called with every metric event as the job reports it.

        Returns:
            The fine-tuned model.

        Raises:
            ValidationError: the data would fail the provider's checks.
            ProviderError: the provider refused a request (see the subclasses).
            FineTuneJobError: the job failed or was cancelled.
            RunStateError: the run directory holds a job for other data.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        kind = file_kind(self.method, self.validate_as or self.model)
        paths = {"train": self.run_dir / "train.jsonl"}
        write_training_file(train, paths["train"], kind)
        if validation is not None:
            target = self.run_dir / "validation.jsonl"
            if write_training_file(validation, target, kind):
                paths["validation"] = target
            else:  # an empty split: train without a validation file
                target.unlink()
                log.info("no validation records: training without a validation file")
        return self._run(paths, callbacks)

    def fine_tune_files(
        self,
        train: StrPath,
        validation: StrPath | None = None,
        *,
        callbacks: Sequence[MetricCallback] = (),
    ) -> FineTunedModel:
        """Train on existing JSONL files (uploaded as they are, after validation).

        Args:
            train: the training file.
            validation: the validation file, if any.
            callbacks: each called with every metric event.

        Returns:
            The fine-tuned model.

        Raises:
            ValidationError: a file would fail the provider's checks.
            ProviderError: the provider refused a request.
            FineTuneJobError: the job failed or was cancelled.
        """
        paths = {"train": Path(train)}
        if validation is not None:
            paths["validation"] = Path(validation)
        return self._run(paths, callbacks)

    def _request(self, files: dict[str, FileState]) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.hyperparameters.for_method(self.method),
            "suffix": self.suffix,
            "seed": self.seed,
            "metadata": dict(self.metadata),
            "endpoint": self.endpoint,
            "files": {role: entry.sha256 for role, entry in files.items()},
        }

    def _run(self, paths: dict[str, Path], callbacks: Sequence[MetricCallback]) -> FineTunedModel:
        files = {role: file_state(role, path) for role, path in paths.items()}
        store = StateStore(self.run_dir)
        marker = fingerprint(self._request(files))
        saved = store.load()
        if saved is None or saved.fingerprint != marker or saved.job_id is None:
            for role, path in paths.items():  # a run with a job was validated before
                model = self.validate_as or self.model
                prepare_file(path, role=role, method=self.method, model=model)
        with self._client() as client:  # built first: a config error writes no state
            journal = open_journal(
                store,
                files,
                fingerprint=marker,
                model=self.model,
                method=self.method,
                endpoint=self.endpoint,
                api_version=self.azure.api_version if self.azure else None,
                context=self._context(),
            )
            caller = self._caller()
            if journal.state.job_id is None:
                ids = {
                    role: ensure_uploaded(
                        client,
                        caller,
                        journal,
                        role,
                        threshold=self.upload_threshold,
                        part_size=self.part_size,
                    )
                    for role in files
                }
                create_job(client, caller, journal, self._job_params(journal.state.run_id, ids))
            return self._wait(client, caller, journal, callbacks)

    def _job_params(self, run_id: str, ids: dict[str, str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "training_file": ids["train"],
            "method": self.hyperparameters.for_method(self.method),
            "metadata": {**self.metadata, RUN_METADATA_KEY: run_id},
        }
        if "validation" in ids:
            params["validation_file"] = ids["validation"]
        if self.suffix is not None:
            params["suffix"] = self.suffix
        if self.seed is not None:
            params["seed"] = self.seed
        return params

    def _wait(
        self,
        client: openai.OpenAI,
        caller: Caller,
        journal: RunJournal,
        callbacks: Sequence[MetricCallback],
    ) -> FineTunedModel:
        return wait_for_model(
            client,
            caller,
            journal,
            schedule=self.poll,
            sleep=self.sleep,
            clock=self.clock,
            callbacks=callbacks,
            download_results=self.download_results,
            context=self._context(),
        )
