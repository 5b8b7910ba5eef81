"""Fixtures for the backend tests: a fake clock, the fake API, data and a backend factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetune_web.backends import OpenAIBackend, PollSchedule
from finetune_web.records import Example, Message, Preference
from tests.backends.fake_openai import BASE_URL, FakeClock, FakeOpenAI, JobScript

#: The recognisable fake key every test uses; no log, repr, file or error may show it.
SECRET = "sk-test-SECRET123"
MODEL = "gpt-4o-mini-2024-07-18"
#: A short job: 10 s validating, 20 s queued, 5 minutes running, 6 steps.
SHORT = JobScript(
    phases=(("validating_files", 10.0), ("queued", 20.0), ("running", 300.0)), steps=6
)


def chat(index: int) -> Example:
    """Return a small valid chat example."""
    return Example(
        messages=[
            Message(role="system", content="You write short product blurbs."),
            Message(role="user", content=f"Describe product {index}."),
            Message(role="assistant", content=f"Product {index} is sturdy and light."),
        ]
    )


def preference(index: int) -> Preference:
    """Return a small valid DPO pair."""
    return Preference(
        messages=[Message(role="user", content=f"Describe product {index}.")],
        preferred=Message(role="assistant", content=f"Product {index}: sturdy, light."),
        non_preferred=Message(role="assistant", content="It is a product."),
    )


@pytest.fixture
def clock() -> FakeClock:
    """Simulated time shared by the fake and the backend."""
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeOpenAI:
    """A fresh fake API with the short job script."""
    return FakeOpenAI(clock=clock, script=SHORT)


@pytest.fixture
def train() -> list[Example]:
    """Twelve valid training examples."""
    return [chat(i) for i in range(12)]


@pytest.fixture
def validation() -> list[Example]:
    """Three valid validation examples (different content from the training ones)."""
    return [chat(100 + i) for i in range(3)]


@pytest.fixture
def make_backend(
    tmp_path: Path, fake: FakeOpenAI, clock: FakeClock
) -> Callable[..., OpenAIBackend]:
    """Return a factory of backends talking to ``fake`` (override any field by keyword)."""

    def make(**overrides: Any) -> OpenAIBackend:
        settings: dict[str, Any] = {
            "model": MODEL,
            "run_dir": tmp_path / "run",
            "api_key": SECRET,
            "base_url": BASE_URL,
            "http_transport": fake.transport,
            "sleep": clock.sleep,
            "clock": clock,
            "poll": PollSchedule(min_interval=20, max_interval=60),  # fewer polls: faster tests
        }
        settings.update(overrides)
        return OpenAIBackend(**settings)

    return make
