"""ExactDedup: first occurrence kept, later copies rejected with a pointer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from finetune_web import ExactDedup, Example, Message, Rejection
from finetune_web.testing import check_transformer
from finetune_web.transforms import normalize_for_dedup


def _ex(i: int, user: str, answer: str = "a", system: str = "s") -> Example:
    return Example(
        id=f"e{i}",
        messages=[
            Message(role="system", content=system),
            Message(role="user", content=user),
            Message(role="assistant", content=answer),
        ],
    )


def test_later_copies_point_at_the_kept_record() -> None:
    """A copy differing only in case, spacing or system prompt is rejected with duplicate_of."""
    outs = check_transformer(
        ExactDedup(), [_ex(0, "Hello  World"), _ex(1, "hello world", system="other"), _ex(2, "Bye")]
    )
    assert [o.id for o in outs if not isinstance(o, Rejection)] == ["e0", "e2"]
    (rejection,) = [o for o in outs if isinstance(o, Rejection)]
    assert (rejection.record_id, rejection.reason, rejection.details) == (
        "e1",
        "duplicate",
        {"duplicate_of": "e0"},
    )


@given(st.lists(st.sampled_from(["a", "A", "b", "a ", "c\u00a0d", "c d", "x"]), max_size=30))
def test_idempotent_keeps_first_occurrence_order_and_never_merges_different_texts(
    users: list[str],
) -> None:
    """Dedup is idempotent, keeps first occurrences in order, and never removes a text
    that differs from every kept one after normalisation."""
    examples = [_ex(i, u) for i, u in enumerate(users)]
    step = ExactDedup()
    kept = [o for o in step.transform(examples) if isinstance(o, Example)]
    assert [o for o in step.transform(kept) if isinstance(o, Rejection)] == []
    keys = [normalize_for_dedup(u) for u in users]
    expected = [f"e{i}" for i, k in enumerate(keys) if k not in keys[:i]]
    assert [e.id for e in kept] == expected
