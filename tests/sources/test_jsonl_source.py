"""JsonlSource: one JSON object per line, every bad line a rejection naming file and line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_web.errors import SourceError
from finetune_web.records import Document, Location, Rejection
from finetune_web.sources import JsonlSource

Write = Callable[[str, str | bytes], Path]


def _split(items: list[Document | Rejection]) -> tuple[list[Document], list[Rejection]]:
    documents = [item for item in items if isinstance(item, Document)]
    rejections = [item for item in items if isinstance(item, Rejection)]
    assert len(documents) + len(rejections) == len(items)
    return documents, rejections


def test_documents_carry_id_data_and_location(write: Write) -> None:
    """Each line becomes a Document named file#index, located at its 1-based line."""
    path = write("items.jsonl", '{"a": 1}\n\n   \n{"b": [1, 2]}\r\n{"c": "é"}')
    items = list(JsonlSource(path).read())

    def at(line: int, index: int) -> Location:
        return Location(origin=str(path), line=line, index=index)

    assert items == [
        Document(id="items.jsonl#0", data={"a": 1}, location=at(1, 0)),
        Document(id="items.jsonl#1", data={"b": [1, 2]}, location=at(4, 1)),
        Document(id="items.jsonl#2", data={"c": "é"}, location=at(5, 2)),
    ]


def test_malformed_lines_are_rejected_and_nothing_is_lost(write: Write) -> None:
    """Invalid JSON lines become invalid_json rejections naming path:line and the column.

    Documents plus rejections equal the non-blank lines of the file, in order.
    """
    lines = ['{"ok": 1}', '{"broken": ', '{"ok": 2}', "{'single': 'quotes'}", '{"ok": 3} extra']
    path = write("mixed.jsonl", "\n".join(lines) + "\n")
    items = list(JsonlSource(path).read())
    documents, rejections = _split(items)
    assert len(items) == len(lines)
    assert [d.data for d in documents] == [{"ok": 1}, {"ok": 2}]
    assert [(r.reason, r.location.line if r.location else None) for r in rejections] == [
        ("invalid_json", 2),
        ("invalid_json", 4),
        ("invalid_json", 5),
    ]
    first = rejections[0]
    assert first.record_id == "mixed.jsonl#1"
    assert first.step == "JsonlSource"
    assert first.message.startswith(f"{path}:2: invalid JSON at column 12")
    assert first.record == '{"broken": '
    assert "Extra data" in rejections[2].message
    assert rejections[2].details == {"column": 11}


def test_non_object_values_are_data_type_rejections(write: Write) -> None:
    """Arrays, numbers, strings and null lines are rejected as data_type, keeping the line."""
    path = write("values.jsonl", '[1, 2]\n42\n"text"\nnull\n{"ok": true}\n')
    items = list(JsonlSource(path).read())
    documents, rejections = _split(items)
    assert [d.data for d in documents] == [{"ok": True}]
    assert [r.reason for r in rejections] == ["data_type"] * 4
    assert [r.record for r in rejections] == ["[1, 2]", "42", '"text"', "null"]
    assert "JSON list, not an object" in rejections[0].message
    assert "JSON null" in rejections[3].message


def test_empty_file_is_a_source_error_naming_the_path(write: Write) -> None:
    """A 0-byte file raises SourceError when read() is called, naming the file."""
    path = write("empty.jsonl", b"")
    with pytest.raises(SourceError, match="file is empty") as caught:
        JsonlSource(path).read()
    assert caught.value.context.path == str(path)
    assert str(path) in str(caught.value)


def test_blank_only_file_is_a_source_error(write: Write) -> None:
    """A file of blank lines raises SourceError once read to its end."""
    path = write("blank.jsonl", "\n  \n\t\n")
    with pytest.raises(SourceError, match="only blank lines"):
        list(JsonlSource(path).read())


def test_missing_file_and_directory_are_source_errors(tmp_path: Path) -> None:
    """A missing path and a directory raise SourceError at read(), saying what to check."""
    with pytest.raises(SourceError, match="check the path") as caught:
        JsonlSource(tmp_path / "nope.jsonl").read()
    assert caught.value.context.source == "JsonlSource"
    with pytest.raises(SourceError, match="directory"):
        JsonlSource(tmp_path).read()


def test_invalid_utf8_on_one_line_rejects_only_that_line(write: Write) -> None:
    """A line with bad bytes is invalid_encoding (bytes shown as \\xNN); the others read."""
    content = '{"a": "naïve"}\n'.encode() + b'{"a": "bad \xff\xfe"}\n' + b'{"a": "fine"}\n'
    path = write("bytes.jsonl", content)
    documents, rejections = _split(list(JsonlSource(path).read()))
    assert [d.data for d in documents] == [{"a": "naïve"}, {"a": "fine"}]
    assert [d.id for d in documents] == ["bytes.jsonl#0", "bytes.jsonl#2"]
    (bad,) = rejections
    assert bad.reason == "invalid_encoding"
    assert bad.location == Location(origin=str(path), line=2, index=1)
    assert bad.record == '{"a": "bad \\xff\\xfe"}'
    assert bad.message.startswith(f"{path}:2: byte 0xff")


def test_scrape_errors_become_rejections(write: Write) -> None:
    """Bright Data failed records (error_code set) are scrape_error rejections with details."""
    failed = {"error_code": "dead_page", "error": "Page not found", "input": {"url": "u"}}
    records = [{"title": "ok"}, failed, {"title": "null code", "error_code": None}]
    path = write("bd.jsonl", "\n".join(json.dumps(r) for r in records))
    documents, rejections = _split(list(JsonlSource(path).read()))
    assert [d.data for d in documents] == [records[0], records[2]]
    (rejection,) = rejections
    assert rejection.reason == "scrape_error"
    assert rejection.details == {
        "error_code": "dead_page",
        "error": "Page not found",
        "input": {"url": "u"},
    }
    assert rejection.record == failed
    assert "dead_page" in rejection.message
    assert "Page not found" in rejection.message
    kept = list(JsonlSource(path, error_key=None).read())
    assert all(isinstance(item, Document) for item in kept)


def test_text_field_fills_text_or_rejects(write: Write) -> None:
    """text_field copies a string into Document.text; missing or non-string values reject."""
    path = write("text.jsonl", '{"body": "hello"}\n{"title": "x"}\n{"body": ["a"]}\n')
    items = list(JsonlSource(path, text_field="body").read())
    assert isinstance(items[0], Document)
    assert items[0].text == "hello"
    assert items[0].data == {"body": "hello"}
    assert [getattr(item, "reason", None) for item in items] == [None, "missing_field", "data_type"]


def test_long_line_is_rejected_and_reading_goes_on(write: Write) -> None:
    """A line over max_line_bytes is record_too_large with its size; the next line reads."""
    path = write("long.jsonl", '{"a": 1}\n{"big": "' + "x" * 5000 + '"}\n{"a": 2}\n')
    items = list(JsonlSource(path, max_line_bytes=1000).read())
    documents, rejections = _split(items)
    assert [d.data for d in documents] == [{"a": 1}, {"a": 2}]
    (too_large,) = rejections
    assert too_large.reason == "record_too_large"
    assert too_large.record_id == "long.jsonl#1"
    assert too_large.details == {"size": 5012}
    assert too_large.message.startswith(f"{path}:2: line is 5,012 bytes")


def test_name_is_the_rejection_step(write: Write) -> None:
    """The name option labels the rejections, so two files can be told apart."""
    path = write("named.jsonl", "nope\n")
    (rejection,) = list(JsonlSource(path, name="products").read())
    assert isinstance(rejection, Rejection)
    assert rejection.step == "products"


def test_read_twice_gives_the_same_items(write: Write) -> None:
    """read() returns a fresh iterator each time; the items are equal."""
    path = write("twice.jsonl", '{"a": 1}\nbad\n{"a": 2}\n')
    source = JsonlSource(path)
    assert list(source.read()) == list(source.read())
