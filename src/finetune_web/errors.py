"""Exceptions raised by finetune_web.

Every exception derives from :class:`FinetuneWebError` and carries an
:class:`ErrorContext` naming where the problem is (source, path, line, record
id, step).  Where a builtin exception has the same meaning, the class also
derives from it, so ``except ValueError`` keeps working.

The tree::

    FinetuneWebError
    ├── ConfigError (ValueError)            a pipeline, step or TOML config is wrong
    │   ├── PluginError                     a plugin cannot be found, loaded or checked
    │   │   └── ContractError (AssertionError)  a component breaks its interface's contract
    │   └── RunStateError                   a run directory's saved state does not fit the request
    ├── SourceError                         a source cannot be opened or read at all
    │   └── DecodeError (UnicodeError)      bytes cannot be decoded in the chosen encoding
    ├── RecordError (ValueError)            one record is invalid (raised when the error
    │                                       policy is "raise"; otherwise it is a Rejection)
    ├── StepError                           a step raised an unexpected exception
    │   └── AccountingError                 a step lost records: in != out + rejected
    ├── ValidationError (ValueError)        a dataset fails the provider's checks
    ├── UnknownModelError (KeyError)        a model name is not in the model table
    ├── ProviderError                       a model provider refused or failed a request
    │   ├── ChatModelError                  a chat completion failed (after retries)
    │   ├── QuotaExceededError              insufficient_quota (429): never retried
    │   ├── DailyRateLimitError             daily_rate_limit_exceeded (429): never retried
    │   ├── TrainingNotAvailableError (PermissionError)
    │   │                                   training_not_available (403): fine-tuning is closed
    │   │                                   for the account; never retried
    │   ├── InvalidTrainingFileError (ValueError)  the provider rejected an uploaded file
    │   └── FineTuneJobError                the job failed (error code, message, param)
    │       └── JobCancelledError           the job was cancelled
    └── MissingDependencyError (ImportError)  an optional extra is not installed

Errors never include API keys or other secrets: context holds locations and
ids, never request headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

__all__ = [
    "AccountingError",
    "ChatModelError",
    "ConfigError",
    "ContractError",
    "DailyRateLimitError",
    "DecodeError",
    "ErrorContext",
    "FineTuneJobError",
    "FinetuneWebError",
    "InvalidTrainingFileError",
    "JobCancelledError",
    "MissingDependencyError",
    "PluginError",
    "ProviderError",
    "QuotaExceededError",
    "RecordError",
    "RunStateError",
    "SourceError",
    "StepError",
    "TrainingNotAvailableError",
    "UnknownModelError",
    "ValidationError",
    "error_context",
]


@attrs.frozen(kw_only=True)
class ErrorContext:
    """Where an error happened; every field is optional.

    ``line`` is 1-based (as editors show it); ``index`` is the 0-based
    position of the record in its source.
    """

    source: str | None = None
    path: str | None = None
    line: int | None = None
    index: int | None = None
    record_id: str | None = None
    step: str | None = None

    def merged(self, other: ErrorContext) -> ErrorContext:
        """Fill this context's empty fields from ``other``."""
        values = {
            f.name: getattr(self, f.name)
            if getattr(self, f.name) is not None
            else getattr(other, f.name)
            for f in attrs.fields(ErrorContext)
        }
        return ErrorContext(**values)

    def describe(self) -> str:
        """Return a short ``path:line (record r, step s)`` text, or ``""``."""
        where = self.path or self.source or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        extras = []
        if self.record_id is not None:
            extras.append(f"record {self.record_id}")
        elif self.index is not None:
            extras.append(f"record #{self.index}")
        if self.step is not None:
            extras.append(f"step {self.step}")
        if extras:
            where = f"{where} ({', '.join(extras)})" if where else ", ".join(extras)
        return where


class FinetuneWebError(Exception):
    """Root of every error raised by finetune_web.

    Args:
        message: what went wrong and what to do about it.
        context: where it went wrong.
    """

    def __init__(self, message: str, context: ErrorContext | None = None) -> None:
        self.message = message
        self.context = context if context is not None else ErrorContext()
        super().__init__(message)

    def __str__(self) -> str:
        where = self.context.describe()
        return f"{where}: {self.message}" if where else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.context))

    def with_context(self, context: ErrorContext) -> FinetuneWebError:
        """Fill missing context fields from ``context`` and return ``self``."""
        self.context = self.context.merged(context)
        return self


class ConfigError(FinetuneWebError, ValueError):
    """A pipeline, step or configuration file is invalid."""


class PluginError(ConfigError):
    """A plugin cannot be found, loaded, or does not satisfy its interface."""


class ContractError(PluginError, AssertionError):
    """A component breaks the contract of its interface (see :mod:`finetune_web.testing`)."""


class SourceError(FinetuneWebError):
    """A source cannot be opened or read at all (missing file, empty file...)."""


class DecodeError(SourceError, UnicodeError):
    """Bytes cannot be decoded with the chosen or detected encoding."""


class RecordError(FinetuneWebError, ValueError):
    """One record is invalid; raised instead of a Rejection under the raise policy.

    Args:
        message: human explanation.
        context: location of the record.
        reason: the machine-readable reason code of the rejection.
    """

    def __init__(
        self, message: str, context: ErrorContext | None = None, reason: str = "invalid_record"
    ) -> None:
        super().__init__(message, context)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.context, self.reason))


class StepError(FinetuneWebError):
    """A step raised an exception that is not a finetune_web error."""


class AccountingError(StepError):
    """A step dropped records without rejecting them (in != out + rejected)."""


class ValidationError(FinetuneWebError, ValueError):
    """A dataset fails the checks the fine-tuning provider will run."""


class UnknownModelError(FinetuneWebError, KeyError):
    """A model name is not in the model table and no override was given."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return FinetuneWebError.__str__(self)


class ProviderError(FinetuneWebError):
    """A fine-tuning provider refused or failed a request.

    Args:
        message: what failed, the server's message, and what to do.
        context: where (the run directory).
        code: the server's error code (``insufficient_quota``...), when it sent one.
        status: the HTTP status, when there was a response.
        param: the request parameter the server blamed, when it named one.
    """

    def __init__(
        self,
        message: str,
        context: ErrorContext | None = None,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, context)
        self.code = code
        self.status = status
        self.param = param

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.context, self.code, self.status, self.param))


class ChatModelError(ProviderError):
    """A chat completion request failed for good (after any retries)."""


class QuotaExceededError(ProviderError):
    """The account has no quota left (``insufficient_quota``); retrying cannot help."""


class DailyRateLimitError(ProviderError):
    """The account's daily limit is used up (``daily_rate_limit_exceeded``)."""


class TrainingNotAvailableError(ProviderError, PermissionError):
    """Fine-tuning is closed for this account (``training_not_available``, HTTP 403)."""


class InvalidTrainingFileError(ProviderError, ValueError):
    """The provider rejected an uploaded training or validation file."""


class FineTuneJobError(ProviderError):
    """A fine-tuning job ended without a model.

    Args:
        message: the job, the provider's reason, and what to do.
        context: where (the run directory).
        code: the job's error code.
        status: always ``None`` (no HTTP status: the job itself failed).
        param: the parameter the provider blamed (``training_file``...).
        job_id: the job.
    """

    def __init__(
        self,
        message: str,
        context: ErrorContext | None = None,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, context, code, status, param)
        self.job_id = job_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.message, self.context, self.code, self.status, self.param, self.job_id),
        )


class JobCancelledError(FineTuneJobError):
    """The fine-tuning job was cancelled before it produced a model."""


class RunStateError(ConfigError):
    """A run directory's saved state does not fit the request (or cannot be read)."""


class MissingDependencyError(FinetuneWebError, ImportError):
    """An optional dependency is missing; the message gives the pip command."""


@contextmanager
def error_context(**fields: Any) -> Iterator[None]:
    """Add context to any :class:`FinetuneWebError` raised inside the block.

    Fields already set on the error win, so the innermost context is kept.

    Example::

        with error_context(path="data.jsonl", line=3):
            parse(line)
    """
    context = ErrorContext(**fields)
    try:
        yield
    except FinetuneWebError as exc:
        exc.with_context(context)
        raise
