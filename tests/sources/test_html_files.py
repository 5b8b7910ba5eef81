"""HtmlFileSource: saved pages from folders and files, decoded like fetched ones."""

from __future__ import annotations

import codecs
import gzip
import pickle
from pathlib import Path

import pytest

from finetune_web.errors import ConfigError, SourceError
from finetune_web.records import Document, Rejection
from finetune_web.sources.html_files import HtmlFileSource
from finetune_web.testing import check_source

FRENCH = (
    "<html><head><title>Été</title></head><body><p>Ça coûte très cher, déjà à l'été : "
    "le café crème, la pâtisserie française et les œufs brouillés.</p></body></html>"
)


def site(root: Path) -> Path:
    """Write a small folder of pages in several encodings; return it."""
    (root / "news").mkdir(parents=True)
    (root / "bom.html").write_bytes(codecs.BOM_UTF8 + "<p>Grüße</p>".encode())
    (root / "news" / "meta.htm").write_bytes(
        '<html><head><meta charset="shift_jis"></head><body>日本語のページ</body></html>'.encode(
            "shift_jis"
        )
    )
    (root / "news" / "legacy.html").write_bytes(FRENCH.encode("cp1252"))
    (root / "news" / "zipped.html.gz").write_bytes(gzip.compress(b"<p>zipped page</p>"))
    (root / "empty.html").write_bytes(b"")
    (root / "notes.txt").write_text("not a page")
    return root


def by_id(items: list[Document | Rejection]) -> dict[str, Document | Rejection]:
    """Index items by their id."""
    return {i.id if isinstance(i, Document) else str(i.record_id): i for i in items}


def test_folder_is_read_in_order_with_relative_ids(tmp_path: Path) -> None:
    """Files are read in sorted order, sub-folders included; ids are relative posix paths;
    other endings are skipped."""
    items = list(HtmlFileSource(site(tmp_path)).read())
    assert list(by_id(items)) == [
        "bom.html",
        "empty.html",
        "news/legacy.html",
        "news/meta.htm",
        "news/zipped.html.gz",
    ]


def test_encodings_bom_meta_detection_and_gzip(tmp_path: Path) -> None:
    """A UTF-8 BOM, a <meta charset>, an undeclared cp1252 page and a gzipped page decode."""
    items = by_id(list(HtmlFileSource(site(tmp_path)).read()))
    bom, meta, legacy, zipped = (
        items[k] for k in ("bom.html", "news/meta.htm", "news/legacy.html", "news/zipped.html.gz")
    )
    assert isinstance(bom, Document) and bom.text == "<p>Grüße</p>"
    assert bom.metadata["charset"] == "utf-8"
    assert isinstance(meta, Document) and "日本語のページ" in (meta.text or "")
    assert meta.metadata["charset"] == "cp932"
    assert isinstance(legacy, Document) and legacy.text == FRENCH
    assert legacy.metadata["charset"] == "cp1252"
    assert isinstance(zipped, Document) and zipped.text == "<p>zipped page</p>"
    path = tmp_path / "news" / "zipped.html.gz"
    assert zipped.metadata == {
        "url": path.absolute().as_uri(),
        "final_url": path.absolute().as_uri(),
        "status": 200,
        "content_type": "text/html",
        "charset": "utf-8",
    }
    assert zipped.location is not None and zipped.location.origin == str(path)


def test_empty_file_is_a_rejection(tmp_path: Path) -> None:
    """An empty file is an empty_body rejection naming the file; reading goes on."""
    empty = by_id(list(HtmlFileSource(site(tmp_path)).read()))["empty.html"]
    assert isinstance(empty, Rejection) and empty.reason == "empty_body"
    assert str(tmp_path / "empty.html") in empty.message
    assert empty.details["path"] == str(tmp_path / "empty.html")


def test_bad_files_are_rejections(tmp_path: Path) -> None:
    """Broken gzip, binary content and oversized files are rejections with their reasons."""
    (tmp_path / "bad.html.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data")
    (tmp_path / "image.html").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "big.html").write_bytes(b"<p>" + b"x" * 2000)
    items = by_id(list(HtmlFileSource(tmp_path, max_bytes=1000).read()))
    assert {k: v.reason for k, v in items.items() if isinstance(v, Rejection)} == {
        "bad.html.gz": "invalid_gzip",
        "big.html": "too_large",
        "image.html": "binary_content",
    }


def test_missing_folder_raises(tmp_path: Path) -> None:
    """A path that does not exist is a SourceError when read() is called."""
    with pytest.raises(SourceError, match="no such file or folder"):
        HtmlFileSource(tmp_path / "missing").read()


def test_folder_without_pages_raises(tmp_path: Path) -> None:
    """A folder holding no HTML file is a SourceError."""
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(SourceError, match="no HTML files"):
        list(HtmlFileSource(tmp_path).read())


def test_list_of_files_ids_and_duplicates(tmp_path: Path) -> None:
    """Files named directly are read whatever their ending; ids are relative to their common
    folder (or root=...); a file named twice is a duplicate_file rejection."""
    site(tmp_path)
    a, b = tmp_path / "news" / "legacy.html", tmp_path / "notes.txt"
    items = list(HtmlFileSource([a, b, a]).read())
    assert [i.id if isinstance(i, Document) else i.record_id for i in items] == [
        "news/legacy.html",
        "notes.txt",
        "news/legacy.html",
    ]
    assert isinstance(items[1], Document)
    assert isinstance(items[2], Rejection) and items[2].reason == "duplicate_file"
    (only,) = HtmlFileSource([a], root=tmp_path / "news").read()
    assert isinstance(only, Document) and only.id == "legacy.html"


def test_options(tmp_path: Path) -> None:
    """recursive=False skips sub-folders; encoding forces a codec; bad options are errors."""
    site(tmp_path)
    flat = list(HtmlFileSource(tmp_path, recursive=False).read())
    assert [i.id if isinstance(i, Document) else i.record_id for i in flat] == [
        "bom.html",
        "empty.html",
    ]
    (forced,) = HtmlFileSource(tmp_path / "news" / "legacy.html", encoding="cp1252").read()
    assert isinstance(forced, Document) and forced.metadata["charset"] == "cp1252"
    with pytest.raises(ConfigError):
        HtmlFileSource(tmp_path, encoding="no-such-codec")
    with pytest.raises(ConfigError):
        HtmlFileSource([])


def test_contract(tmp_path: Path) -> None:
    """check_source passes, and the source pickles."""
    source = HtmlFileSource(site(tmp_path))
    assert pickle.loads(pickle.dumps(source)) == source
    assert len(check_source(source)) == 5
    assert len(source.input_files()) == 5


def test_real_benchmark_pages(realdata: Path) -> None:
    """The 181 gzipped pages of the article extraction benchmark all decode as documents."""
    folder = realdata / "article_extraction_benchmark" / "html"
    if not folder.is_dir():
        pytest.skip("article_extraction_benchmark/html is absent from ../shared/realdata")
    items = list(HtmlFileSource(folder).read())
    documents = [i for i in items if isinstance(i, Document)]
    assert len(items) == len(documents) == 181
    assert all(d.id.endswith(".html.gz") and "/" not in d.id for d in documents)
