"""Tests for statistics, default epochs, billed tokens and cost."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError, ValidationError
from finetune_web.formats import (
    MODEL_TABLE,
    PRICES_AS_OF,
    Distribution,
    EstimateBuilder,
    TokenCounter,
    default_epochs,
    estimate_examples,
    estimate_file,
    read_chat_jsonl,
)
from finetune_web.records import Example, Message


def test_cookbook_oracle(toy_chat: Path) -> None:
    """The toy file on gpt-3.5-turbo-0613 reproduces the cookbook's printed output exactly."""
    estimate = estimate_file(toy_chat, "gpt-3.5-turbo-0613")
    assert estimate.tokens_per_example == (45, 111, 26, 28, 8032)
    assert estimate.billed_tokens_per_epoch == 4306
    assert estimate.epochs == 20
    assert estimate.billed_tokens == 86120
    assert estimate.over_limit == 1
    assert estimate.total_tokens == Distribution(
        min=26, max=8032, mean=1648.4, median=45.0, p10=26.8, p90=4863.6
    )
    assert estimate.assistant_tokens == Distribution(
        min=4, max=8000, mean=1610.2, median=10.0, p10=6.0, p90=4811.200000000001
    )
    assert estimate.messages_per_example == Distribution(
        min=2, max=9, mean=3.8, median=3.0, p10=2.0, p90=6.6000000000000005
    )
    assert estimate.encoding == "cl100k_base"
    assert estimate.estimated_cost_usd == 86120 * 8.0 / 1_000_000


def test_o200k_counts_match_an_independent_computation(toy_chat: Path) -> None:
    """With gpt-4o-mini the counts equal the guide's formula run with tiktoken directly."""
    encoding = tiktoken.get_encoding("o200k_base")
    expected = []
    for line in toy_chat.read_text(encoding="utf-8").splitlines():
        total = 3
        for message in json.loads(line)["messages"]:
            total += 3 + sum(len(encoding.encode(value)) for value in message.values())
            total += "name" in message
        expected.append(total)
    estimate = estimate_file(toy_chat, "gpt-4o-mini")
    assert tuple(expected) == estimate.tokens_per_example
    assert estimate.encoding == "o200k_base"
    assert estimate.over_limit == 0
    assert sum(expected) == estimate.billed_tokens_per_epoch
    assert sum(expected) * 20 == estimate.billed_tokens
    assert estimate.billed_tokens * 3.0 / 1_000_000 == estimate.estimated_cost_usd
    assert estimate.price_per_1m == 3.0


def test_to_json_has_stable_keys(toy_chat: Path) -> None:
    """to_json carries the documented keys, JSON-serialisable, the date as ISO text."""
    data = estimate_file(toy_chat, "gpt-4o-mini", epochs=2).to_json()
    for key in (
        "model",
        "encoding",
        "examples",
        "tokens_per_example",
        "billed_tokens_per_epoch",
        "epochs",
        "billed_tokens",
        "estimated_cost_usd",
        "prices_as_of",
    ):
        assert key in data
    assert data["prices_as_of"] == PRICES_AS_OF.isoformat()
    assert data["epochs"] == 2
    assert set(data["distributions"]) == {
        "total_tokens",
        "assistant_tokens",
        "messages_per_example",
    }
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [
        (1, 25),
        (4, 25),
        (5, 20),
        (10, 10),
        (33, 3),
        (34, 3),
        (100, 3),
        (8333, 3),
        (8334, 2),
        (12_500, 2),
        (12_501, 1),
        (1_000_000, 1),
    ],
)
def test_default_epochs_rule(examples: int, epochs: int) -> None:
    """The service's default epochs: aim at 3, at least 100 and about 25,000 examples seen."""
    assert epochs == default_epochs(examples)


def test_default_epochs_needs_examples() -> None:
    """Zero examples has no default epoch count."""
    with pytest.raises(ValueError, match="at least one example"):
        default_epochs(0)


@settings(max_examples=200)
@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=50))
def test_distribution_agrees_with_statistics(values: list[int]) -> None:
    """min/max/mean/median and p10/p90 equal the linear (inclusive) quantile definition."""
    dist = Distribution.of(values)
    assert (dist.min, dist.max) == (min(values), max(values))
    assert dist.mean == pytest.approx(statistics.fmean(values))
    assert dist.median == statistics.median(values)
    if len(values) > 1:
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        assert dist.p10 == pytest.approx(deciles[0])
        assert dist.p90 == pytest.approx(deciles[8])
    assert dist.min <= dist.p10 <= dist.median <= dist.p90 <= dist.max


def test_distribution_of_one_value_and_of_none() -> None:
    """One value is its own distribution; no value is an error."""
    assert Distribution.of([7]) == Distribution(min=7, max=7, mean=7, median=7, p10=7, p90=7)
    with pytest.raises(ValueError, match="empty"):
        Distribution.of([])


def _examples(count: int) -> list[Example]:
    return [
        Example(
            messages=[
                Message(role="user", content="word " * n),
                Message(role="assistant", content="ok"),
            ]
        )
        for n in range(count)
    ]


def test_builder_fed_one_by_one_equals_estimate_examples() -> None:
    """The streaming builder, fed example by example, gives the same estimate."""
    examples = _examples(30)
    counter = TokenCounter.for_model("gpt-4.1-nano")
    builder = EstimateBuilder(spec=MODEL_TABLE["gpt-4.1-nano"])
    for example in examples:
        builder.add(counter.count_example(example))
    assert builder.examples == 30
    assert estimate_examples(examples, "gpt-4.1-nano", batch_size=7) == builder.build()


def test_epochs_override_and_its_bounds() -> None:
    """Given epochs replace the default; values outside 1-50 are refused."""
    examples = _examples(12)
    estimate = estimate_examples(examples, "gpt-4.1", epochs=4)
    assert estimate.epochs == 4
    assert estimate.billed_tokens == 4 * estimate.billed_tokens_per_epoch
    for bad in (0, 51):
        with pytest.raises(ConfigError, match="between 1 and 50"):
            estimate_examples(examples, "gpt-4.1", epochs=bad)


def test_unpriced_model_has_no_cost() -> None:
    """A model without a per-token price estimates tokens but no cost."""
    estimate = estimate_examples(_examples(3), "gpt-4-0613")
    assert estimate.price_per_1m is None
    assert estimate.estimated_cost_usd is None
    assert estimate.max_tokens_per_example == 8192


def test_file_without_examples_raises(tmp_path: Path) -> None:
    """A file whose every line is rejected raises ValidationError naming the file."""
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n[]\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="2 line\\(s\\) rejected") as info:
        estimate_file(path, "gpt-4o")
    assert info.value.context.path == str(path)


def test_rejections_are_counted_not_billed(tmp_path: Path) -> None:
    """Bad lines are counted in `rejected` and do not change the token figures."""
    path = tmp_path / "mixed.jsonl"
    good = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    path.write_text(f"{good}\nbroken\n{good}\n", encoding="utf-8")
    estimate = estimate_file(path, "gpt-4o")
    assert (estimate.examples, estimate.rejected) == (2, 1)
    counter = TokenCounter.for_model("gpt-4o")
    counts = [
        item[1].total
        for item in counter.count_stream(read_chat_jsonl(path))
        if isinstance(item, tuple)
    ]
    assert tuple(counts) == estimate.tokens_per_example


def test_completion_model_reads_prompt_completion(tmp_path: Path) -> None:
    """davinci-002 estimates read the file as prompt/completion and count text only."""
    path = tmp_path / "legacy.jsonl"
    path.write_text('{"prompt": "2+2=", "completion": " 4"}\n', encoding="utf-8")
    encoding = tiktoken.get_encoding("cl100k_base")
    estimate = estimate_file(path, "davinci-002")
    assert estimate.tokens_per_example == (
        len(encoding.encode("2+2=")) + len(encoding.encode(" 4")),
    )
    assert estimate.estimated_cost_usd == estimate.billed_tokens * 6.0 / 1_000_000
