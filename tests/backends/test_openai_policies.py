"""The polling schedule and the retry policy, as pure functions of time and errors."""

from __future__ import annotations

import email.utils

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finetune_web.backends import PollSchedule, RetryPolicy
from finetune_web.backends._openai_errors import redact
from finetune_web.backends._openai_retry import is_ambiguous, is_retryable, retry_after_seconds

REQUEST = httpx.Request("POST", "https://api.test/v1/fine_tuning/jobs")


def _status_error(status: int, code: str | None = None, **headers: str) -> openai.APIStatusError:
    response = httpx.Response(status, headers=headers, request=REQUEST)
    body = {"message": "m", "type": code or "error", "param": None, "code": code}
    return openai.APIStatusError("m", response=response, body=body)  # type: ignore[arg-type]


@given(st.floats(0, 1e7), st.floats(0, 1e7))
def test_poll_interval_is_bounded_and_never_shrinks(first: float, second: float) -> None:
    """Waits stay within [min_interval, max_interval] and do not shrink as time passes."""
    schedule = PollSchedule()
    early, late = sorted((first, second))
    assert 5.0 <= schedule.interval(early) <= schedule.interval(late) <= 60.0


def test_poll_schedule_is_frequent_early_sparse_later() -> None:
    """5 s for the first 50 s, 60 s after 10 minutes, 60 s while paused; at most 720 polls/h."""
    schedule = PollSchedule()
    assert [schedule.interval(t) for t in (0, 49, 100, 600, 7200)] == [5, 5, 10, 60, 60]
    assert schedule.interval(0, "paused") == 60
    assert schedule.max_polls_per_hour == 720
    with pytest.raises(ValueError, match="max_interval"):
        PollSchedule(min_interval=30, max_interval=10)


def test_what_is_retried() -> None:
    """Timeouts, resets, 408/409/429/5xx are retried; other 4xx and the three codes are not."""
    assert is_retryable(openai.APITimeoutError(REQUEST))
    assert is_retryable(openai.APIConnectionError(request=REQUEST))
    for status in (408, 409, 429, 500, 502, 503):
        assert is_retryable(_status_error(status)), status
    for status in (400, 401, 403, 404, 422):
        assert not is_retryable(_status_error(status)), status
    for code in ("insufficient_quota", "daily_rate_limit_exceeded"):
        assert not is_retryable(_status_error(429, code))
    assert not is_retryable(_status_error(403, "training_not_available"))
    assert not is_retryable(ValueError("not an API error"))


def test_what_is_ambiguous() -> None:
    """Only failures after which the server may have acted count as ambiguous."""
    assert is_ambiguous(openai.APITimeoutError(REQUEST))
    assert is_ambiguous(_status_error(500)) and is_ambiguous(_status_error(409))
    assert not is_ambiguous(_status_error(429)) and not is_ambiguous(_status_error(400))


def test_retry_after_forms() -> None:
    """retry-after in seconds or as an HTTP date, retry-after-ms, capped by the policy."""
    assert retry_after_seconds(_status_error(429, **{"retry-after": "3"})) == 3.0
    assert retry_after_seconds(_status_error(429, **{"retry-after-ms": "250"})) == 0.25
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds(_status_error(429, **{"retry-after": date}), now=1_000_000) == 30
    assert retry_after_seconds(_status_error(429)) is None
    policy = RetryPolicy()
    assert policy.wait(1, _status_error(429, **{"retry-after": "600"})) == 120.0
    assert [policy.wait(n, None) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_redact_masks_the_key_and_its_tail() -> None:
    """The whole key and its last 8 characters are masked."""
    assert redact("key sk-test-SECRET123 and ...SECRET123", "sk-test-SECRET123") == (
        "key *** and ...S***"
    )
    assert redact("nothing", None) == "nothing"
