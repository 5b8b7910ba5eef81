"""The incremental JSON buffer: chunked reads, doubling for big values, exact skipping."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.sources._jsonstream import (
    BrokenJson,
    JsonBuffer,
    JsonItem,
    JsonProblem,
    escape_bytes,
    iter_array,
)


class CountingReader(io.StringIO):
    """A text stream that records how many characters each read() asked for."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.requests: list[int] = []

    def read(self, size: int | None = -1, /) -> str:
        self.requests.append(-1 if size is None else size)
        return super().read(size)


def _array(count: int) -> str:
    return "[\n" + ",\n".join(json.dumps({"i": i, "pad": "x" * 20}) for i in range(count)) + "\n]"


def _values(events: list[JsonItem | JsonProblem]) -> list[Any]:
    return [event.value if isinstance(event, JsonItem) else event.reason for event in events]


def test_first_item_needs_one_chunk() -> None:
    """The first record of a 20,000-record array comes after a single 1 KiB read."""
    stream = CountingReader(_array(20_000))
    items = iter_array(JsonBuffer(stream, chunk_size=1024), limit=1 << 20)
    first = next(items)
    assert first == JsonItem({"i": 0, "pad": "x" * 20}, 2, 0)
    assert stream.requests == [1024]


def test_buffer_stays_small_for_small_records() -> None:
    """While streaming small records, the buffer never holds more than two chunks."""
    stream = CountingReader(_array(5_000))
    buf = JsonBuffer(stream, chunk_size=512)
    largest = count = 0
    for item in iter_array(buf, limit=1 << 20):
        assert isinstance(item, JsonItem)
        assert item.line == count + 2
        largest = max(largest, len(buf.text))
        count += 1
    assert count == 5_000
    assert largest <= 2 * 512


def test_huge_value_doubles_the_buffer() -> None:
    """A 4 MB value is read in a logarithmic number of growing reads, not chunk by chunk."""
    big = "y" * (4 << 20)
    stream = CountingReader(json.dumps([{"a": 1}, {"big": big}, {"a": 2}]))
    items = list(iter_array(JsonBuffer(stream, chunk_size=4096), limit=64 << 20))
    assert _values(items) == [{"a": 1}, {"big": big}, {"a": 2}]  # type: ignore[comparison-overlap]
    assert len(stream.requests) < 20
    assert max(stream.requests) > 1 << 20


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5])
def test_numbers_and_literals_cut_by_a_chunk_are_read_whole(chunk_size: int) -> None:
    """A number or literal that ends where a chunk ends is not taken before it is complete."""
    text = "[12345, -6.5e10, true, null, false, 7]"
    items = list(iter_array(JsonBuffer(io.StringIO(text), chunk_size), limit=1000))
    assert _values(items) == [12345, -6.5e10, True, None, False, 7]


def test_malformed_value_raises_broken_with_line_and_column() -> None:
    """A syntax error is reported at its own line and column, after the good records."""
    text = '[\n{"a": 1},\n{"a": tru}\n]'
    buf = JsonBuffer(io.StringIO(text), chunk_size=4)
    items = iter_array(buf, limit=1000)
    assert next(items) == JsonItem({"a": 1}, 2, 0)
    with pytest.raises(BrokenJson) as caught:
        next(items)
    assert (caught.value.line, caught.value.column) == (3, 7)
    assert caught.value.reason == "invalid_json"


@st.composite
def _json_values(draw: st.DrawFn) -> Any:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20),
    )
    return draw(
        st.recursive(
            scalars,
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=12,
        )
    )


@settings(max_examples=150, deadline=None)
@given(value=_json_values(), indent=st.sampled_from([None, 0, 2]), chunk=st.integers(1, 9))
def test_skip_consumes_exactly_one_value(value: Any, indent: int | None, chunk: int) -> None:
    """skip() stops right after the value, whatever its quotes, escapes and chunking."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    buf = JsonBuffer(io.StringIO(text + " ,tail"), chunk)
    finished, size = buf.skip()
    assert finished
    assert size == len(text)
    assert buf.peek() == ","
    assert buf.line == 1 + text.count("\n")


def test_escape_bytes_shows_undecodable_bytes() -> None:
    """Bytes kept by surrogateescape show as \\xNN; lone UTF-16 surrogates as \\uXXXX."""
    assert escape_bytes(b"caf\xe9 ok".decode("utf-8", "surrogateescape")) == "caf\\xe9 ok"
    assert escape_bytes("a\ud800b") == "a\\ud800b"
