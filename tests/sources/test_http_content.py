"""HttpSource on what servers send: content types, sizes, charsets, empty and binary bodies.

Every answer comes from a respx route for the page's URL; the sources hold no transport.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from finetune_web.records import Document, Rejection
from finetune_web.sources.http import HttpSource

URL = "https://example.com/page"
FRENCH = (
    "<html><head><title>Été</title></head><body><p>Ça coûte très cher, déjà à l'été : "
    "le café crème, la pâtisserie française et les œufs brouillés. Größe über alles, "
    "naïve façade, señor año.</p></body></html>"
)
JAPANESE = (
    "<html><head><title>日本語のページ</title></head><body><p>これは日本語で書かれた記事です。"
    "東京の天気は晴れ、気温は二十五度でした。明日は雨が降るでしょう。"
    "今日のニュースをお伝えします。経済、政治、文化、スポーツの話題です。</p></body></html>"
)


def public(host: str, port: int) -> list[str]:
    """Resolve every name to a public address (no DNS in tests)."""
    return ["93.184.215.14"]


def serve(
    body: bytes, content_type: str | None = None, **headers: str
) -> Callable[[httpx.Request], httpx.Response]:
    """A respx side effect answering every request with these bytes and headers."""
    if content_type is not None:
        headers["content-type"] = content_type

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=body)

    return answer


def fetch(answer: Callable[[httpx.Request], httpx.Response], **options: Any) -> Any:
    """Fetch URL once, respx answering with ``answer``; return the document or rejection."""
    options.setdefault("min_delay", 0)
    options.setdefault("robots", False)
    with respx.mock(assert_all_called=False) as router:
        route = router.get(URL).mock(side_effect=answer)
        source = HttpSource(urls=[URL], resolver=public, **options)
        (item,) = source.read()
    assert route.call_count == 1
    return item


def test_document_shape() -> None:
    """A page becomes a document: id = URL, text = page, metadata as documented."""
    body = b"<html><body><p>Hi</p></body></html>"
    item = fetch(
        serve(
            body,
            **{
                "content-type": "text/html; charset=UTF-8",
                "etag": '"abc"',
                "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
        )
    )
    assert isinstance(item, Document)
    assert item.id == URL and item.text == body.decode() and item.data is None
    assert item.metadata == {
        "url": URL,
        "final_url": URL,
        "status": 200,
        "content_type": "text/html",
        "charset": "utf-8",
        "etag": '"abc"',
        "last_modified": "Wed, 21 Oct 2015 07:28:00 GMT",
    }
    assert item.location is not None and item.location.origin == URL
    assert item.location.index == 0


@pytest.mark.parametrize("mime", ["application/pdf", "image/png", "application/json"])
def test_wrong_content_type_is_not_html(mime: str) -> None:
    """A non-HTML content type is rejected as not_html before the body is read."""
    item = fetch(serve(b"{}", mime))
    assert isinstance(item, Rejection) and item.reason == "not_html"
    assert item.details["content_type"] == mime and item.details["status"] == 200


def test_content_types_option_accepts_more() -> None:
    """content_types=("text/*",) lets plain text through."""
    item = fetch(serve(b"just text", "text/plain"), content_types=("text/*",))
    assert isinstance(item, Document) and item.metadata["content_type"] == "text/plain"


def test_missing_content_type_is_sniffed() -> None:
    """Without a content type, markup is a page and anything else is not_html."""
    page = fetch(serve(b"  <!doctype html><p>x</p>"))
    assert isinstance(page, Document) and page.metadata["content_type"] == "text/html"
    other = fetch(serve(b"plain words"))
    assert isinstance(other, Rejection) and other.reason == "not_html"


def test_body_over_limit_by_content_length() -> None:
    """A Content-Length over max_bytes is too_large without reading the body."""
    item = fetch(serve(b"<p>" + b"x" * 5000, "text/html"), max_bytes=1000)
    assert isinstance(item, Rejection) and item.reason == "too_large"
    assert item.details["max_bytes"] == 1000 and item.details["status"] == 200


class Endless(httpx.SyncByteStream):
    """A body of many chunks and no Content-Length; counts the chunks taken."""

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(10_000):
            self.taken += 1
            yield b"<p>" + b"y" * 1021


def test_streamed_body_stops_past_limit() -> None:
    """A body without Content-Length is read only until it passes max_bytes."""
    stream = Endless()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, stream=stream)

    item = fetch(answer, max_bytes=4096)
    assert isinstance(item, Rejection) and item.reason == "too_large"
    assert stream.taken <= 6


def test_broken_html_passes_through() -> None:
    """Broken markup is still a page: extraction judges it later."""
    body = b"<html><body><p>unclosed <div><b>bold <i>and <table><tr>"
    item = fetch(serve(body, "text/html"))
    assert isinstance(item, Document) and item.text == body.decode()


@pytest.mark.parametrize("body", [b"", b"  \r\n\t "], ids=["empty", "white_space"])
def test_empty_page_is_rejected(body: bytes) -> None:
    """An empty 200 body is an empty_body rejection with its status."""
    item = fetch(serve(body, "text/html"))
    assert isinstance(item, Rejection) and item.reason == "empty_body"
    assert item.details["status"] == 200


@pytest.mark.parametrize(
    "body",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        b"<html>\x00\x00\x00\x01\x02 binary \x00 junk</html>",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
        bytes(range(1, 32)) * 40,
    ],
    ids=["png", "nul_bytes", "gzip", "control_characters"],
)
def test_binary_served_as_html(body: bytes) -> None:
    """Binary bytes labelled text/html are binary_content rejections."""
    item = fetch(serve(body, "text/html"))
    assert isinstance(item, Rejection) and item.reason == "binary_content"


def test_wrong_declared_charset_cp1252() -> None:
    """The header says UTF-8 but the body is cp1252: detection decodes it right."""
    item = fetch(serve(FRENCH.encode("cp1252"), "text/html; charset=utf-8"))
    assert isinstance(item, Document)
    assert item.text == FRENCH and item.metadata["charset"] == "cp1252"


def test_wrong_declared_charset_shift_jis() -> None:
    """The header says UTF-8 but the body is Shift-JIS: detection decodes it right."""
    body = JAPANESE.encode("shift_jis")
    item = fetch(serve(body, "text/html; charset=utf-8"))
    assert isinstance(item, Document)
    assert item.text == JAPANESE and item.metadata["charset"] in {"cp932", "shift_jis"}


def test_header_charset_is_used() -> None:
    """A right header charset is used (iso-8859-1 read as windows-1252, as browsers do)."""
    text = "<p>Café – “quotes”</p>"
    item = fetch(serve(text.encode("cp1252"), "text/html; charset=ISO-8859-1"))
    assert isinstance(item, Document) and item.text == text
    assert item.metadata["charset"] == "cp1252"


def test_meta_charset_is_used() -> None:
    """<meta charset> names the encoding when the header does not."""
    page = '<html><head><meta charset="windows-1251"></head><body>Привет, мир</body></html>'
    item = fetch(serve(page.encode("cp1251"), "text/html"))
    assert isinstance(item, Document) and item.text == page
    assert item.metadata["charset"] == "cp1251"


def test_meta_http_equiv_charset_is_used() -> None:
    """<meta http-equiv="Content-Type" content="...; charset=..."> works too."""
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
        "</head><body>Привет</body></html>"
    )
    item = fetch(serve(page.encode("koi8-r"), "text/html"))
    assert isinstance(item, Document) and item.text == page
    assert item.metadata["charset"] == "koi8-r"


def test_bom_wins_over_header() -> None:
    """A UTF-16 byte-order mark wins over a header naming another charset."""
    page = "<html><body>Grüße 日本</body></html>"
    body = codecs.BOM_UTF16_LE + page.encode("utf-16-le")
    item = fetch(serve(body, "text/html; charset=iso-8859-1"))
    assert isinstance(item, Document) and item.text == page
    assert item.metadata["charset"] == "utf-16"


def test_utf8_page_with_legacy_label_is_utf8() -> None:
    """A valid UTF-8 page labelled latin-1 is read as UTF-8 (no mojibake)."""
    page = "<p>Ça coûte très cher – naïve</p>"
    item = fetch(serve(page.encode(), "text/html; charset=latin-1"))
    assert isinstance(item, Document) and item.text == page


def test_utf8_page_with_one_bad_byte_stays_utf8() -> None:
    """One corrupt byte in a UTF-8 page becomes U+FFFD; the rest stays right."""
    good = "<p>" + "Ça coûte très cher, déjà à l'été. " * 5 + "</p>"
    body = good.encode() + b"\xff"
    item = fetch(serve(body, "text/html"))
    assert isinstance(item, Document)
    assert item.text == good + "\ufffd" and item.metadata["charset"] == "utf-8"


def test_encoding_option_forces_a_codec() -> None:
    """encoding=... decodes with that codec whatever the page says."""
    page = "<p>Ça</p>"
    item = fetch(
        serve(page.encode("cp1252"), "text/html; charset=utf-8"),
        encoding="latin-1",
    )
    assert isinstance(item, Document) and item.text == page
