"""The Pipeline: immutable, checked when built, lazy when run, accounting for every record."""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from itertools import islice

import attrs
import pytest

from finetune_web import (
    AccountingError,
    ConfigError,
    Document,
    ErrorPolicy,
    Example,
    Message,
    Pipeline,
    RecordError,
    Rejection,
    StepError,
)
from finetune_web.records import MetricMode, Record, StepMetric
from finetune_web.testing import ListSource


def _docs(n: int) -> list[Document]:
    return [Document(id=f"d{i}", data={"q": f"question {i}", "a": f"answer {i}"}) for i in range(n)]


@attrs.frozen
class DropOdd:
    """A faulty step: silently drops every other record."""

    name: str = "drop_odd"

    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        for number, record in enumerate(records):
            if number % 2 == 0:
                yield record


@attrs.frozen
class Explode:
    """A faulty step: raises a foreign exception on the third record."""

    name: str = "explode"

    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        for number, record in enumerate(records):
            if number == 2:
                raise ZeroDivisionError("boom")
            yield record


@attrs.frozen
class CountWords:
    """A step that reports a figure with StepMetric and passes records on."""

    name: str = "count_words"

    def transform(self, records: Iterable[Record]) -> Iterator[Record | StepMetric]:
        for record in records:
            yield StepMetric(name="words", value=2)
            yield record
        yield StepMetric(name="done", value=1, mode=MetricMode.LAST)


@attrs.frozen
class Expand:
    """A one-to-many step: each document becomes two examples naming it as parent."""

    name: str = "expand"

    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            for part in (1, 2):
                yield Example(
                    id=f"{record.id}/{part}",
                    parent_id=record.id,
                    messages=[
                        Message(role="user", content="q"),
                        Message(role="assistant", content="a"),
                    ],
                )


def _template(pipeline: Pipeline) -> Pipeline:
    return pipeline.template(user="Q: {q}", assistant="{a}")


def test_builder_methods_return_new_pipelines() -> None:
    """then(), with_seed() and on_error() leave the original pipeline unchanged."""
    base = Pipeline.from_source(ListSource(_docs(1)))
    longer = _template(base)
    assert base.steps == ()
    assert len(longer.steps) == 1
    assert base.with_seed(3).seed == 3 and base.seed == 0
    assert base.on_error("raise").error_policy is ErrorPolicy.RAISE
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        base.seed = 5  # type: ignore[misc]


def test_building_checks_interfaces() -> None:
    """A source without read() or a step without transform() is refused when built, by name."""
    with pytest.raises(ConfigError, match="not a Source"):
        Pipeline.from_source(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"step 1 \(int\) is not a Transformer"):
        Pipeline.from_source(ListSource([])).then(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown error policy"):
        Pipeline.from_source(ListSource([])).on_error("ignore")


def test_unknown_step_option_is_a_config_error() -> None:
    """A misspelt option of a built-in step names the accepted options."""
    with pytest.raises(ConfigError, match=r"unknown option.*'usr'.*accepted: user"):
        Pipeline.from_source(ListSource([])).step("template", usr="x", assistant="y")


def test_stream_is_lazy() -> None:
    """Taking two outputs pulls only about two records from the source."""
    pulled = []

    @attrs.frozen
    class Counting:
        def read(self) -> Iterator[Document]:
            for doc in _docs(1000):
                pulled.append(doc.id)
                yield doc

    outputs = list(islice(_template(Pipeline.from_source(Counting())).stream(), 2))
    assert [o.id for o in outputs] == ["d0", "d1"]
    assert len(pulled) <= 3


def test_lost_records_raise_accounting_error() -> None:
    """A step that drops records without rejecting them fails the run, naming the step."""
    pipeline = Pipeline.from_source(ListSource(_docs(4))).then(DropOdd())
    with pytest.raises(AccountingError, match="2 record") as caught:
        list(pipeline.stream())
    assert caught.value.context.step == "drop_odd"
    assert "d1" in str(caught.value)


def test_one_to_many_steps_account_through_parent_id() -> None:
    """Outputs naming their input in parent_id account for it: no AccountingError."""
    outputs = list(Pipeline.from_source(ListSource(_docs(3))).then(Expand()).stream())
    assert [o.id for o in outputs] == ["d0/1", "d0/2", "d1/1", "d1/2", "d2/1", "d2/2"]


def test_foreign_exceptions_are_wrapped_with_the_step_name() -> None:
    """An unexpected exception inside a step becomes a StepError naming the step."""
    pipeline = Pipeline.from_source(ListSource(_docs(5))).then(Explode())
    with pytest.raises(StepError, match="ZeroDivisionError: boom") as caught:
        list(pipeline.stream())
    assert caught.value.context.step == "explode"
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_raise_policy_stops_at_the_first_rejection() -> None:
    """Under the raise policy a rejection becomes a RecordError with reason and record id."""
    docs = [*_docs(2), Document(id="bad", data={"q": "no answer"})]
    pipeline = _template(Pipeline.from_source(ListSource(docs))).on_error(ErrorPolicy.RAISE)
    with pytest.raises(RecordError) as caught:
        list(pipeline.stream())
    assert caught.value.reason == "missing_field"
    assert caught.value.context.record_id == "bad"
    assert caught.value.context.step == "template"


def test_reject_policy_hands_rejections_to_the_callback() -> None:
    """Under the default policy rejections go to on_reject and the run goes on."""
    docs = [Document(id="bad", data={"q": "x"}), *_docs(2)]
    seen: list[Rejection] = []
    outputs = list(_template(Pipeline.from_source(ListSource(docs))).stream(on_reject=seen.append))
    assert [o.id for o in outputs] == ["d0", "d1"]
    assert [(r.record_id, r.reason) for r in seen] == [("bad", "missing_field")]


def test_step_metrics_leave_the_stream() -> None:
    """StepMetric items are not passed downstream as records."""
    outputs = list(Pipeline.from_source(ListSource(_docs(3))).then(CountWords()).stream())
    assert [o.id for o in outputs] == ["d0", "d1", "d2"]


def test_describe_and_fingerprint_are_stable_and_sensitive() -> None:
    """describe() is JSON data; the fingerprint changes with any setting and only then."""
    first = _template(Pipeline.from_source(ListSource(_docs(1))))
    again = _template(Pipeline.from_source(ListSource(_docs(1))))
    other = first.with_seed(1)
    assert first.describe()["steps"][0]["user"] == "Q: {q}"
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()


def test_describe_leaves_out_secret_fields() -> None:
    """Fields declared repr=False (how secrets are declared) are not in descriptions."""

    @attrs.frozen
    class Secretive:
        url: str = "https://example.test"
        api_key: str = attrs.field(default="sk-secret", repr=False)

        def read(self) -> Iterator[Document]:
            return iter(())

    description = Pipeline.from_source(Secretive()).describe()
    assert description["source"]["url"] == "https://example.test"
    assert "api_key" not in description["source"]
    assert "sk-secret" not in repr(description)


def test_pipeline_pickles_before_running() -> None:
    """A pipeline of built-in parts pickles, so another executor can receive it."""
    pipeline = _template(Pipeline.from_source(ListSource(_docs(2)))).split(0.5).step("exact_dedup")
    clone = pickle.loads(pickle.dumps(pipeline))
    assert clone == pipeline
    assert [o.id for o in clone.stream()] == [o.id for o in pipeline.stream()]
