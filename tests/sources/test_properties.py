"""Properties: whatever the layout and chunking, the sources give exactly what was written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.records import Document
from finetune_web.sources import CsvSource, JsonlSource, JsonSource
from finetune_web.sources.files import DEFAULT_ERROR_KEY

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
# keys other than the field that marks a failed scrape: a record holding it is a rejection
# by design (tests/sources cover that), not a document, and Hypothesis draws it from the code
_keys = _text.filter(lambda key: key != DEFAULT_ERROR_KEY)
_objects = st.dictionaries(_keys, _values, max_size=5)
_space = st.text(alphabet=" \t\r\n", max_size=4)


@st.composite
def json_arrays(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], list[int]]:
    """A JSON array of objects with random spacing; returns text, objects and start lines."""
    records = draw(st.lists(_objects, max_size=8))
    indent = draw(st.sampled_from([None, 0, 1, 4, "\t"]))
    ensure_ascii = draw(st.booleans())
    text = draw(_space) + "["
    starts = []
    for index, record in enumerate(records):
        text += draw(_space)
        starts.append(text.count("\n") + 1)
        text += json.dumps(record, indent=indent, ensure_ascii=ensure_ascii) + draw(_space)
        text += "," if index < len(records) - 1 else ""
    text += draw(_space) + "]" + draw(_space)
    return text, records, starts


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the generated files (module-scoped: Hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("properties")


def _documents(items: list[Any]) -> list[Document]:
    assert all(isinstance(item, Document) for item in items), items
    return items


@settings(max_examples=120, deadline=None)
@given(case=json_arrays(), chunk_size=st.integers(1, 64))
def test_json_array_gives_json_load_items_at_their_lines(
    folder: Path, case: tuple[str, list[dict[str, Any]], list[int]], chunk_size: int
) -> None:
    """JsonSource yields exactly json.load's items, in order, each at its starting line."""
    text, records, starts = case
    path = folder / "array.json"
    path.write_text(text, encoding="utf-8")
    assert json.loads(text) == records
    documents = _documents(list(JsonSource(path, chunk_size=chunk_size).read()))
    assert [d.data for d in documents] == records
    assert [d.location.line if d.location else None for d in documents] == starts
    assert [d.id for d in documents] == [f"array.json#{i}" for i in range(len(records))]


@settings(max_examples=60, deadline=None)
@given(case=json_arrays(), chunk_size=st.integers(1, 64), before=_space)
def test_wrapped_array_gives_the_same_items(
    folder: Path, case: tuple[str, list[dict[str, Any]], list[int]], chunk_size: int, before: str
) -> None:
    """The same array under a key of a wrapping object reads the same, lines shifted."""
    text, records, starts = case
    prefix = '{"count": 1,' + before + '"data":'
    path = folder / "wrapped.json"
    path.write_text(prefix + text + "}", encoding="utf-8")
    source = JsonSource(path, records_key="data", chunk_size=chunk_size)
    documents = _documents(list(source.read()))
    assert [d.data for d in documents] == records
    shift = prefix.count("\n")
    assert [d.location.line if d.location else None for d in documents] == [
        line + shift for line in starts
    ]


@settings(max_examples=80, deadline=None)
@given(
    records=st.lists(st.tuples(_objects, st.sampled_from(["", " ", "\t \r"]), st.booleans())),
    ensure_ascii=st.booleans(),
)
def test_json_lines_give_each_object_at_its_line(
    folder: Path, records: list[tuple[dict[str, Any], str, bool]], ensure_ascii: bool
) -> None:
    """JsonlSource yields every object line in order at its line; blank lines are skipped."""
    text, starts = "", []
    for record, blank, crlf in records:
        if blank:
            text += blank + "\n"
        starts.append(text.count("\n") + 1)
        text += json.dumps(record, ensure_ascii=ensure_ascii) + ("\r\n" if crlf else "\n")
    if not records:
        text = "{}\n"
        records, starts = [({}, "", False)], [1]
    path = folder / "lines.jsonl"
    path.write_text(text, encoding="utf-8", newline="")
    documents = _documents(list(JsonlSource(path).read()))
    assert [d.data for d in documents] == [record for record, _, _ in records]
    assert [d.location.line if d.location else None for d in documents] == starts
    via_json = _documents(list(JsonSource(path).read()))
    assert [d.data for d in via_json] == [d.data for d in documents]


_cells = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from('\n",;'),
    max_size=10,
)


@settings(max_examples=120, deadline=None)
@given(
    header=st.lists(
        _cells.filter(lambda name: name != DEFAULT_ERROR_KEY), min_size=1, max_size=4, unique=True
    ),
    data=st.data(),
)
def test_csv_rows_come_back_at_their_lines(folder: Path, header: list[str], data: Any) -> None:
    """CsvSource returns every row written by csv.writer, at the line where it starts.

    Cells hold commas, quotes and newlines, so rows span several lines.
    """
    rows = data.draw(st.lists(st.lists(_cells, min_size=len(header), max_size=len(header))))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    starts = []
    for row in rows:
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)
    path = folder / "rows.csv"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    documents = _documents(list(CsvSource(path).read()))
    expected = [dict(zip(header, row, strict=True)) for row in rows]
    assert [d.data for d in documents] == expected
    assert [d.location.line if d.location else None for d in documents] == starts
