"""Translate the OpenAI SDK's exceptions into finetune_web's provider errors.

The error classes live in :mod:`finetune_web.errors` (``ProviderError`` and
its subclasses); this module maps SDK exceptions and server error codes onto
them.  Which failures are retried is decided in
:mod:`finetune_web.backends._openai_retry`.  Messages never hold the API key:
every text that comes from the server passes through :func:`redact` first.
"""

from __future__ import annotations

import openai

from finetune_web.errors import (
    DailyRateLimitError,
    ErrorContext,
    FineTuneJobError,
    InvalidTrainingFileError,
    JobCancelledError,
    ProviderError,
    QuotaExceededError,
    RunStateError,
    TrainingNotAvailableError,
)

__all__ = [
    "NEVER_RETRY_CODES",
    "DailyRateLimitError",
    "FineTuneJobError",
    "InvalidTrainingFileError",
    "JobCancelledError",
    "ProviderError",
    "QuotaExceededError",
    "RunStateError",
    "TrainingNotAvailableError",
    "error_code",
    "redact",
    "status_of",
    "translate",
]


#: Error codes that no retry can fix.
NEVER_RETRY_CODES = frozenset(
    ("insufficient_quota", "daily_rate_limit_exceeded", "training_not_available")
)
_FILE_PARAMS = frozenset(("training_file", "validation_file", "file"))


_HINTS = {
    "insufficient_quota": (
        "the account has no quota left: add credit or raise the limit in the provider's "
        "billing settings; not retried"
    ),
    "daily_rate_limit_exceeded": (
        "the account's daily fine-tuning limit is used up: try again after it resets "
        "(midnight UTC); not retried"
    ),
    "training_not_available": (
        "self-serve fine-tuning is closed for this account (OpenAI is shutting it down; "
        "see docs/backends.md): train with the local backend, or point base_url (or azure) "
        "at another OpenAI-compatible fine-tuning provider; not retried"
    ),
}
_CLASSES: dict[str, type[ProviderError]] = {
    "insufficient_quota": QuotaExceededError,
    "daily_rate_limit_exceeded": DailyRateLimitError,
    "training_not_available": TrainingNotAvailableError,
}


def redact(text: str, secret: str | None) -> str:
    """Return ``text`` with ``secret`` masked (and its last 8 characters, for long keys)."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    tail = secret[-8:] if len(secret) >= 12 else None
    return text.replace(tail, "***") if tail else text


def error_code(exc: openai.APIError) -> str | None:
    """Return the error's code, or its type when that is one of the never-retry codes."""
    if exc.code:
        return exc.code
    kind = getattr(exc, "type", None)
    return kind if isinstance(kind, str) and kind in NEVER_RETRY_CODES else None


def status_of(exc: BaseException) -> int | None:
    """Return the HTTP status of an SDK error, if it had a response."""
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def translate(
    exc: openai.APIError,
    what: str,
    *,
    secret: str | None,
    context: ErrorContext | None = None,
    attempts: int = 1,
) -> ProviderError:
    """Turn an SDK exception into the matching :class:`ProviderError`.

    Args:
        exc: the SDK's exception.
        what: the action that failed ("upload train.jsonl", "create the job"...).
        secret: the API key, masked wherever it would appear.
        context: where (the run directory).
        attempts: how many times the request was sent.

    Returns:
        The exception to raise (``from exc``).
    """
    code, status = error_code(exc), status_of(exc)
    param = exc.param if isinstance(exc.param, str) else None
    detail = exc.message
    if isinstance(exc.body, dict) and isinstance(exc.body.get("message"), str):
        detail = exc.body["message"]
    parts = [f"HTTP {status}" if status is not None else type(exc).__name__]
    if code:
        parts.append(f"code {code}")
    if param:
        parts.append(f"param {param}")
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    message = f"{what} failed{tried}: {detail} ({', '.join(parts)})"
    cls: type[ProviderError] = _CLASSES.get(code or "", ProviderError)
    hint = _HINTS.get(code or "")
    if hint is None and status == 401:
        hint = "check the API key (api_key=..., or the OPENAI_API_KEY environment variable)"
    if cls is ProviderError and status == 400 and (param in _FILE_PARAMS or "file" in (code or "")):
        cls = InvalidTrainingFileError
        hint = "fix the file (validate it with finetune_web.formats.validate_file) and run again"
    if hint:
        message = f"{message}; {hint}"
    return cls(redact(message, secret), context, code, status, param)
