"""HashSplit: a deterministic, stable, leak-free train/validation split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from finetune_web import Example, HashSplit, Message, Split
from finetune_web.testing import check_transformer


def _example(text: str, index: int, group: str | None = None) -> Example:
    return Example(
        id=f"e{index}",
        messages=[Message(role="user", content=text), Message(role="assistant", content="ok")],
        metadata={} if group is None else {"group": group},
    )


def _sides(step: HashSplit, examples: list[Example]) -> dict[str, Split]:
    return {out.id: out.split for out in step.transform(examples)}  # type: ignore[union-attr]


@given(
    texts=st.lists(st.text(max_size=30), max_size=40),
    more=st.lists(st.text(max_size=30), max_size=20),
    seed=st.integers(0, 2**32),
    fraction=st.floats(0, 0.99),
)
def test_partition_and_stability_under_added_records(
    texts: list[str], more: list[str], seed: int, fraction: float
) -> None:
    """Every example lands on exactly one side, and adding records never moves an old one."""
    step = HashSplit(validation=fraction, seed=seed)
    old = [_example(t, i) for i, t in enumerate(texts)]
    new = old + [_example(t, len(texts) + i) for i, t in enumerate(more)]
    before, after = _sides(step, old), _sides(step, new)
    assert set(before) == {e.id for e in old}
    assert all(side in (Split.TRAIN, Split.VALIDATION) for side in after.values())
    assert {k: after[k] for k in before} == before


def test_fraction_is_close_to_the_target() -> None:
    """Over 10,000 distinct examples the validation share is within 1.5 points of 20%."""
    sides = _sides(
        HashSplit(validation=0.2, seed=1), [_example(f"text {i}", i) for i in range(10_000)]
    )
    share = sum(s is Split.VALIDATION for s in sides.values()) / len(sides)
    assert abs(share - 0.2) < 0.015


def test_identical_content_lands_together_and_seed_matters() -> None:
    """Duplicates share a side; another seed gives another assignment."""
    examples = [_example(f"t{i % 50}", i) for i in range(200)]
    sides = _sides(HashSplit(validation=0.5, seed=3), examples)
    for i in range(50, 200):
        assert sides[f"e{i}"] == sides[f"e{i % 50}"]
    assert sides != _sides(HashSplit(validation=0.5, seed=4), examples)


def test_group_key_keeps_groups_on_one_side() -> None:
    """Records sharing a group_key value land on the same side even with different content."""
    examples = [_example(f"distinct {i}", i, group=f"g{i % 7}") for i in range(140)]
    sides = _sides(HashSplit(validation=0.5, seed=0, group_key="group"), examples)
    for i in range(140):
        assert sides[f"e{i}"] == sides[f"e{i % 7}"]


def test_documents_are_rejected_with_a_hint() -> None:
    """A document reaching the split is rejected, telling the user to add a template first."""
    from finetune_web import Document

    outputs = check_transformer(HashSplit(), [Document(id="d", text="x"), _example("a", 1)])
    assert outputs[0].reason == "wrong_record_type"  # type: ignore[union-attr]
    assert "template" in outputs[0].message  # type: ignore[union-attr]
