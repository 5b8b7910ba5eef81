"""Tests for the public surface of finetune_web.formats."""

from __future__ import annotations

import finetune_web.formats as formats


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted (constants, classes, functions by ruff's order) and every name exists."""
    names = formats.__all__
    assert sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n)) == names
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(formats, name) is not None


def test_public_objects_are_documented() -> None:
    """Every exported class and function has a docstring."""
    for name in formats.__all__:
        value = getattr(formats, name)
        if callable(value):
            assert value.__doc__, name
