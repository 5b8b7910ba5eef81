"""OpenAIChatModel against a respx fake: retries, faults, the on-disk cache, concurrency, secrets.

Responses are built from the openai SDK's own ``ChatCompletion`` type and
errors use the real status codes and ``{"error": {...}}`` bodies.  No test
sleeps: the model's ``sleep`` is a recorder.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionUsage

from finetune_web.errors import ConfigError
from finetune_web.evaluation import (
    ChatModelError,
    ChatOptions,
    ChatRetry,
    MultipleChoiceEvaluator,
    OpenAIChatModel,
    StderrProgress,
)
from finetune_web.records import Example, Message

BASE_URL = "https://llm.fake-provider.test/v1"
SECRET = "sk-test-0123456789abcdefSECRET"


def completion(content: str, model: str = "gpt-test") -> dict[str, Any]:
    """A chat.completions response body, as the SDK's own type dumps it."""
    return ChatCompletion(
        id="chatcmpl-1",
        object="chat.completion",
        created=1_760_000_000,
        model=model,
        choices=[
            Choice(
                index=0,
                finish_reason="stop",
                message=ChatCompletionMessage(role="assistant", content=content),
            )
        ],
        usage=CompletionUsage(prompt_tokens=10, completion_tokens=1, total_tokens=11),
    ).model_dump(mode="json")


def error(
    status: int, message: str, kind: str, code: str | None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """An OpenAI error response."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return httpx.Response(status, json=body, headers=headers or {})


def rate_limited(seconds: str) -> httpx.Response:
    """A 429 rate-limit answer asking to wait ``seconds``."""
    return error(
        429,
        "Rate limit reached for requests",
        "requests",
        "rate_limit_exceeded",
        {"retry-after": seconds},
    )


def server_error() -> httpx.Response:
    """A 500 answer."""
    return error(
        500, "The server had an error while processing your request.", "server_error", None
    )


def echo(request: httpx.Request) -> httpx.Response:
    """Answer with the last message's text reversed."""
    body = json.loads(request.content)
    return httpx.Response(200, json=completion(body["messages"][-1]["content"][::-1]))


def prompt(text: str) -> list[Message]:
    """A one-turn prompt."""
    return [Message(role="system", content="Be brief."), Message(role="user", content=text)]


@pytest.fixture
def sleeps() -> list[float]:
    """Where the model's waits are recorded instead of slept."""
    return []


@pytest.fixture
def make_model(sleeps: list[float], tmp_path: Path) -> Callable[..., OpenAIChatModel]:
    """Build a model on the fake endpoint with a recording sleep (and no cache unless asked)."""

    def build(**overrides: Any) -> OpenAIChatModel:
        settings: dict[str, Any] = {
            "model": "gpt-test",
            "base_url": BASE_URL,
            "api_key": SECRET,
            "retry": ChatRetry(max_attempts=4, initial_wait=0.5),
            "sleep": sleeps.append,
        }
        settings.update(overrides)
        return OpenAIChatModel(**settings)

    return build


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_429_and_500_are_retried_honouring_retry_after(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel], sleeps: list[float]
) -> None:
    """A 429 with retry-after: 2 waits 2 s, a 500 then waits by backoff, the third try answers."""
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[rate_limited("2"), server_error(), httpx.Response(200, json=completion("B"))]
    )
    reply = make_model().complete(prompt("Pick one."))
    assert reply == Message(role="assistant", content="B")
    assert route.call_count == 3
    assert sleeps == [2.0, 1.0]


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_timeouts_are_retried(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel], sleeps: list[float]
) -> None:
    """A read timeout is retried like a 5xx."""
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[httpx.ReadTimeout("timed out"), httpx.Response(200, json=completion("C"))]
    )
    assert make_model().complete(prompt("Pick one.")).text == "C"
    assert route.call_count == 2 and sleeps == [0.5]


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_insufficient_quota_is_never_retried(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel], sleeps: list[float]
) -> None:
    """429 insufficient_quota fails at once with a ChatModelError saying so."""
    route = respx_mock.post("/chat/completions").mock(
        return_value=error(
            429, "You exceeded your current quota.", "insufficient_quota", "insufficient_quota"
        )
    )
    with pytest.raises(ChatModelError, match="not retried") as info:
        make_model().complete(prompt("Pick one."))
    assert (info.value.status, info.value.code) == (429, "insufficient_quota")
    assert route.call_count == 1 and sleeps == []


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_gives_up_after_the_last_attempt(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel], sleeps: list[float]
) -> None:
    """A server that keeps failing is tried max_attempts times, then the error names the tries."""
    route = respx_mock.post("/chat/completions").mock(return_value=server_error())
    with pytest.raises(ChatModelError, match="after 4 attempts") as info:
        make_model().complete(prompt("Pick one."))
    assert info.value.status == 500
    assert route.call_count == 4 and sleeps == [0.5, 1.0, 2.0]
    assert pickle.loads(pickle.dumps(info.value)).status == 500


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_on_disk_cache_second_run_sends_zero_requests(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel], tmp_path: Path
) -> None:
    """A re-run with the same model, messages and options is served from disk: no request.

    Changing an option (temperature) is a different key and asks again.
    """
    route = respx_mock.post("/chat/completions").mock(side_effect=echo)
    prompts = [prompt(f"question {n}") for n in range(5)]
    first = make_model(cache_dir=tmp_path / "cache").complete_many(prompts)
    assert route.call_count == 5
    again = make_model(cache_dir=tmp_path / "cache").complete_many(prompts)
    assert route.call_count == 5  # second run: zero requests
    assert again == first == [Message(role="assistant", content=f"{n} noitseuq") for n in range(5)]
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 5
    make_model(cache_dir=tmp_path / "cache", options=ChatOptions(temperature=0.5)).complete(
        prompts[0]
    )
    assert route.call_count == 6


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_cached_rerun_needs_no_api_key(
    respx_mock: respx.MockRouter,
    make_model: Callable[..., OpenAIChatModel],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key is read only when a request must be sent; without one, a miss is a ConfigError."""
    respx_mock.post("/chat/completions").mock(side_effect=echo)
    make_model(cache_dir=tmp_path).complete(prompt("hello"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keyless = make_model(cache_dir=tmp_path, api_key=None)
    assert keyless.complete(prompt("hello")).text == "olleh"
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        keyless.complete(prompt("not cached"))


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_key_comes_from_the_environment_by_default(
    respx_mock: respx.MockRouter,
    make_model: Callable[..., OpenAIChatModel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no api_key, OPENAI_API_KEY is sent as the bearer token."""
    route = respx_mock.post("/chat/completions").mock(side_effect=echo)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    make_model(api_key=None).complete(prompt("x"))
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-from-env"


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_the_key_never_shows_in_repr_logs_or_errors(
    respx_mock: respx.MockRouter,
    make_model: Callable[..., OpenAIChatModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Even when the server echoes the key, repr, retry logs and errors mask it."""
    echoed = f"Incorrect API key provided: {SECRET}."
    respx_mock.post("/chat/completions").mock(
        side_effect=[
            error(500, echoed, "server_error", None),
            error(401, echoed, "invalid_request_error", "invalid_api_key"),
        ]
    )
    model = make_model()
    with caplog.at_level(logging.WARNING), pytest.raises(ChatModelError) as info:
        model.complete(prompt("x"))
    assert SECRET not in repr(model) and "api_key='" not in repr(model)
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert "check the API key" in str(info.value)
    assert "retrying" in caplog.text and SECRET not in caplog.text
    assert SECRET not in str(pickle.loads(pickle.dumps(model)))


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_requests_carry_the_options_and_no_training_fields(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel]
) -> None:
    """The body holds the model, temperature 0 by default, the messages without ``weight``."""
    route = respx_mock.post("/chat/completions").mock(side_effect=echo)
    model = make_model(options=ChatOptions(max_tokens=5, stop=["\n"]))
    model.complete(
        [Message(role="user", content="hi"), Message(role="assistant", content="x", weight=0)][:1]
    )
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
        "max_tokens": 5,
        "stop": ["\n"],
    }
    assert model.request([Message(role="user", content="a", weight=1)])["messages"] == [
        {"role": "user", "content": "a"}
    ]


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_complete_many_keeps_order_sends_duplicates_once_and_bounds_concurrency(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel]
) -> None:
    """Replies come back in input order; equal prompts go once; exactly 4 requests fly at once.

    Every request waits at a 4-party barrier: fewer than 4 in flight would
    break it, and a counter records that never more than 4 are in flight.
    """
    barrier = threading.Barrier(4, timeout=10)
    lock = threading.Lock()
    flying = [0, 0]  # now, most

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            flying[0] += 1
            flying[1] = max(flying)
        barrier.wait()
        with lock:
            flying[0] -= 1
        return echo(request)

    route = respx_mock.post("/chat/completions").mock(side_effect=handler)
    texts = [f"q{n}" for n in range(8)] + ["q3", "q5"]
    replies = make_model(concurrency=4).complete_many([prompt(t) for t in texts])
    assert [r.text for r in replies] == [t[::-1] for t in texts]
    assert route.call_count == 8 and flying[1] == 4


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_progress_is_reported(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel], tmp_path: Path
) -> None:
    """The progress callback sees cached answers first, then each new one, ending at total."""
    respx_mock.post("/chat/completions").mock(side_effect=echo)
    make_model(cache_dir=tmp_path).complete(prompt("q0"))
    seen: list[tuple[int, int]] = []
    model = make_model(
        cache_dir=tmp_path, progress=lambda done, total: seen.append((done, total)), concurrency=1
    )
    model.complete_many([prompt(f"q{n}") for n in range(3)])
    assert seen == [(1, 3), (2, 3), (3, 3)]
    stream = io.StringIO()
    StderrProgress("eval gpt-test", stream)(3, 3)
    assert stream.getvalue() == "\reval gpt-test: 3/3 (100%)\n"


@respx.mock(base_url=BASE_URL, assert_all_called=False)
def test_evaluators_use_complete_many(
    respx_mock: respx.MockRouter, make_model: Callable[..., OpenAIChatModel]
) -> None:
    """An evaluator on an API model sends every prompt through the concurrent path and scores it."""
    route = respx_mock.post("/chat/completions").mock(
        side_effect=lambda request: httpx.Response(200, json=completion("The answer is A."))
    )
    examples = [
        Example(
            messages=[
                Message(role="user", content=f"Q{n}"),
                Message(role="assistant", content="AB"[n % 2]),
            ]
        )
        for n in range(6)
    ]
    result = MultipleChoiceEvaluator().evaluate(make_model(concurrency=3), examples)
    assert result.per_example == (1.0, 0.0, 1.0, 0.0, 1.0, 0.0)
    assert result.model == "gpt-test" and route.call_count == 6
