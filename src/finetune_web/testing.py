"""Test doubles and contract checks for pipeline components and plugins.

A plugin author runs the ``check_*`` function of their component's family
in their own test suite::

    from finetune_web.testing import check_transformer

    def test_my_step_keeps_the_contract():
        check_transformer(MyStep(), sample_records)

Each check raises :class:`~finetune_web.errors.ContractError` (an
``AssertionError``) naming the broken rule, and returns what the component
produced so the test can assert more.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs

from finetune_web.errors import ContractError
from finetune_web.interfaces import Backend, ChatModel, Evaluator, Packer, Source, Transformer
from finetune_web.records import (
    Document,
    EvalResult,
    Example,
    Message,
    Pack,
    Preference,
    Record,
    Rejection,
    StepMetric,
    Tokenized,
)

__all__ = [
    "ListSource",
    "ScriptedChatModel",
    "check_backend",
    "check_evaluator",
    "check_packer",
    "check_source",
    "check_transformer",
    "run_step",
]

_RECORD_TYPES = (Document, Example, Preference)


def _records(value: Iterable[Record | Rejection]) -> tuple[Record | Rejection, ...]:
    return tuple(value)


@attrs.frozen
class ListSource:
    """A source over records held in memory (for tests and notebooks)."""

    items: tuple[Record | Rejection, ...] = attrs.field(converter=_records)
    name: str = "list"

    def read(self) -> Iterator[Record | Rejection]:
        """Yield the items in order."""
        yield from self.items


@attrs.frozen(kw_only=True)
class ScriptedChatModel:
    """A chat model answering from a table keyed by the last user message.

    Attributes:
        answers: last user message text -> reply text.
        default: reply for prompts not in the table (``None`` raises ``KeyError``).
        model_id: the id it reports.
    """

    answers: Mapping[str, str] = attrs.field(factory=dict)
    default: str | None = None
    model_id: str = "scripted"

    def complete(self, messages: Sequence[Message]) -> Message:
        """Return the scripted reply to the last user message."""
        prompt = next((m.text for m in reversed(messages) if m.role == "user"), "")
        if prompt in self.answers:
            return Message(role="assistant", content=self.answers[prompt])
        if self.default is None:
            raise KeyError(f"no scripted answer for {prompt[:80]!r}")
        return Message(role="assistant", content=self.default)


def run_step(
    step: Transformer, records: Iterable[Record]
) -> tuple[list[Record | Rejection], dict[str, float]]:
    """Run a step on ``records``; return its outputs and its step metrics, summed by name.

    Step metrics are added up whatever their mode, which is what a test of
    counts wants (a pipeline run keeps the last value of ``LAST`` metrics).
    """
    outputs: list[Record | Rejection] = []
    metrics: dict[str, float] = {}
    for item in step.transform(records):
        if isinstance(item, StepMetric):
            metrics[item.name] = metrics.get(item.name, 0) + item.value
        else:
            outputs.append(item)
    return outputs, metrics


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _picklable(component: object, family: str) -> bytes:
    try:
        return pickle.dumps(component)
    except Exception as exc:  # any pickling failure breaks the contract
        raise ContractError(
            f"{family} {type(component).__name__} cannot be pickled ({exc}); keep open "
            "resources out of the object until it runs and use module-level functions"
        ) from exc


def _check_rejection(item: Rejection, family: str) -> None:
    _require(
        bool(item.reason and item.step and item.message),
        f"{family} yielded a Rejection without reason, step or message: {item!r}",
    )


def check_source(source: Source) -> list[Record | Rejection]:
    """Check the :class:`Source` contract and return what ``read()`` yields.

    Checks: it implements the protocol, pickles before reading, yields only
    records and rejections, gives unique non-empty ids, and yields the same
    items when read twice.
    """
    _require(isinstance(source, Source), f"{type(source).__name__} has no read() method")
    _picklable(source, "source")
    first = list(source.read())
    ids: Counter[str] = Counter()
    for item in first:
        if isinstance(item, Rejection):
            _check_rejection(item, "source")
            continue
        _require(isinstance(item, _RECORD_TYPES), f"source yielded {type(item).__name__}")
        _require(bool(item.id), f"source yielded a record without id: {item!r}")
        ids[item.id] += 1
    repeated = [record_id for record_id, n in ids.items() if n > 1]
    _require(not repeated, f"source yielded duplicate ids: {repeated[:5]}")
    _require(list(source.read()) == first, "reading the source twice gave different items")
    return first


def check_transformer(step: Transformer, records: Sequence[Record]) -> list[Record | Rejection]:
    """Check the :class:`Transformer` contract on ``records`` and return the outputs.

    Checks: it implements the protocol and pickles; every input leaves as an
    output (same id or as ``parent_id``) or exactly one rejection; outputs
    are records or rejections (step metrics are left out of the result);
    running twice gives the same outputs; the step keeps no state on itself
    between runs.
    """
    _require(isinstance(step, Transformer), f"{type(step).__name__} has no transform() method")
    before = _picklable(step, "transformer")
    first = [i for i in step.transform(iter(records)) if not isinstance(i, StepMetric)]
    after = _picklable(step, "transformer")
    _require(before == after, "the step changed its own state while running; keep state local")
    outputs: set[str] = set()
    rejected: Counter[str] = Counter()
    for item in first:
        if isinstance(item, Rejection):
            _check_rejection(item, "transformer")
            rejected[str(item.record_id)] += 1
            continue
        _require(isinstance(item, _RECORD_TYPES), f"step yielded {type(item).__name__}")
        outputs.add(item.id)
        if item.parent_id is not None:
            outputs.add(item.parent_id)
    for record in records:
        produced = record.id in outputs
        times = rejected[record.id]
        _require(
            produced or times >= 1,
            f"input {record.id} left neither as an output nor as a rejection",
        )
        _require(not (produced and times), f"input {record.id} was both passed on and rejected")
    again = [i for i in step.transform(iter(records)) if not isinstance(i, StepMetric)]
    _require(again == first, "running the step twice gave different output")
    return first


def check_packer(packer: Packer, examples: Sequence[Tokenized]) -> list[Pack]:
    """Check the :class:`Packer` contract and return the packed rows.

    Checks: every example's tokens appear exactly once and contiguously;
    ``position_ids`` restart at 0 at each example's first token; the first
    label of each example is -100; the result is deterministic.
    """
    _require(isinstance(packer, Packer), f"{type(packer).__name__} has no pack() method")
    _picklable(packer, "packer")
    rows = list(packer.pack(iter(examples)))
    by_id = {example.id: example for example in examples}
    seen: Counter[str] = Counter()
    for row in rows:
        _require(
            len(row.input_ids) == len(row.labels) == len(row.position_ids),
            "a row's input_ids, labels and position_ids differ in length",
        )
        start = 0
        for example_id in row.example_ids:
            example = by_id.get(example_id)
            _require(example is not None, f"row names unknown example {example_id}")
            assert example is not None
            end = start + len(example.input_ids)
            _require(
                row.input_ids[start:end] == example.input_ids,
                f"example {example_id}'s tokens are not intact in its row",
            )
            _require(
                row.position_ids[start:end] == tuple(range(end - start)),
                f"position_ids do not restart at example {example_id}",
            )
            _require(
                end == start or row.labels[start] == -100,
                f"example {example_id}'s first label is not -100",
            )
            seen[example_id] += 1
            start = end
    missing = [e.id for e in examples if seen[e.id] != 1]
    _require(not missing, f"examples lost or duplicated by packing: {missing[:5]}")
    _require(list(packer.pack(iter(examples))) == rows, "packing twice gave different rows")
    return rows


def check_evaluator(
    evaluator: Evaluator, examples: Sequence[Example], model: ChatModel | None = None
) -> EvalResult:
    """Check the :class:`Evaluator` contract and return its result.

    Checks: one score per example in order, deterministic on a deterministic
    model (a :class:`ScriptedChatModel` echoing each example's reference when
    ``model`` is not given).
    """
    _require(isinstance(evaluator, Evaluator), f"{type(evaluator).__name__} has no evaluate()")
    if model is None:
        model = ScriptedChatModel(answers=_reference_answers(examples), default="")
    result = evaluator.evaluate(model, examples)
    _require(
        len(result.per_example) == len(examples),
        f"{len(result.per_example)} per-example scores for {len(examples)} examples",
    )
    _require(evaluator.evaluate(model, examples) == result, "evaluating twice gave another result")
    return result


def _reference_answers(examples: Sequence[Example]) -> dict[str, str]:
    answers: dict[str, str] = {}
    for example in examples:
        users = [m for m in example.messages if m.role == "user"]
        replies = [m for m in example.messages if m.role == "assistant"]
        if users and replies:
            answers[users[-1].text] = replies[-1].text
    return answers


def check_backend(backend: Backend) -> None:
    """Check the parts of the :class:`Backend` contract that need no training run.

    Checks: it implements the protocol and pickles (so it holds no client or
    open file until ``fine_tune`` runs) and its repr shows no API key.
    """
    _require(isinstance(backend, Backend), f"{type(backend).__name__} has no fine_tune()")
    _picklable(backend, "backend")
    text = repr(backend).lower()
    _require("sk-" not in text and "api_key='" not in text, "the backend's repr shows a secret")
