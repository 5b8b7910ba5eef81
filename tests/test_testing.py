"""The contract checks that plugin authors run catch broken components."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs
import pytest

from finetune_web import ContractError, Document, Example, Message, Rejection, Tokenized
from finetune_web.records import Pack, Record
from finetune_web.testing import (
    ListSource,
    ScriptedChatModel,
    check_packer,
    check_source,
    check_transformer,
)

DOCS = [Document(id=f"d{i}", text=str(i)) for i in range(4)]


@attrs.frozen
class Lossy:
    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        yield from list(records)[1:]


@attrs.define
class Stateful:
    seen: int = 0

    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.seen += 1
            yield record


@attrs.frozen
class Unpicklable:
    fn: object = attrs.field(factory=lambda: lambda r: r)

    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        yield from records


@attrs.frozen
class BothWays:
    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection]:
        for record in records:
            yield record
            yield Rejection(record_id=record.id, step="x", reason="r", message="m")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (Lossy(), "left neither"),
        (Stateful(), "changed its own state"),
        (Unpicklable(), "cannot be pickled"),
        (BothWays(), "both passed on and rejected"),
    ],
)
def test_check_transformer_catches_broken_steps(step: object, message: str) -> None:
    """Each broken rule of the Transformer contract is reported by name."""
    with pytest.raises(ContractError, match=message):
        check_transformer(step, DOCS)  # type: ignore[arg-type]


def test_check_source_catches_duplicate_ids() -> None:
    """A source yielding two records with one id breaks the contract."""
    with pytest.raises(ContractError, match="duplicate ids"):
        check_source(ListSource([DOCS[0], DOCS[0]]))
    assert check_source(ListSource(DOCS)) == DOCS


@attrs.frozen
class NaivePacker:
    """Concatenates examples into one row without restarting positions (broken)."""

    def pack(self, examples: Iterable[Tokenized]) -> Iterator[Pack]:
        items = list(examples)
        ids = [t for e in items for t in e.input_ids]
        labels = [t for e in items for t in (-100, *e.input_ids[1:])]
        yield Pack(
            input_ids=ids,
            labels=labels,
            position_ids=range(len(ids)),
            example_ids=[e.id for e in items],
        )


def test_check_packer_catches_positions_that_do_not_restart() -> None:
    """A packer whose position_ids run across examples breaks the packing contract."""
    examples = [
        Tokenized(id="a", input_ids=[1, 2], labels=[1, 2]),
        Tokenized(id="b", input_ids=[3], labels=[3]),
    ]
    with pytest.raises(ContractError, match="position_ids do not restart"):
        check_packer(NaivePacker(), examples)


def test_scripted_chat_model_answers_from_its_table() -> None:
    """The scripted model replies by last user message, else its default or a KeyError."""
    model = ScriptedChatModel(answers={"2+2?": "4"})
    assert model.complete([Message(role="user", content="2+2?")]).content == "4"
    with pytest.raises(KeyError):
        model.complete([Message(role="user", content="?")])
    assert isinstance(Example(messages=[Message(role="user", content="x")]), Example)
