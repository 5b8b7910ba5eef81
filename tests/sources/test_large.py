"""Large inputs: a 50 MB line and a 200k-record array are read with bounded memory."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from finetune_web.records import Document, Rejection
from finetune_web.sources import JsonlSource, JsonSource

MIB = 1 << 20
LINE_MIB = 50
RECORDS = 200_000


@contextmanager
def _peak() -> Iterator[list[int]]:
    """Measure the peak of Python allocations inside the block (in bytes)."""
    result: list[int] = []
    tracemalloc.start()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def _write_big_line_file(path: Path) -> int:
    """Write a small line, a 50 MB JSON line and a small line, 1 MiB at a time."""
    with path.open("wb") as handle:
        handle.write(b'{"n": 1}\n{"text": "')
        for _ in range(LINE_MIB):
            handle.write(b"x" * MIB)
        handle.write(b'"}\n{"n": 2}\n')
    return LINE_MIB * MIB


def test_fifty_megabyte_line_reads_with_default_limits(tmp_path: Path) -> None:
    """A 50 MB line is one Document under the default 64 MiB limit, without extra copies.

    The peak of Python allocations stays under 2.5x the line: the raw bytes and
    the decoded text briefly coexist, then the text and the parsed value;
    nothing else is held.
    """
    path = tmp_path / "big.jsonl"
    size = _write_big_line_file(path)
    summary: list[tuple[str, int | None, int]] = []
    with _peak() as peak:
        for item in JsonlSource(path).read():
            assert isinstance(item, Document)
            assert item.data is not None
            text = item.data.get("text")
            line = item.location.line if item.location else None
            summary.append((item.id, line, len(text) if isinstance(text, str) else -1))
            del item, text
    assert summary == [("big.jsonl#0", 1, -1), ("big.jsonl#1", 2, size), ("big.jsonl#2", 3, -1)]
    assert peak[0] < 2.5 * size


def test_fifty_megabyte_line_over_the_limit_is_rejected_without_loading_it(
    tmp_path: Path,
) -> None:
    """With max_line_bytes=1 MiB the 50 MB line is record_too_large, read in small pieces.

    The lines around it are still read, and the peak memory stays a few MiB.
    """
    path = tmp_path / "big.jsonl"
    size = _write_big_line_file(path)
    with _peak() as peak:
        items = list(JsonlSource(path, max_line_bytes=MIB).read())
    assert [type(item).__name__ for item in items] == ["Document", "Rejection", "Document"]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "record_too_large"
    assert rejection.details == {"size": size + len('{"text": ""}\n')}
    assert rejection.location is not None
    assert rejection.location.line == 2
    assert rejection.record is None
    assert peak[0] < 5 * MIB


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretty-printed JSON array of 200,000 small objects, one per line (about 7 MB)."""
    path = tmp_path_factory.mktemp("large") / "many.json"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[\n")
        for index in range(RECORDS):
            separator = ",\n" if index < RECORDS - 1 else "\n"
            handle.write(json.dumps({"i": index, "name": f"item {index}"}) + separator)
        handle.write("]\n")
    return path


@pytest.mark.parametrize(("encoding", "limit"), [("utf-8", 128 * 1024), (None, 1280 * 1024)])
def test_first_record_of_a_large_array_needs_little_memory(
    many: Path, encoding: str | None, limit: int
) -> None:
    """Reading the first of 200k records allocates a small, fixed amount, not the file.

    With the encoding given, the parser holds a 4 KiB chunk; detecting the
    encoding adds its fixed 1 MiB sample.
    """
    assert many.stat().st_size > 5 * MIB
    with _peak() as peak:
        items = JsonSource(many, encoding=encoding, chunk_size=4096).read()
        first = next(iter(items))
        del items
    assert isinstance(first, Document)
    assert first.data == {"i": 0, "name": "item 0"}
    assert peak[0] < limit


def test_whole_large_array_streams_in_order(many: Path) -> None:
    """All 200k records come out in order, each at its own line."""
    count = 0
    for item in JsonSource(many).read():
        assert isinstance(item, Document)
        assert item.location is not None
        assert item.location.line == count + 2
        assert item.data == {"i": count, "name": f"item {count}"}
        count += 1
    assert count == RECORDS
