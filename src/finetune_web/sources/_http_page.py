"""From a fetched response to a page document: content type, size, charset, checks.

Shared by the HTTP source (``Content-Type`` known before the body is read)
and, for the decoding part, by the local HTML files source.
"""

from __future__ import annotations

import attrs
import httpx

from finetune_web.errors import DecodeError
from finetune_web.sources._html_decode import DecodedHtml, declared_charset, decode_html
from finetune_web.sources._http_errors import FetchFailure

__all__ = ["DEFAULT_CONTENT_TYPES", "Reply", "check_content_type", "decode_page", "media_type"]

#: Content types fetched by default.
DEFAULT_CONTENT_TYPES = ("text/html", "application/xhtml+xml")


@attrs.frozen(kw_only=True)
class Reply:
    """One HTTP response, read in full (or answered from the cache).

    Attributes:
        url: the URL requested.
        status: the status (the cached one for a 304).
        content_type: the ``Content-Type`` header, as sent.
        etag: the ``ETag`` header.
        last_modified: the ``Last-Modified`` header.
        location: the ``Location`` header of a redirect.
        body: the body (empty for a redirect).
    """

    url: httpx.URL
    status: int
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None
    body: bytes = attrs.field(default=b"", repr=False)


def media_type(content_type: str | None) -> str:
    """Return the media type of a ``Content-Type`` value, lower case, without parameters."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _accepted(mime: str, accepted: tuple[str, ...]) -> bool:
    for entry in accepted:
        if entry.endswith("/*") and mime.startswith(entry[:-1]):
            return True
        if mime == entry:
            return True
    return False


def check_content_type(
    content_type: str | None, accepted: tuple[str, ...], status: int | None
) -> None:
    """Refuse a response whose ``Content-Type`` is not one of ``accepted``.

    A missing header passes here; the body is sniffed later.

    Raises:
        FetchFailure: ``not_html``.
    """
    mime = media_type(content_type)
    if mime and not _accepted(mime, accepted):
        raise FetchFailure(
            "not_html",
            f"the server sent {mime!r}, not a page (accepted content types: "
            f"{', '.join(accepted)}; pass content_types=... to accept more)",
            status=status,
            details={"content_type": mime},
        )


def decode_page(
    body: bytes, *, content_type: str | None, status: int | None, encoding: str | None = None
) -> tuple[DecodedHtml, str]:
    """Decode a page and check that it is one.

    Args:
        body: the bytes.
        content_type: the ``Content-Type`` header (``None`` for a file, or when not sent).
        status: the HTTP status, for the failure's details.
        encoding: a codec to use whatever the page declares.

    Returns:
        The decoded page and its media type (``text/html`` when sniffed).

    Raises:
        FetchFailure: ``empty_body``, ``binary_content`` or ``not_html`` (no
            content type, and the text does not start with ``<``).
    """
    if not body or body.isspace():
        raise FetchFailure(
            "empty_body", "the page is empty (no bytes, or only white space)", status=status
        )
    try:
        decoded = decode_html(
            body, header_charset=declared_charset(content_type), encoding=encoding
        )
    except DecodeError as exc:
        raise FetchFailure(
            "binary_content", f"{exc.message}; it is not an HTML page", status=status
        ) from None
    mime = media_type(content_type)
    if not decoded.text or decoded.text.isspace():
        raise FetchFailure("empty_body", "the page holds only white space", status=status)
    if not mime:
        if not decoded.text.lstrip("\ufeff \t\r\n").startswith("<"):
            raise FetchFailure(
                "not_html",
                "no content type was sent and the text does not look like HTML",
                status=status,
                details={"content_type": ""},
            )
        mime = "text/html"
    return decoded, mime
