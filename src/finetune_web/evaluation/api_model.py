"""A chat model behind any OpenAI-compatible chat completions endpoint, built for evaluation.

:class:`OpenAIChatModel` sends many prompts at once (a bounded thread
pool), retries what can succeed later (timeouts, connection errors, HTTP
408, 409, 429 and 5xx, honouring ``retry-after``; never
``insufficient_quota``), caches every reply on disk so a re-run costs
nothing, and reports progress.  The openai SDK is used with
``max_retries=0``: the retries here are the only ones.

The API key comes from ``api_key`` or, by default, the ``OPENAI_API_KEY``
environment variable (read only when a request must be sent); it never
appears in ``repr``, logs or error messages.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TextIO

import attrs
import httpx
import openai
import tenacity

from finetune_web._retry_after import retry_after_seconds
from finetune_web.errors import ChatModelError, ConfigError
from finetune_web.evaluation._cache import ResponseCache, request_key
from finetune_web.formats import message_to_json
from finetune_web.records import Message, ToolCall

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "ChatModelError",
    "ChatOptions",
    "ChatRetry",
    "OpenAIChatModel",
    "ProgressCallback",
    "StderrProgress",
]

log = logging.getLogger("finetune_web.evaluation")

#: The environment variable read for the API key when none is given.
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

#: Called with (answers ready, answers asked) as a batch progresses.
ProgressCallback = Callable[[int, int], None]

_NEVER_RETRY = frozenset(("insufficient_quota", "daily_rate_limit_exceeded"))


@attrs.frozen(kw_only=True)
class ChatOptions:
    """Sampling parameters sent with every request (``None`` = the server's default).

    Attributes:
        temperature: 0 by default, so answers repeat.
        max_tokens: the longest answer.
        top_p: nucleus sampling.
        seed: the provider's sampling seed.
        stop: stop sequences.
    """

    temperature: float | None = 0.0
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )

    def to_params(self) -> dict[str, Any]:
        """Return the parameters as the request sends them (unset ones left out)."""
        params = {k: v for k, v in attrs.asdict(self).items() if v is not None}
        if "stop" in params:
            params["stop"] = list(params["stop"])
        return params


@attrs.frozen(kw_only=True)
class ChatRetry:
    """How requests are retried.

    Attributes:
        max_attempts: sends of one request at most (the first included).
        initial_wait: seconds before the second attempt, doubled each time.
        max_wait: the longest wait when the server names none.
        max_retry_after: the longest ``retry-after`` honoured.
    """

    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    initial_wait: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))

    def seconds(self, attempt: int, error: BaseException | None) -> float:
        """Return the wait after failed attempt ``attempt`` (1-based)."""
        if isinstance(error, openai.APIStatusError):
            asked = retry_after_seconds(error.response.headers)
            if asked is not None:
                return min(asked, self.max_retry_after)
        return float(min(self.initial_wait * 2 ** (attempt - 1), self.max_wait))


def _retryable(error: BaseException) -> bool:
    if isinstance(error, openai.APIConnectionError):  # timeouts included
        return True
    if not isinstance(error, openai.APIStatusError) or error.code in _NEVER_RETRY:
        return False
    return error.status_code in (408, 409, 429) or error.status_code >= 500


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


@attrs.frozen
class StderrProgress:
    """A progress callback printing ``label: done/total (pct%)`` on one updating line.

    Attributes:
        label: what is being done (``"eval gpt-4o-mini"``).
        stream: where to write; ``None`` means standard error.
    """

    label: str = "eval"
    stream: TextIO | None = attrs.field(default=None, eq=False)

    def __call__(self, done: int, total: int) -> None:
        """Show the progress (a newline once ``done == total``)."""
        stream = self.stream if self.stream is not None else sys.stderr
        percent = 100 * done // total if total else 100
        end = "\n" if done >= total else ""
        stream.write(f"\r{self.label}: {done}/{total} ({percent}%){end}")
        stream.flush()


def _reply(completion: Any, model: str) -> Message:
    if not completion.choices:
        raise ChatModelError(f"the chat completion for model {model} has no choices")
    message = completion.choices[0].message
    calls = [
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in (message.tool_calls or ())
        if getattr(call, "function", None) is not None
    ]
    return Message(role="assistant", content=message.content, tool_calls=calls)


def _wire(message: Message) -> dict[str, Any]:
    body = message_to_json(message)
    body.pop("weight", None)  # a training-only field the chat API rejects
    return body


@attrs.frozen(kw_only=True)
class OpenAIChatModel:
    """A :class:`~finetune_web.interfaces.ChatModel` over an OpenAI-compatible chat API.

    Attributes:
        model: the model name sent in requests (also its ``model_id``).
        base_url: the API root (``None``: the SDK's default, OpenAI).
        api_key: the key; ``None`` reads the ``api_key_env`` variable when a
            request must be sent.  Keyless local servers still need some value.
        api_key_env: the environment variable holding the key.
        options: sampling parameters.
        concurrency: requests in flight at once in :meth:`complete_many`.
        timeout: seconds before one request times out (then it is retried).
        retry: the retry policy.
        cache_dir: a folder caching every reply by SHA-256 of the model, base
            URL, messages and options; ``None`` disables caching.
        progress: called with (done, total) during :meth:`complete_many`
            (e.g. :class:`StderrProgress`); ``None`` shows nothing.
        sleep: how to wait between retries (tests pass a fake).
        http_transport: an ``httpx`` transport for the requests (a proxy, or a
            test double such as ``httpx.MockTransport``); ``None``: httpx's default.
    """

    model: str
    base_url: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    api_key_env: str = DEFAULT_API_KEY_ENV
    options: ChatOptions = attrs.field(factory=ChatOptions)
    concurrency: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    timeout: float = 60.0
    retry: ChatRetry = attrs.field(factory=ChatRetry)
    cache_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    progress: ProgressCallback | None = attrs.field(default=None, eq=False, repr=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)
    http_transport: httpx.BaseTransport | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def model_id(self) -> str:
        """The model name."""
        return self.model

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        """Return what identifies a request: model, base URL, messages and options."""
        return {
            "model": self.model,
            "base_url": self.base_url,
            "messages": [_wire(message) for message in messages],
            "parameters": self.options.to_params(),
        }

    def complete(self, messages: Sequence[Message]) -> Message:
        """Return the assistant's reply to ``messages`` (cached, retried).

        Raises:
            ChatModelError: the request failed for good.
            ConfigError: no API key is set.
        """
        return self.complete_many([messages])[0]

    def complete_many(
        self, prompts: Sequence[Sequence[Message]], *, concurrency: int | None = None
    ) -> list[Message]:
        """Return the reply to each prompt, in order, sending up to ``concurrency`` at once.

        Cached replies are used as they are; identical prompts are sent once.
        On a failure the requests not yet sent are cancelled and the error is
        raised; replies already received stay cached, so a re-run goes on
        from there.

        Args:
            prompts: the conversations to answer.
            concurrency: overrides the model's ``concurrency`` for this call.

        Raises:
            ChatModelError: a request failed for good.
            ConfigError: no API key is set, or ``concurrency`` < 1.
        """
        workers = self.concurrency if concurrency is None else concurrency
        if workers < 1:
            raise ConfigError(f"concurrency must be >= 1, not {workers}")
        cache = ResponseCache(self.cache_dir) if self.cache_dir is not None else None
        requests = [self.request(prompt) for prompt in prompts]
        keys = [request_key(request) for request in requests]
        answers: dict[str, Message] = {}
        todo: dict[str, dict[str, Any]] = {}
        for key, request in zip(keys, requests, strict=True):
            hit = cache.get(key) if cache is not None and key not in answers else None
            if hit is not None:
                answers[key] = hit
            elif key not in answers:
                todo[key] = request
        total = len(answers) + len(todo)
        if self.progress is not None and total:
            self.progress(len(answers), total)
        if todo:
            secret = self._key()
            # The SDK accepts an httpx.Client (its types name only httpx2.Client); this one
            # keeps a connection per worker alive and honours http_transport.
            http: Any = httpx.Client(
                transport=self.http_transport,
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            )
            client = openai.OpenAI(
                api_key=secret,
                base_url=self.base_url,
                max_retries=0,
                timeout=self.timeout,
                http_client=http,
            )
            try:
                for key, reply in self._run(client, secret, todo, workers, cache):
                    answers[key] = reply
                    if self.progress is not None:
                        self.progress(len(answers), total)
            finally:
                client.close()
                http.close()
        return [answers[key] for key in keys]

    def _key(self) -> str:
        key = self.api_key if self.api_key is not None else os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"no API key for {self.model}: pass api_key=... or set the {self.api_key_env} "
                "environment variable (a keyless local server accepts any value)"
            )
        return key

    def _run(
        self,
        client: openai.OpenAI,
        secret: str,
        todo: dict[str, dict[str, Any]],
        workers: int,
        cache: ResponseCache | None,
    ) -> Iterator[tuple[str, Message]]:
        """Yield ``(key, reply)`` as replies arrive, at most ``workers`` requests at once."""
        if workers == 1 or len(todo) == 1:
            for key, request in todo.items():
                yield key, self._send(client, secret, key, request, cache)
            return
        with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            pending: dict[Future[Message], str] = {
                pool.submit(self._send, client, secret, key, request, cache): key
                for key, request in todo.items()
            }
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        key = pending.pop(future)
                        yield key, future.result()
            finally:
                for future in pending:
                    future.cancel()

    def _send(
        self,
        client: openai.OpenAI,
        secret: str,
        key: str,
        request: dict[str, Any],
        cache: ResponseCache | None,
    ) -> Message:
        """Send one request with retries, cache the reply and return it."""
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            return client.chat.completions.create(
                model=self.model, messages=request["messages"], **request["parameters"]
            )

        def wait_seconds(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return self.retry.seconds(state.attempt_number, error)

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            pause = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning(
                "chat completion for %s: attempt %d failed (%s); retrying in %.1f s",
                self.model,
                state.attempt_number,
                _redact(f"{type(error).__name__}: {error}", secret),
                pause,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.max_attempts),
            wait=wait_seconds,
            retry=tenacity.retry_if_exception(_retryable),
            sleep=self.sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            reply = _reply(retrying(attempt), self.model)
        except openai.APIError as error:
            raise self._error(error, attempts, secret) from error
        if cache is not None:
            cache.put(key, request, reply)
        return reply

    def _error(self, error: openai.APIError, attempts: int, secret: str) -> ChatModelError:
        status = error.status_code if isinstance(error, openai.APIStatusError) else None
        code = error.code if isinstance(error.code, str) else None
        detail = error.message
        if isinstance(error.body, dict) and isinstance(error.body.get("message"), str):
            detail = error.body["message"]
        where = f"HTTP {status}" if status is not None else type(error).__name__
        if code:
            where += f", code {code}"
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        message = f"chat completion for model {self.model} failed{tried}: {detail} ({where})"
        if status == 401:
            message += f"; check the API key (api_key=... or {self.api_key_env})"
        elif code in _NEVER_RETRY:
            message += "; the account's quota or daily limit is used up: not retried"
        elif status == 404:
            message += "; check the model name and base_url"
        return ChatModelError(_redact(message, secret), None, code=code, status=status)
