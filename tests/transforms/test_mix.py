"""MixWith: tracks the target fraction, is seeded, reads the general source lazily."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web._executor import LocalExecutor
from finetune_web.errors import ConfigError
from finetune_web.formats.tokens import TokenCounter
from finetune_web.pipeline import Pipeline
from finetune_web.records import (
    Document,
    Example,
    Message,
    MetricMode,
    Record,
    Rejection,
    StepMetric,
)
from finetune_web.testing import ListSource, check_transformer
from finetune_web.transforms.mix import MixBy, MixWith, record_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]
COUNTER = TokenCounter(encoding_name="o200k_base")


def _example(prefix: str, index: int, words: int = 1) -> Example:
    return Example(
        id=f"{prefix}{index}",
        messages=[
            Message(role="user", content="word " * words),
            Message(role="assistant", content="ok"),
        ],
    )


def _domain(n: int) -> list[Example]:
    return [_example("d", i) for i in range(n)]


def _general(n: int) -> ListSource:
    return ListSource([_example("g", i) for i in range(n)])


@attrs.frozen
class GeneratedSource:
    """A general source that makes its examples as they are read (cheap when large)."""

    count: int
    vary: bool = False

    def read(self) -> Iterator[Record | Rejection]:
        """Yield examples g0, g1, ... one at a time (of 1 to 9 words when ``vary``)."""
        return (_example("g", i, i % 9 + 1 if self.vary else 1) for i in range(self.count))


@attrs.frozen
class CountingSource:
    """A general source that counts, in a shared list, how many items were read."""

    items: tuple[Record | Rejection, ...]
    reads: list[int] = attrs.field(factory=list, eq=False)

    def read(self) -> Iterator[Record | Rejection]:
        """Yield the items, counting each one as it is read."""
        self.reads.append(0)
        for item in self.items:
            self.reads[-1] += 1
            yield item


def _split(items: list[Record | Rejection | StepMetric]) -> tuple[list[str], dict[str, float]]:
    ids = [i.id for i in items if isinstance(i, Example)]
    metrics = {i.name: i.value for i in items if isinstance(i, StepMetric)}
    return ids, metrics


@settings(deadline=None)
@given(n=st.integers(0, 300), fraction=st.floats(0.0, 0.95), seed=st.integers(0, 2**32))
def test_achieved_fraction_is_within_one_over_n_and_domain_passes_in_order(
    n: int, fraction: float, seed: int
) -> None:
    """By examples: |achieved - target| <= 1/N over the N outputs, at the end and at every prefix.

    Every domain record passes, in order; general records come in source
    order (no shuffle buffer); the reported fraction is the achieved one.
    """
    step = MixWith(general=GeneratedSource(10_000), general_fraction=fraction, seed=seed)
    ids, metrics = _split(list(step.transform(_domain(n))))
    assert [i for i in ids if i.startswith("d")] == [f"d{i}" for i in range(n)]
    general = [i for i in ids if i.startswith("g")]
    assert general == [f"g{i}" for i in range(len(general))]
    total = len(ids)
    if total:
        achieved = len(general) / total
        assert abs(achieved - fraction) <= 1 / total
        assert metrics["mix.achieved_general_fraction"] == pytest.approx(achieved)
    ratio = fraction / (1 - fraction)
    domain_seen = general_seen = 0
    for record_id in [*ids, "d-end"]:  # before each domain record: within one of the target
        if record_id.startswith("d"):
            assert abs(general_seen - ratio * domain_seen) < 1
            domain_seen += 1
        else:
            general_seen += 1
    assert metrics["mix.general_exhausted"] == 0.0


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 120), fraction=st.floats(0.05, 0.9), seed=st.integers(0, 1000))
def test_by_tokens_tracks_the_token_share(n: int, fraction: float, seed: int) -> None:
    """By tokens: the general token share is within (largest general record) / total tokens."""
    general = GeneratedSource(5_000, vary=True)
    step = MixWith(general=general, general_fraction=fraction, by="tokens", seed=seed)
    items = list(step.transform(_domain(n)))
    records = [i for i in items if isinstance(i, Example)]
    tokens = {r.id: COUNTER.count_example(r).total for r in records}
    general_tokens = sum(t for i, t in tokens.items() if i.startswith("g"))
    total = sum(tokens.values())
    largest = max(COUNTER.count_example(_example("g", 0, w)).total for w in range(1, 10))
    assert abs(general_tokens / total - fraction) <= largest / total
    _, metrics = _split(items)
    assert metrics["mix.general_tokens"] == general_tokens
    assert metrics["mix.domain_tokens"] == total - general_tokens


@given(seed=st.integers(0, 2**32), buffer=st.integers(0, 20))
def test_same_seed_same_output(seed: int, buffer: int) -> None:
    """Running with the same seed (and buffer) twice gives identical output, metrics included."""
    step = MixWith(
        general=GeneratedSource(500), general_fraction=0.3, seed=seed, shuffle_buffer=buffer
    )
    assert list(step.transform(_domain(100))) == list(step.transform(_domain(100)))


def _ids(step: MixWith, n: int) -> tuple[str, ...]:
    return tuple(_split(list(step.transform(_domain(n))))[0])


def test_another_seed_moves_the_general_records() -> None:
    """The seed decides where general records go (and, with a buffer, which ones)."""
    source = GeneratedSource(500)
    orders = {_ids(MixWith(general=source, general_fraction=0.3, seed=s), 100) for s in range(5)}
    assert len(orders) > 1
    picked = {
        tuple(i for i in _ids(step, 100) if i.startswith("g"))
        for step in (
            MixWith(general=source, general_fraction=0.3, seed=s, shuffle_buffer=50)
            for s in range(5)
        )
    }
    assert len(picked) > 1


def test_general_source_is_read_only_as_far_as_needed() -> None:
    """Laziness: the general source yields exactly the records used (plus the buffer, if any)."""
    source = CountingSource(tuple(_example("g", i) for i in range(1_000)))
    ids, _ = _split(list(MixWith(general=source, general_fraction=0.2).transform(_domain(40))))
    used = sum(1 for i in ids if i.startswith("g"))
    assert source.reads == [used]
    source.reads.clear()
    step = MixWith(general=source, general_fraction=0.2, shuffle_buffer=25)
    ids, _ = _split(list(step.transform(_domain(40))))
    assert used <= source.reads[0] <= used + 25
    source.reads.clear()
    list(MixWith(general=source, general_fraction=0.0).transform(_domain(40)))
    assert source.reads == []


def test_domain_stream_is_pulled_one_record_at_a_time() -> None:
    """Laziness on the input: asking for the first outputs reads only the first inputs."""
    pulled: list[str] = []

    def domain() -> Iterator[Example]:
        for record in _domain(1_000):
            pulled.append(record.id)
            yield record

    stream = MixWith(general=_general(1_000), general_fraction=0.5).transform(domain())
    first = [next(stream) for _ in range(5)]
    assert len(pulled) <= 5
    assert first[0].id == "d0"  # type: ignore[union-attr]


def test_exhausted_general_source_is_reported() -> None:
    """When the general source runs out, every record of it is used and the shortfall shown."""
    step = MixWith(general=_general(5), general_fraction=0.5)
    ids, metrics = _split(list(step.transform(_domain(20))))
    assert sum(1 for i in ids if i.startswith("g")) == 5
    assert metrics["mix.general_exhausted"] == 1.0
    assert metrics["mix.general_shortfall"] == pytest.approx(15.0)
    assert metrics["mix.achieved_general_fraction"] == pytest.approx(5 / 25)


def test_metric_modes_and_names() -> None:
    """Counts add up (SUM) and the achieved fraction is a measurement (LAST)."""
    items = list(MixWith(general=_general(100), general_fraction=0.25).transform(_domain(30)))
    metrics = {i.name: i for i in items if isinstance(i, StepMetric)}
    assert metrics["mix.achieved_general_fraction"].mode is MetricMode.LAST
    assert metrics["mix.general_exhausted"].mode is MetricMode.LAST
    assert metrics["mix.domain_records"].mode is MetricMode.SUM
    assert metrics["mix.domain_records"].value == 30
    assert metrics["mix.general_records"].value == 10


def test_general_rejections_are_passed_on() -> None:
    """A rejection read from the general source goes on to the rejects sink."""
    bad = Rejection(record_id="g?", step="source", reason="invalid_json", message="bad line")
    source = ListSource([bad, *(_example("g", i) for i in range(10))])
    items = list(MixWith(general=source, general_fraction=0.5).transform(_domain(4)))
    assert bad in items


def test_contract_and_pipeline_accounting() -> None:
    """check_transformer passes; a pipeline run accepts the extra records and reports metrics."""
    step = MixWith(general=_general(100), general_fraction=0.4, seed=7)
    outputs = check_transformer(step, _domain(30))
    assert len(outputs) == 50
    pipeline = Pipeline.from_source(ListSource(_domain(30))).then(step)
    records, counters = LocalExecutor().stream(pipeline, lambda _: None)
    assert len(list(records)) == 50
    report = counters[-1].report()
    assert (report.records_in, report.records_out, report.rejected) == (30, 50, 0)
    assert report.metrics["mix.achieved_general_fraction"] == pytest.approx(0.4)


def test_record_tokens_counts_every_record_type() -> None:
    """Examples as the service counts them, documents as their text or JSON data."""
    example = _example("x", 0, 3)
    assert record_tokens(example, COUNTER) == COUNTER.count_example(example).total
    assert record_tokens(Document(id="t", text="hello world"), COUNTER) == 2
    assert record_tokens(Document(id="j", data={"a": 1}), COUNTER) > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"general_fraction": 1.0},
        {"general_fraction": -0.1},
        {"general_fraction": 0.2, "by": "bytes"},
        {"general_fraction": 0.2, "shuffle_buffer": -1},
    ],
)
def test_bad_settings_are_refused_when_built(kwargs: dict[str, object]) -> None:
    """A fraction outside [0, 1), an unknown `by` or a negative buffer is a ConfigError."""
    with pytest.raises(ConfigError):
        MixWith(general=_general(1), **kwargs)  # type: ignore[arg-type]
    assert MixWith(general=_general(1), general_fraction=0.1, by="tokens").by is MixBy.TOKENS
