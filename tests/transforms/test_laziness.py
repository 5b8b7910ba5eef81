"""Steps stream: pulling one output consumes a bounded number of inputs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finetune_web import Document, Example, Message
from finetune_web.records import Record
from finetune_web.testing import ListSource
from finetune_web.transforms import (
    CleanText,
    ExactDedup,
    HashSplit,
    KeepIf,
    MapRecords,
    MixWith,
    QualityFilter,
    RedactPII,
    TemplateTransformer,
    TruncateToTokens,
)

TEXT = (
    "The old lighthouse on the northern cliff was built to guide fishing boats through the "
    "narrow channel, and its keepers climbed the spiral stairs every evening to trim the wicks."
)


def _example(i: int) -> Example:
    return Example(
        id=f"e{i}",
        messages=[
            Message(role="user", content=f"{i}: {TEXT}"),
            Message(role="assistant", content=TEXT),
        ],
    )


def _document(i: int) -> Document:
    return Document(id=f"d{i}", text=f"{i}: {TEXT}", data={"q": f"question {i}", "a": TEXT})


def _keep(record: Record) -> bool:
    return True


def _same(record: Record) -> Record:
    return record


STEPS = {
    "template": (TemplateTransformer(user="{q}", assistant="{a}"), _document),
    "clean": (CleanText(), _document),
    "redact_pii": (RedactPII(), _document),
    "quality": (QualityFilter(min_words=5), _document),
    "exact_dedup": (ExactDedup(), _example),
    "split": (HashSplit(validation=0.5), _example),
    "truncate": (TruncateToTokens(max_tokens=40, encoding="o200k_base"), _example),
    "mix": (
        MixWith(
            general=ListSource([_example(10_000 + i) for i in range(50)]), general_fraction=0.3
        ),
        _example,
    ),
    "keep_if": (KeepIf(predicate=_keep), _example),
    "map": (MapRecords(fn=_same), _example),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_one_output_pulls_a_bounded_number_of_inputs(name: str) -> None:
    """Taking the first output of the step reads at most one batch of inputs, not the stream."""
    step, make = STEPS[name]
    pulled = 0

    def endless() -> Iterator[Record]:
        nonlocal pulled
        while True:
            pulled += 1
            yield make(pulled)

    first = next(iter(step.transform(endless())))
    assert first is not None
    assert pulled <= 300, f"{name} pulled {pulled} inputs for its first output"
