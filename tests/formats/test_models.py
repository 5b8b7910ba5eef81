"""Tests for the model table and model-name resolution."""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import pytest

from finetune_web.errors import UnknownModelError
from finetune_web.formats import (
    JOB_CREATION_ENDS,
    MODEL_TABLE,
    PRICES_AS_OF,
    job_creation_warning,
    resolve_model,
    shutdown_warning,
)


@pytest.mark.parametrize(
    ("name", "encoding", "limit", "price", "shutdown"),
    [
        ("gpt-4o", "o200k_base", 65_536, 25.0, date(2027, 1, 14)),
        ("gpt-4o-mini", "o200k_base", 65_536, 3.0, date(2027, 1, 14)),
        ("gpt-4.1", "o200k_base", 65_536, 25.0, date(2027, 1, 14)),
        ("gpt-4.1-mini", "o200k_base", 65_536, 5.0, date(2027, 1, 14)),
        ("gpt-4.1-nano", "o200k_base", 32_768, 1.5, date(2026, 10, 23)),
        ("gpt-3.5-turbo", "cl100k_base", 16_385, 8.0, date(2026, 10, 23)),
        ("gpt-3.5-turbo-0125", "cl100k_base", 16_385, 8.0, date(2026, 10, 23)),
        ("gpt-3.5-turbo-1106", "cl100k_base", 16_385, 8.0, date(2026, 10, 23)),
        ("gpt-3.5-turbo-0613", "cl100k_base", 4_096, 8.0, date(2026, 10, 23)),
        ("babbage-002", "cl100k_base", 16_384, 0.40, date(2026, 9, 28)),
        ("davinci-002", "cl100k_base", 16_384, 6.0, date(2026, 9, 28)),
    ],
)
def test_table_holds_the_published_facts(
    name: str, encoding: str, limit: int, price: float, shutdown: date
) -> None:
    """Each model's encoding, per-example limit, price and shutdown date match FACTS.md."""
    spec = MODEL_TABLE[name]
    assert (spec.name, spec.encoding, spec.max_tokens_per_example) == (name, encoding, limit)
    assert spec.training_price_per_1m_usd == price
    assert spec.shutdown_date == shutdown


def test_unpublished_prices_are_none_and_formats_are_right() -> None:
    """gpt-4-0613 and o4-mini have no per-token price; babbage/davinci take prompt/completion."""
    assert MODEL_TABLE["gpt-4-0613"].training_price_per_1m_usd is None
    assert MODEL_TABLE["o4-mini"].training_price_per_1m_usd is None
    formats = {name: spec.format for name, spec in MODEL_TABLE.items()}
    assert {name for name, fmt in formats.items() if fmt == "completion"} == {
        "babbage-002",
        "davinci-002",
    }
    assert date(2026, 11, 1) == PRICES_AS_OF
    assert date(2027, 1, 6) == JOB_CREATION_ENDS


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-3.5-turbo-0613", "gpt-3.5-turbo-0613"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo-0125"),
        ("gpt-3.5-turbo", "gpt-3.5-turbo"),
        ("  GPT-4o  ", "gpt-4o"),
        ("ft:gpt-4.1-mini-2025-04-14:my-org:custom-suffix:abc123", "gpt-4.1-mini"),
        ("ft:gpt-3.5-turbo-0613:my-org::8abc", "gpt-3.5-turbo-0613"),
        ("ft:davinci-002:my-org::xyz", "davinci-002"),
    ],
)
def test_resolve_model_finds_the_base_entry(name: str, expected: str) -> None:
    """Snapshots resolve to the longest known name; ft: names resolve to their base model."""
    assert resolve_model(name) is MODEL_TABLE[expected]


def test_fine_tuned_gpt41_uses_o200k() -> None:
    """A fine-tuned gpt-4.1 model counts with o200k_base (tiktoken 0.14 would say cl100k)."""
    assert resolve_model("ft:gpt-4.1-2025-04-14:org:s:id").encoding == "o200k_base"


@pytest.mark.parametrize("name", ["gpt-4o-mimi", "gpt-4o-audio-preview", "llama-3", "ft:", ""])
def test_unknown_model_raises_with_suggestions(name: str) -> None:
    """An unknown name raises UnknownModelError (a KeyError) listing the known models."""
    with pytest.raises(UnknownModelError) as info:
        resolve_model(name)
    assert isinstance(info.value, KeyError)
    assert "gpt-4o-mini" in str(info.value)
    assert not str(info.value).startswith("'")


def test_unknown_model_suggests_close_names_first() -> None:
    """A near-miss spelling gets a "did you mean" naming the close match."""
    with pytest.raises(UnknownModelError, match=r"did you mean gpt-4o-mini"):
        resolve_model("gpt-4o-mimi")


def test_shutdown_warning_past_near_and_far() -> None:
    """Past (including the day itself), within 90 days, and farther give the right answer."""
    spec = MODEL_TABLE["gpt-4o"]
    end = date(2027, 1, 14)
    past = shutdown_warning(spec, end)
    assert past is not None
    assert "was shut down" in past
    assert "2027-01-14" in past
    near = shutdown_warning(spec, end - timedelta(days=90))
    assert near is not None
    assert "90 days" in near
    assert shutdown_warning(spec, end - timedelta(days=91)) is None


def test_shutdown_warning_none_without_a_date() -> None:
    """A model with no announced shutdown never warns."""
    from attrs import evolve

    spec = evolve(MODEL_TABLE["gpt-4o"], shutdown_date=None)
    assert shutdown_warning(spec, date(2100, 1, 1)) is None


def test_job_creation_warning() -> None:
    """The end of all job creation warns when near or past, not a year ahead."""
    ended = job_creation_warning(JOB_CREATION_ENDS)
    assert ended is not None
    assert "stopped" in ended
    ending = job_creation_warning(date(2026, 11, 1))
    assert ending is not None
    assert "66 days" in ending
    assert job_creation_warning(date(2026, 1, 1)) is None


def test_model_spec_is_frozen_and_pickles() -> None:
    """A spec cannot be changed in place and survives pickling unchanged."""
    spec = MODEL_TABLE["gpt-4.1"]
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        MODEL_TABLE["x"] = spec  # type: ignore[index]
