"""Real Bright Data Web Scraper API output (Amazon), read by every file source."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from finetune_web.records import Document, Rejection
from finetune_web.sources import CsvSource, JsonlSource, JsonSource

KEYWORD_FILE = "amazon_global_dataset_by_keyword.json"


def _split(items: list[Document | Rejection]) -> tuple[list[Document], list[Rejection]]:
    documents = [item for item in items if isinstance(item, Document)]
    rejections = [item for item in items if isinstance(item, Rejection)]
    assert len(documents) + len(rejections) == len(items)
    return documents, rejections


def _failed(record: Any) -> bool:
    return isinstance(record, dict) and record.get("error_code") not in (None, "")


def test_keyword_dataset_is_read_fully(brightdata: Path) -> None:
    """All 367 products are read: documents equal json.load's items, failed ones rejected.

    The number of records carrying error_code is counted independently with
    json.load; each of them must come out as a scrape_error rejection, every
    other record as a document with the same data, located at the line where
    its object starts (the file is indented with 4 spaces and CRLF).
    """
    path = brightdata / KEYWORD_FILE
    expected = json.loads(path.read_text(encoding="utf-8"))
    failed = [record for record in expected if _failed(record)]
    items = list(JsonSource(path).read())
    assert len(items) == len(expected) == 367
    documents, rejections = _split(items)
    assert len(rejections) == len(failed)
    assert all(r.reason == "scrape_error" for r in rejections)
    assert [d.data for d in documents] == [r for r in expected if not _failed(r)]
    starts = [n for n, line in enumerate(path.read_bytes().split(b"\n"), 1) if line == b"    {\r"]
    assert [item.location.line for item in items if item.location] == starts
    assert documents[0].id == f"{KEYWORD_FILE}#0"
    assert JsonSource(path).layout().kind == "array"


def test_every_brightdata_file_reads_like_json_load(brightdata: Path) -> None:
    """Each Amazon output file gives exactly json.load's records, in order."""
    files = sorted(brightdata.glob("*.json"))
    assert len(files) >= 10
    for path in files:
        expected = json.loads(path.read_text(encoding="utf-8"))
        items = list(JsonSource(path).read())
        documents, _ = _split(items)
        assert len(items) == len(expected), path.name
        assert [d.data for d in documents] == [r for r in expected if not _failed(r)], path.name


def test_failed_scrapes_in_a_real_snapshot_are_rejected(brightdata: Path, tmp_path: Path) -> None:
    """Failed records added to a real snapshot become scrape_error rejections at their place.

    The real files hold no failures, so two in Bright Data's documented shape
    (error_code, error, input) are inserted; nothing else changes.
    """
    records = json.loads((brightdata / "amazon_products_data.json").read_text(encoding="utf-8"))
    failures = [
        {"input": {"url": "https://www.amazon.com/dp/B000000000"}, "error": "Page not found",
         "error_code": "dead_page"},
        {"input": {"url": "https://www.amazon.com/dp/B000000001"}, "error": "Request blocked",
         "error_code": "blocked"},
    ]  # fmt: skip
    snapshot = [records[0], failures[0], *records[1:], failures[1]]
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot, indent=2, ensure_ascii=False), encoding="utf-8")
    items = list(JsonSource(path).read())
    documents, rejections = _split(items)
    assert [d.data for d in documents] == records
    last = len(records) + 1
    assert [r.record_id for r in rejections] == ["snapshot.json#1", f"snapshot.json#{last}"]
    assert [r.details for r in rejections] == [
        {"error_code": f["error_code"], "error": f["error"], "input": f["input"]} for f in failures
    ]
    assert "dead_page" in rejections[0].message
    assert "B000000000" in rejections[0].message


def test_snapshot_as_ndjson_reads_the_same(brightdata: Path, tmp_path: Path) -> None:
    """The keyword dataset as NDJSON (format=ndjson) reads the same through both sources."""
    expected = json.loads((brightdata / KEYWORD_FILE).read_text(encoding="utf-8"))
    path = tmp_path / "snapshot.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in expected), "utf-8")
    via_json = list(JsonSource(path).read())
    via_jsonl = list(JsonlSource(path).read())
    assert [d.data for d in via_json if isinstance(d, Document)] == expected
    assert via_json == via_jsonl
    assert [item.location.line for item in via_jsonl if item.location] == list(range(1, 368))


def test_snapshot_as_csv_keeps_multi_line_fields(brightdata: Path, tmp_path: Path) -> None:
    """Real product text written as CSV reads back, multi-line quoted cells included.

    Features are joined with newlines (rows then span several lines, and
    descriptions hold quotes and commas); categories are a '|' list field.
    """
    expected = json.loads((brightdata / KEYWORD_FILE).read_text(encoding="utf-8"))
    columns = ["asin", "title", "description", "features", "categories"]
    rows = [
        {
            "asin": str(record.get("asin") or ""),
            "title": str(record.get("title") or ""),
            "description": str(record.get("description") or ""),
            "features": "\n".join(record.get("features") or []),
            "categories": "|".join(record.get("categories") or []),
        }
        for record in expected
    ]
    path = tmp_path / "snapshot.csv"
    text_so_far = ""
    starts = []
    for row in [dict(zip(columns, columns, strict=True)), *rows]:
        starts.append(text_so_far.count("\n") + 1)
        out = io.StringIO()
        csv.DictWriter(out, fieldnames=columns, lineterminator="\n").writerow(row)
        text_so_far += out.getvalue()
    path.write_text(text_so_far, encoding="utf-8")
    items = list(CsvSource(path, list_fields=["categories"], list_separator="|").read())
    documents, rejections = _split(items)
    assert rejections == []
    assert [d.data for d in documents] == [
        {**row, "categories": row["categories"].split("|") if row["categories"] else []}
        for row in rows
    ]
    assert [d.location.line for d in documents if d.location] == starts[1:]
    assert sum("\n" in row["features"] for row in rows) > 100
