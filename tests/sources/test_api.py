"""The public face of finetune_web.sources: exports, protocols, pickling, immutability."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

import finetune_web.sources as sources
from finetune_web.interfaces import HasInputFiles, Source
from finetune_web.sources import CsvSource, JsonlSource, JsonSource
from finetune_web.testing import check_source

Write = Callable[[str, str | bytes], Path]


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted (constants, classes, functions, as ruff orders it); every name exists."""
    names = sources.__all__
    assert sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n)) == names
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(sources, name) is not None
        assert getattr(sources, name).__doc__ or name.isupper(), name


def _sources(write: Write) -> list[JsonlSource | JsonSource | CsvSource]:
    jsonl = write("a.jsonl", '{"a": 1}\nbroken\n{"a": 2}\n')
    array = write("a.json", '[{"a": 1}, 2, {"a": 3}]')
    table = write("a.csv", "a,b\n1,2\n3\n")  # a header and two rows
    return [JsonlSource(jsonl), JsonSource(array, chunk_size=3), CsvSource(table, delimiter=",")]


def test_sources_keep_the_source_contract(write: Write) -> None:
    """Each source passes finetune_web.testing.check_source: protocol, pickling, stable reads."""
    for source in _sources(write):
        items = check_source(source)
        assert len(items) == (2 if isinstance(source, CsvSource) else 3)


def test_sources_implement_the_protocols(write: Write) -> None:
    """Each source is a Source and HasInputFiles, and names exactly its file."""
    for source in _sources(write):
        assert isinstance(source, Source)
        assert isinstance(source, HasInputFiles)
        assert source.input_files() == (source.path,)


def test_sources_pickle_before_and_during_reading(write: Write) -> None:
    """A source pickles before read() and even while one of its iterators is open.

    The open file lives in the iterator, never on the source, so the copy reads
    the same items from the start.
    """
    for source in _sources(write):
        copy = pickle.loads(pickle.dumps(source))
        assert copy == source
        items = source.read()
        next(iter(items))
        again = pickle.loads(pickle.dumps(source))
        assert list(again.read()) == list(source.read())
        del items


def test_sources_are_frozen_and_hold_no_file(write: Write) -> None:
    """Options cannot be changed in place; attrs.evolve makes a new source."""
    source = JsonlSource(write("x.jsonl", '{"a": 1}\n'))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        source.encoding = "cp1252"  # type: ignore[misc]
    changed = attrs.evolve(source, encoding="utf-8")
    assert changed.encoding == "utf-8"
    assert source.encoding is None
    assert all(not hasattr(value, "read") for value in attrs.asdict(source).values())


def test_path_is_positional_and_options_are_keywords(tmp_path: Path) -> None:
    """The path may be a str; every other option must be given by name."""
    source = JsonSource(str(tmp_path / "x.json"), records_key="data")
    assert source.path == tmp_path / "x.json"
    with pytest.raises(TypeError):
        JsonSource(tmp_path / "x.json", "utf-8")  # type: ignore[misc]
