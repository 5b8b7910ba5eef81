"""No secret in any log line, repr, saved file, description or exception text."""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_web.backends import OpenAIBackend, ProviderError
from finetune_web.records import Example
from tests.backends.conftest import SECRET
from tests.backends.fake_openai import FakeOpenAI, Fault

Factory = Callable[..., OpenAIBackend]


def _texts_of(error: BaseException) -> list[str]:
    return [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        repr(pickle.loads(pickle.dumps(error))) if isinstance(error, ProviderError) else "",
    ]


def test_no_secret_anywhere_through_a_faulty_run(
    make_backend: Factory,
    fake: FakeOpenAI,
    train: list[Example],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through retries, an echoed key in a 401, a success and job control, the key never shows.

    Scanned: every log record of every logger at DEBUG (the SDK's and httpx's
    included), the backend's repr and description, every file of the run
    directory, the returned model, and the text, repr and traceback of each
    exception raised.
    """
    backend = make_backend()
    texts: list[str] = [repr(backend), json.dumps(backend.describe())]
    with caplog.at_level(logging.DEBUG):
        fake.inject(
            "files.list",
            Fault.http(429, "rate_limit_exceeded", headers={"retry-after": "1"}),
            Fault.http(401, "invalid_api_key", message=f"Incorrect API key provided: {SECRET}"),
        )
        with pytest.raises(ProviderError) as caught:
            backend.fine_tune(train)
        texts += _texts_of(caught.value)
        fake.inject("jobs.create", Fault.timeout(after=True))
        fake.inject("jobs.retrieve", Fault(status=503))
        model = backend.fine_tune(train)
        texts += [repr(model), repr(backend.status()), repr(backend.checkpoints())]
        for error_route in ("jobs.cancel",):
            fake.inject(error_route, Fault.http(400, message=f"bad key {SECRET}"))
            with pytest.raises(ProviderError) as again:
                backend.cancel()
            texts += _texts_of(again.value)
    assert caplog.records, "the run logs what it does"
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    for path in backend.run_dir.rglob("*"):
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    leaks = [text for text in texts if SECRET in text or SECRET[-8:] in text]
    assert leaks == []
    assert set(fake.auth) == {f"Bearer {SECRET}"}  # the key was used, only where it belongs
