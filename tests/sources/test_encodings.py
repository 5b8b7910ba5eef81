"""Every file source decodes legacy encodings, BOM files and UTF-16 to the exact text."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Rejection
from finetune_web.sources import CsvSource, JsonlSource, JsonSource

Write = Callable[[str, str | bytes], Path]

JAPANESE = [
    {"title": "ワイヤレスイヤホン 5.3", "price": "３，９８０円", "review": "音質が良いです。"},
    {"title": "電子ノギス 150mm", "price": "２，４８０円", "review": "精度が高く、便利です。"},
    {"title": "東京の地図", "price": "９８０円", "review": "旅行に便利でした。"},
]
RUSSIAN = [
    {"title": "Беспроводные наушники", "price": "2 990 руб.", "review": "Отличный звук!"},
    {"title": "Штангенциркуль", "price": "1 490 руб.", "review": "Точный и удобный."},
    {"title": "Карта Москвы", "price": "350 руб.", "review": "Пригодилась в поездке."},
]
FRENCH = [
    {"title": "Pied à coulisse numérique", "price": "24,90 €", "review": "Très précis."},
    {"title": "Écouteurs sans fil", "price": "39,00 €", "review": "Qualité sonore excellente."},
    {"title": "Carte de la Côte d'Azur", "price": "7,50 €", "review": "Pratique en été."},
]

SAMPLES = {"shift_jis": JAPANESE, "cp1251": RUSSIAN, "cp1252": FRENCH}
ENCODINGS = sorted(SAMPLES)


def _jsonl(records: list[dict[str, str]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _csv(records: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def _data(items: list[Document | Rejection]) -> list[object]:
    assert all(isinstance(item, Document) for item in items), items
    return [item.data for item in items if isinstance(item, Document)]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_jsonl_in_legacy_encoding_is_detected(write: Write, encoding: str) -> None:
    """A JSONL file in Shift-JIS, cp1251 or cp1252 is detected and decoded exactly."""
    records = SAMPLES[encoding]
    path = write("data.jsonl", _jsonl(records).encode(encoding))
    assert _data(list(JsonlSource(path).read())) == records


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_csv_in_legacy_encoding_is_detected(write: Write, encoding: str) -> None:
    """A CSV file in Shift-JIS, cp1251 or cp1252 is detected and decoded exactly."""
    records = SAMPLES[encoding]
    path = write("data.csv", _csv(records).encode(encoding))
    assert _data(list(CsvSource(path).read())) == records


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_json_array_in_legacy_encoding_is_detected(write: Write, encoding: str) -> None:
    """A JSON array in Shift-JIS, cp1251 or cp1252 is detected and decoded exactly."""
    records = SAMPLES[encoding]
    text = json.dumps(records, ensure_ascii=False, indent=2)
    path = write("data.json", text.encode(encoding))
    assert _data(list(JsonSource(path).read())) == records


def test_explicit_encoding_overrides_detection(write: Write) -> None:
    """encoding= is used as given: cp1251 bytes read as cp1251 even in a one-line file.

    One non-UTF-8 line alone is too little to detect with (it reads as a
    corrupt UTF-8 line), which is what the explicit option is for.
    """
    record = RUSSIAN[0]
    path = write("one.jsonl", _jsonl([record]).encode("cp1251"))
    (guessed,) = list(JsonlSource(path).read())
    assert isinstance(guessed, Rejection)
    assert guessed.reason == "invalid_encoding"
    assert "pass encoding=" in guessed.message
    assert _data(list(JsonlSource(path, encoding="cp1251").read())) == [record]


BOMS = [
    pytest.param(codecs.BOM_UTF8, "utf-8", id="utf-8-bom"),
    pytest.param(codecs.BOM_UTF16_LE, "utf-16-le", id="utf-16-le-bom"),
    pytest.param(codecs.BOM_UTF16_BE, "utf-16-be", id="utf-16-be-bom"),
]


@pytest.mark.parametrize(("bom", "codec"), BOMS)
def test_bom_files_in_every_source(write: Write, bom: bytes, codec: str) -> None:
    """UTF-8 and UTF-16 files with a byte-order mark read the same in all three sources."""
    records = JAPANESE + RUSSIAN
    jsonl = write("bom.jsonl", bom + _jsonl(records).replace("\n", "\r\n").encode(codec))
    table = write("bom.csv", bom + _csv(records).encode(codec))
    array = write("bom.json", bom + json.dumps(records, ensure_ascii=False, indent=1).encode(codec))
    assert _data(list(JsonlSource(jsonl).read())) == records
    assert _data(list(CsvSource(table).read())) == records
    items = list(JsonSource(array).read())
    assert _data(items) == records
    assert [item.location.line for item in items if item.location] == list(range(2, 32, 5))


def test_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    """An encoding name Python does not know fails when the source is built."""
    with pytest.raises(ConfigError, match="not an encoding Python knows"):
        JsonlSource(tmp_path / "x.jsonl", encoding="shift-jjs")
