"""CsvSource: rows keyed by the header, each bad row a rejection at the line it starts."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_web.errors import ConfigError, SourceError
from finetune_web.records import Document, Location, Rejection
from finetune_web.sources import CsvSource

Write = Callable[[str, str | bytes], Path]


def _data(items: list[Document | Rejection]) -> list[object]:
    return [item.data if isinstance(item, Document) else item.reason for item in items]


def _lines(items: list[Document | Rejection]) -> list[int | None]:
    return [item.location.line if item.location else None for item in items]


def test_rows_become_documents_with_string_values(write: Write) -> None:
    """Each row maps header to cell; values stay strings and empty cells stay ''."""
    path = write("rows.csv", "title,price,brand\nCaliper,19.99,\nRuler,,Acme\n")
    items = list(CsvSource(path).read())
    assert items == [
        Document(
            id="rows.csv#0",
            data={"title": "Caliper", "price": "19.99", "brand": ""},
            location=Location(origin=str(path), line=2, index=0),
        ),
        Document(
            id="rows.csv#1",
            data={"title": "Ruler", "price": "", "brand": "Acme"},
            location=Location(origin=str(path), line=3, index=1),
        ),
    ]


def test_multi_line_quoted_field_keeps_line_numbers_right(write: Write) -> None:
    """A quoted field spanning lines stays one value; each row is located where it starts."""
    text = 'id,description\n1,"first line\nsecond ""quoted"" line\nthird"\n2,plain\n\n3,"a,b"\n'
    path = write("multi.csv", text)
    items = list(CsvSource(path).read())
    assert _data(items) == [
        {"id": "1", "description": 'first line\nsecond "quoted" line\nthird'},
        {"id": "2", "description": "plain"},
        {"id": "3", "description": "a,b"},
    ]
    assert _lines(items) == [2, 5, 7]


def test_extra_and_missing_fields_are_rejected(write: Write) -> None:
    """More cells than columns is extra_fields, fewer is missing_fields; the raw row is kept."""
    path = write("fields.csv", "a,b,c\n1,2,3\n1,2,3,4\n1,2\n5,6,7\n")
    items = list(CsvSource(path).read())
    assert _data(items) == [
        {"a": "1", "b": "2", "c": "3"},
        "extra_fields",
        "missing_fields",
        {"a": "5", "b": "6", "c": "7"},
    ]
    extra, missing = items[1], items[2]
    assert isinstance(extra, Rejection)
    assert isinstance(missing, Rejection)
    assert extra.message.startswith(f"{path}:3: row has 4 cells but the header has 3 columns")
    assert extra.record == "1,2,3,4"
    assert extra.details == {"cells": 4, "columns": 3}
    assert missing.record_id == "fields.csv#2"
    assert missing.location == Location(origin=str(path), line=4, index=2)


def test_delimiter_and_fieldnames(write: Write) -> None:
    """A TSV without a header reads with delimiter='\\t' and fieldnames given."""
    path = write("rows.tsv", "1\tone\n2\ttwo, with comma\n")
    items = list(CsvSource(path, delimiter="\t", fieldnames=["n", "word"]).read())
    assert _data(items) == [{"n": "1", "word": "one"}, {"n": "2", "word": "two, with comma"}]
    assert _lines(items) == [1, 2]


def test_list_fields_are_split(write: Write) -> None:
    """list_fields cells are split on list_separator and stripped; an empty cell is []."""
    path = write("lists.csv", "name,tags\na, x ; y;z\nb,\n")
    items = list(CsvSource(path, list_fields=["tags"]).read())
    assert _data(items) == [{"name": "a", "tags": ["x", "y", "z"]}, {"name": "b", "tags": []}]
    piped = list(CsvSource(path, list_fields=("tags",), list_separator=" ").read())
    assert _data(piped)[0] == {"name": "a", "tags": ["", "x", ";", "y;z"]}


def test_invalid_bytes_reject_only_their_row(write: Write) -> None:
    """A bad line costs its row only, also inside a multi-line field; later rows read."""
    content = b'id,text\n1,fine\n2,bad \xff byte\n3,"multi\nline \xfe here\nend"\n4,after\n'
    path = write("bytes.csv", content)
    items = list(CsvSource(path, encoding="utf-8").read())
    assert _data(items) == [
        {"id": "1", "text": "fine"},
        "invalid_encoding",
        "invalid_encoding",
        {"id": "4", "text": "after"},
    ]
    assert _lines(items) == [2, 3, 4, 7]
    inside = items[2]
    assert isinstance(inside, Rejection)
    assert inside.message.startswith(f"{path}:4: line 5 of the row starting at line 4: byte 0xfe")
    assert inside.record == '3,"multi\nline \\xfe here\nend"'


def test_header_problems_are_source_errors(write: Write) -> None:
    """A duplicate column, or an option naming a column that is absent, raises SourceError."""
    duplicate = write("dup.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(SourceError, match="'a' appears twice") as caught:
        list(CsvSource(duplicate).read())
    assert caught.value.context.line == 1
    plain = write("plain.csv", "a,b\n1,2\n")
    with pytest.raises(SourceError, match="'tags'"):
        list(CsvSource(plain, list_fields=["tags"]).read())
    with pytest.raises(SourceError, match="'body'"):
        list(CsvSource(plain, text_field="body").read())


def test_undecodable_header_is_a_source_error(write: Write) -> None:
    """A header line with bad bytes cannot be used: SourceError at line 1."""
    path = write("badhead.csv", b"a,\xff\n1,2\n")
    with pytest.raises(SourceError, match="header row cannot be read") as caught:
        list(CsvSource(path, encoding="utf-8").read())
    assert caught.value.context.line == 1


def test_header_only_and_empty_files(write: Write) -> None:
    """A header with no rows gives nothing; empty and blank files raise SourceError."""
    assert list(CsvSource(write("head.csv", "a,b\n")).read()) == []
    with pytest.raises(SourceError, match="file is empty"):
        CsvSource(write("empty.csv", b"")).read()
    with pytest.raises(SourceError, match="only blank lines"):
        list(CsvSource(write("blank.csv", "\n\n")).read())


def test_scrape_error_rows(write: Write) -> None:
    """A row with a non-empty error_code cell is a scrape_error rejection; '' is fine."""
    path = write("bd.csv", "url,title,error_code,error\nu1,ok,,\nu2,,dead_page,Page gone\n")
    items = list(CsvSource(path).read())
    ok = {"url": "u1", "title": "ok", "error_code": "", "error": ""}
    assert _data(items) == [ok, "scrape_error"]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert rejection.details == {"error_code": "dead_page", "error": "Page gone", "input": None}


def test_text_field(write: Write) -> None:
    """text_field copies the cell into Document.text (empty cells give '')."""
    path = write("text.csv", "title,body\nx,hello\ny,\n")
    items = list(CsvSource(path, text_field="body").read())
    assert [item.text for item in items if isinstance(item, Document)] == ["hello", ""]


def test_long_line_rejects_its_row(write: Write) -> None:
    """A line over max_line_bytes makes its row record_too_large; the next row reads."""
    path = write("long.csv", "a,b\n1," + "x" * 5000 + "\n2,y\n")
    items = list(CsvSource(path, max_line_bytes=1000).read())
    assert _data(items) == ["record_too_large", {"a": "2", "b": "y"}]
    assert _lines(items) == [2, 3]


def test_field_over_csv_limit_is_invalid_csv(write: Write) -> None:
    """A cell over csv.field_size_limit() is an invalid_csv rejection; later rows read."""
    huge = "y" * (csv.field_size_limit() + 10)
    path = write("huge.csv", f'a,b\n1,"{huge}"\n2,z\n')
    items = list(CsvSource(path).read())
    assert _data(items) == ["invalid_csv", {"a": "2", "b": "z"}]
    rejection = items[0]
    assert isinstance(rejection, Rejection)
    assert "field larger than field limit" in rejection.message
    assert "csv.field_size_limit" in rejection.message
    assert isinstance(rejection.record, str)
    assert len(rejection.record) == 10_000


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    """A two-character delimiter, an empty separator and an unknown encoding fail at once."""
    with pytest.raises(ConfigError, match="delimiter"):
        CsvSource(tmp_path / "x.csv", delimiter=";;")
    with pytest.raises(ConfigError, match="list_separator"):
        CsvSource(tmp_path / "x.csv", list_separator="")
    with pytest.raises(ConfigError, match="not an encoding"):
        CsvSource(tmp_path / "x.csv", encoding="latin-99")
    with pytest.raises(ConfigError, match="at least 1"):
        CsvSource(tmp_path / "x.csv", max_line_bytes=0)
