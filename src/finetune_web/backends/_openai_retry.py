"""The one retry layer around the SDK (whose own retries are switched off).

:class:`Caller` retries timeouts, connection errors and HTTP 408, 409, 429
and 5xx, waiting as long as ``retry-after`` / ``retry-after-ms`` asks (capped
at 120 s) or 1, 2, 4... s otherwise, and never retries the codes in
:data:`~finetune_web.backends._openai_errors.NEVER_RETRY_CODES`.  Objects
that must not exist twice (files, jobs) are created with
:meth:`Caller.create_once`, which looks them up after an ambiguous failure
instead of blindly sending the request again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import attrs
import openai
import tenacity

from finetune_web._retry_after import retry_after_seconds as _header_wait
from finetune_web.backends._openai_errors import (
    NEVER_RETRY_CODES,
    error_code,
    redact,
    status_of,
    translate,
)
from finetune_web.errors import ErrorContext

__all__ = ["Caller", "RetryPolicy", "is_ambiguous", "is_retryable", "retry_after_seconds"]

T = TypeVar("T")
log = logging.getLogger("finetune_web.backends.openai")
_RETRY_STATUSES = frozenset((408, 409, 429))


def is_retryable(exc: BaseException) -> bool:
    """Say whether a failed request is worth sending again.

    True for timeouts, connection errors and HTTP 408, 409, 429 and 5xx,
    except the codes in :data:`NEVER_RETRY_CODES`.
    """
    if not isinstance(exc, openai.APIError):
        return False
    if error_code(exc) in NEVER_RETRY_CODES:
        return False
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    status = status_of(exc)
    return status is not None and (status in _RETRY_STATUSES or status >= 500)


def is_ambiguous(exc: BaseException) -> bool:
    """Say whether the server may have acted on a request that failed.

    True for timeouts, connection errors, 409 and 5xx: the object may exist
    although no response said so.
    """
    if isinstance(exc, openai.APIConnectionError):
        return True
    status = status_of(exc)
    return status is not None and (status == 409 or status >= 500)


def retry_after_seconds(exc: BaseException, now: float | None = None) -> float | None:
    """Return the wait a failed request's response asked for, if any.

    Args:
        exc: the failed request's exception.
        now: the current Unix time, for an HTTP-date ``retry-after``.
    """
    if not isinstance(exc, openai.APIStatusError):
        return None
    return _header_wait(exc.response.headers, now)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how long :class:`Caller` retries.

    Attributes:
        max_attempts: sends of one request at most (the first one included).
        initial_wait: seconds before the second attempt; doubled each time.
        max_wait: the longest wait without a ``retry-after`` header.
        max_retry_after: the longest ``retry-after`` honoured (longer asks are capped).
    """

    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    initial_wait: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))

    def wait(self, attempt: int, exc: BaseException | None) -> float:
        """Return the seconds to wait after failed attempt number ``attempt`` (1-based)."""
        asked = retry_after_seconds(exc) if exc is not None else None
        if asked is not None:
            return min(asked, self.max_retry_after)
        return float(min(self.initial_wait * 2 ** (attempt - 1), self.max_wait))


@attrs.frozen(kw_only=True)
class Caller:
    """Sends SDK calls with retries, and turns SDK errors into :class:`ProviderError`.

    Attributes:
        policy: the retry policy.
        sleep: how to wait (``time.sleep``; tests pass a fake clock's).
        secret: the API key, masked in every message.
        context: added to every error (the run directory).
    """

    policy: RetryPolicy
    sleep: Callable[[float], None]
    secret: str | None = attrs.field(default=None, repr=False)
    context: ErrorContext | None = None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.policy.wait(state.attempt_number, exc)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "attempt %d failed (%s); retrying in %.1f s",
            state.attempt_number,
            redact(f"{type(exc).__name__}: {exc}", self.secret),
            wait,
        )

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Call ``fn``, retrying what :func:`is_retryable` allows.

        Args:
            what: the action, for messages ("list files").
            fn: the SDK call.

        Returns:
            What ``fn`` returned.

        Raises:
            ProviderError: (or a subclass) once the call cannot succeed.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(is_retryable),
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return fn()

        try:
            return retrying(attempt)
        except openai.APIError as exc:
            error = translate(
                exc, what, secret=self.secret, context=self.context, attempts=attempts
            )
            if redact(str(exc), self.secret) != str(exc):
                raise error from None  # the SDK's text echoes the key: do not chain it
            raise error from exc

    def create_once(
        self,
        what: str,
        create: Callable[[], T],
        find: Callable[[], T | None],
        *,
        look_first: bool = True,
    ) -> T:
        """Create an object that must not be created twice (a file, a job).

        Before the first attempt (when ``look_first``), and after any attempt
        that failed ambiguously (see :func:`is_ambiguous`), ``find`` looks the
        object up; only when it is absent is ``create`` sent (again).

        Args:
            what: the action, for messages.
            create: the SDK call creating the object.
            find: looks the object up; ``None`` when it does not exist.
            look_first: look the object up before the first attempt too.

        Returns:
            The object found or created.

        Raises:
            ProviderError: once creating cannot succeed.
        """
        look = look_first

        def attempt() -> T:
            nonlocal look
            if look:
                found = find()
                if found is not None:
                    return found
                look = False
            try:
                return create()
            except openai.APIError as exc:
                look = is_ambiguous(exc)
                raise

        return self.call(what, attempt)
