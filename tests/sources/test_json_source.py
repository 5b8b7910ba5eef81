"""JsonSource: arrays, wrapped arrays, single objects and NDJSON, with exact error places."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_web.errors import ConfigError, SourceError
from finetune_web.records import Document, Rejection
from finetune_web.sources import JsonLayout, JsonSource

Write = Callable[[str, str | bytes], Path]


def _data(items: list[Document | Rejection]) -> list[object]:
    return [item.data if isinstance(item, Document) else item.reason for item in items]


def _lines(items: list[Document | Rejection]) -> list[int | None]:
    return [item.location.line if item.location else None for item in items]


def test_pretty_printed_array_gives_records_at_their_lines(write: Write) -> None:
    """Each array item becomes a Document whose line is where its '{' stands."""
    records = [{"a": 1}, {"b": {"c": [1, 2]}}, {"d": "é"}]
    text = json.dumps(records, indent=2, ensure_ascii=False)
    path = write("items.json", text)
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line == "  {"]
    items = list(JsonSource(path).read())
    assert _data(items) == records
    assert _lines(items) == starts
    assert [item.id for item in items if isinstance(item, Document)] == [
        "items.json#0",
        "items.json#1",
        "items.json#2",
    ]
    assert JsonSource(path).layout() == JsonLayout(kind="array")


def test_crlf_and_minified_arrays(write: Write) -> None:
    """CRLF line breaks count as one line each; a minified array is all on line 1."""
    crlf = write("crlf.json", '[\r\n  {"a": 1},\r\n\r\n  {"a": 2}\r\n]\r\n')
    assert _lines(list(JsonSource(crlf).read())) == [2, 4]
    flat = write("flat.json", '[{"a": 1},{"a": 2},{"a": 3}]')
    assert _lines(list(JsonSource(flat).read())) == [1, 1, 1]


def test_empty_array_gives_no_records(write: Write) -> None:
    """'[]' is a valid file with zero records: no error, nothing yielded."""
    assert list(JsonSource(write("none.json", " [ ] \n")).read()) == []


def test_wrapped_array_is_found_and_reported(write: Write) -> None:
    """A top-level object whose scalar members precede an array of objects is a wrapper."""
    doc = {"count": 2, "next": None, "results": [{"a": 1}, {"a": 2}], "meta": {"page": 1}}
    path = write("wrapped.json", json.dumps(doc, indent=1))
    source = JsonSource(path)
    assert source.layout() == JsonLayout(kind="wrapped", records_key="results")
    assert _data(list(source.read())) == doc["results"]


def test_records_key_picks_the_array(write: Write) -> None:
    """records_key names the member to read, even after other arrays and objects."""
    doc = {"meta": {"n": 2}, "tags": [{"t": 1}], "items": [{"a": 1}, {"a": 2}]}
    path = write("keyed.json", json.dumps(doc))
    assert JsonSource(path).layout() == JsonLayout(kind="object")
    source = JsonSource(path, records_key="items")
    assert source.layout() == JsonLayout(kind="wrapped", records_key="items")
    assert _data(list(source.read())) == doc["items"]


def test_records_key_that_does_not_fit_is_a_source_error(write: Write) -> None:
    """A missing key lists the keys there are; a non-array value and an array file say why."""
    obj = write("obj.json", '{"a": 1, "b": {"c": 2}}')
    with pytest.raises(SourceError, match=r"no key 'items'; its keys: 'a', 'b'"):
        list(JsonSource(obj, records_key="items").read())
    with pytest.raises(SourceError, match=r"key 'b' holds a dict, not an array"):
        list(JsonSource(obj, records_key="b").read())
    array = write("array.json", '[{"a": 1}]')
    with pytest.raises(SourceError, match="top level is not an object"):
        list(JsonSource(array, records_key="items").read())


def test_product_object_is_one_record(write: Write) -> None:
    """A single product (a list before its variations) is one record, not its variations."""
    product = {
        "title": "Caliper",
        "categories": ["Tools", "Measuring"],
        "variations": [{"name": "8 inch"}, {"name": "6 inch"}],
    }
    path = write("product.json", json.dumps(product, indent=4))
    assert JsonSource(path).layout() == JsonLayout(kind="object")
    (document,) = list(JsonSource(path).read())
    assert isinstance(document, Document)
    assert document.data == product
    assert document.id == "product.json#0"


def test_object_as_record_overrides_wrapper_detection(write: Write) -> None:
    """object_as_record=True reads a wrapper-shaped object as one record."""
    doc = {"title": "x", "variations": [{"v": 1}]}
    path = write("one.json", json.dumps(doc))
    assert _data(list(JsonSource(path).read())) == [{"v": 1}]
    assert _data(list(JsonSource(path, object_as_record=True).read())) == [doc]
    with pytest.raises(ConfigError, match="contradict"):
        JsonSource(path, records_key="variations", object_as_record=True)


def test_ndjson_is_read_line_by_line(write: Write) -> None:
    """A .json file holding one object per line (Bright Data ndjson) falls back to JSONL."""
    path = write("snapshot.json", '{"a": 1}\n{"a": 2}\n\nnot json\n{"a": 3}\n')
    source = JsonSource(path)
    assert source.layout() == JsonLayout(kind="lines")
    items = list(source.read())
    assert _data(items) == [{"a": 1}, {"a": 2}, "invalid_json", {"a": 3}]
    assert _lines(items) == [1, 2, 4, 5]
    assert all(item.step == "JsonSource" for item in items if isinstance(item, Rejection))


def test_jsonl_suffix_is_read_as_lines(write: Write) -> None:
    """A .ndjson file is read as lines without sniffing, even with one line."""
    path = write("one.ndjson", '{"title": "x", "variations": [{"v": 1}]}\n')
    assert JsonSource(path).layout() == JsonLayout(kind="lines")
    assert _data(list(JsonSource(path).read())) == [{"title": "x", "variations": [{"v": 1}]}]


def test_malformed_json_inside_the_array_names_the_line(write: Write) -> None:
    """Records before the fault are kept; one invalid_json rejection covers the rest.

    The rejection names the exact line and column, how many records were read
    before it, and that the rest of the file was not.
    """
    text = '[\n  {"a": 1},\n  {"a": 2},\n  {"a": 3,, "b": 4},\n  {"a": 5}\n]\n'
    path = write("broken.json", text)
    items = list(JsonSource(path).read())
    assert _data(items) == [{"a": 1}, {"a": 2}, "invalid_json"]
    rejection = items[-1]
    assert isinstance(rejection, Rejection)
    assert rejection.record_id == "broken.json#2"
    assert rejection.location is not None
    assert rejection.location.line == 4
    assert rejection.message.startswith(f"{path}:4: at column 11: Expecting property name")
    assert "2 records were read before it" in rejection.message
    assert "the rest of the file, from line 4, cannot be read" in rejection.message
    assert rejection.details == {"records_read": 2, "rest_of_file": True}
    assert isinstance(rejection.record, str)
    assert rejection.record.startswith('{"a": 3,,')


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ('[\n{"a": 1},\n]', 3, "expected a value, found ']'"),
        ('[\n{"a": 1}\n{"a": 2}]', 3, "expected ',' or ']' after the record, found '{'"),
        ('[\n{"a": 1},\n{"a": 2', 3, "unexpected end of file"),
        ('[\n{"a": 1}\n]\n[]', 4, "expected the end of the file after the JSON document"),
        ("<html>\n<body>Rate limited</body>\n</html>", 1, "Expecting value"),
    ],
)
def test_broken_documents_end_in_one_rejection(
    write: Write, text: str, line: int, expected: str
) -> None:
    """Trailing commas, missing commas, cut files, trailing data and HTML each give one
    invalid_json rejection at the right line, after the records that could be read."""
    path = write("bad.json", text)
    items = list(JsonSource(path).read())
    rejection = items[-1]
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid_json"
    assert rejection.location is not None
    assert rejection.location.line == line
    assert expected in rejection.message
    assert all(isinstance(item, Document) for item in items[:-1])


def test_non_object_items_are_data_type_rejections(write: Write) -> None:
    """Array items that are not objects are rejected one by one; objects after them read."""
    path = write("values.json", '[{"a": 1}, 2, "three", null, [4], {"a": 5}]')
    items = list(JsonSource(path).read())
    assert _data(items) == [{"a": 1}, *["data_type"] * 4, {"a": 5}]
    assert [item.record for item in items if isinstance(item, Rejection)] == [2, "three", None, [4]]


def test_top_level_scalar_is_one_data_type_rejection(write: Write) -> None:
    """A file holding just a number is one record of the wrong type."""
    assert _data(list(JsonSource(write("n.json", "42\n")).read())) == ["data_type"]


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n"])
def test_empty_file_is_a_source_error(write: Write, content: bytes) -> None:
    """An empty or whitespace-only file raises SourceError("file is empty") naming the path."""
    path = write("empty.json", content)
    with pytest.raises(SourceError, match="file is empty") as caught:
        list(JsonSource(path).read())
    assert caught.value.context.path == str(path)


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    """A missing file raises SourceError at read(), before anything is iterated."""
    with pytest.raises(SourceError, match="no such file"):
        JsonSource(tmp_path / "missing.json").read()


def test_bad_bytes_cost_only_their_record(write: Write) -> None:
    """Invalid UTF-8 inside one array item rejects that item as invalid_encoding only."""
    content = '[\n{"a": "naïve"},\n'.encode() + b'{"a": "caf\xe9"},\n' + b'{"a": "ok"}\n]'
    path = write("bytes.json", content)
    items = list(JsonSource(path, encoding="utf-8").read())
    assert _data(items) == [{"a": "naïve"}, "invalid_encoding", {"a": "ok"}]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert rejection.record == '{"a": "caf\\xe9"}'
    assert rejection.message.startswith(f"{path}:3: at column 11:")


def test_too_large_record_is_skipped_and_reading_goes_on(write: Write) -> None:
    """A record over max_record_chars is record_too_large; the records after it read."""
    big = {"text": "x" * 50_000, "nested": [{"s": 'quote " and \\ backslash'}] * 50}
    text = json.dumps([{"a": 1}, big, {"a": 2}], indent=2)
    path = write("big.json", text)
    items = list(JsonSource(path, max_record_chars=10_000, chunk_size=1024).read())
    assert _data(items) == [{"a": 1}, "record_too_large", {"a": 2}]
    assert _lines(items) == [n for n, line in enumerate(text.splitlines(), 1) if line == "  {"]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert rejection.details["size"] == len(json.dumps(big, indent=2).replace("\n", "\n  "))
    assert "raise max_record_chars" in rejection.message


def test_deeply_nested_record_is_rejected_and_reading_goes_on(write: Write) -> None:
    """A record nested deeper than the recursion limit is invalid_json; the next one reads."""
    deep = "[" * 100_000 + "]" * 100_000
    path = write("deep.json", '[{"a": 1},\n{"d": ' + deep + '},\n{"a": 2}]')
    items = list(JsonSource(path).read())
    assert _data(items) == [{"a": 1}, "invalid_json", {"a": 2}]
    assert "nested too deeply" in items[1].message  # type: ignore[union-attr]


def test_scrape_errors_in_an_array(write: Write) -> None:
    """Failed Bright Data records in an array are scrape_error rejections at their line."""
    failed = {"error_code": "blocked", "error": "Blocked by captcha", "input": {"url": "u"}}
    path = write("bd.json", json.dumps([{"title": "ok"}, failed], indent=2))
    items = list(JsonSource(path).read())
    assert _data(items) == [{"title": "ok"}, "scrape_error"]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert rejection.details["error_code"] == "blocked"
    assert rejection.location is not None
    assert rejection.location.line == 5


def test_utf8_bom_with_explicit_utf8_encoding(write: Write) -> None:
    """A BOM is skipped even when encoding='utf-8' is given instead of 'utf-8-sig'."""
    path = write("bom.json", b"\xef\xbb\xbf" + '[{"a": "é"}]'.encode())
    assert _data(list(JsonSource(path, encoding="utf-8").read())) == [{"a": "é"}]
    assert _data(list(JsonSource(path).read())) == [{"a": "é"}]
