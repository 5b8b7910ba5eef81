"""Cheap checks on a page before and after main-text extraction.

They tell apart what extraction cannot work on (a blank page, bytes of an
image or a PDF, JSON or plain text) from HTML with no main text, and read the
language a page declares for itself.
"""

from __future__ import annotations

import datetime
import json
import re

__all__ = ["binary_kind", "declared_language", "has_visible_text", "iso_date", "looks_like_html"]

#: Signatures of common binary files, as they read once decoded as Latin-1 or UTF-8.
_MAGIC: tuple[tuple[str, str], ...] = (
    ("%PDF-", "a PDF file"),
    ("\x89PNG", "a PNG image"),
    ("\ufffdPNG", "a PNG image"),
    ("GIF87a", "a GIF image"),
    ("GIF89a", "a GIF image"),
    ("\xff\xd8\xff", "a JPEG image"),
    ("PK\x03\x04", "a ZIP archive (or an Office document)"),
    ("\x1f\x8b", "gzip-compressed data"),
    ("\x1f\ufffd", "gzip-compressed data"),
    ("\x7fELF", "an executable"),
    ("RIFF", "a RIFF file (WebP, WAV, AVI)"),
    ("OggS", "an Ogg file"),
    ("ID3", "an MP3 file"),
)
_SAMPLE = 4096
#: Share of control or undecodable characters above which a text is taken for bytes.
_MAX_ODD_SHARE = 0.05
_ODD = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")

_TAG = re.compile(r"<(?:!doctype\b|!--|[a-z][a-z0-9-]*[\s/>])", re.IGNORECASE)
_INVISIBLE = re.compile(
    r"<(script|style|noscript|template|head)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL
)
_ANY_TAG = re.compile(r"<[^>]*>")
_ENTITY_SPACE = re.compile(r"&(?:nbsp|#160|#xa0|ensp|emsp|thinsp|zwnj|zwj);", re.IGNORECASE)

_HEAD = 65536
_LANG_CODE = r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*"
_HTML_LANG = re.compile(
    rf"<html\b[^>]*?\s(?:xml:)?lang\s*=\s*[\"']?\s*{_LANG_CODE}", re.IGNORECASE | re.DOTALL
)
_META_LANG = re.compile(
    rf"<meta\b[^>]*?http-equiv\s*=\s*[\"']?content-language[\"']?[^>]*?"
    rf"content\s*=\s*[\"']?\s*{_LANG_CODE}",
    re.IGNORECASE | re.DOTALL,
)


def binary_kind(text: str) -> str | None:
    """Return what ``text`` looks like when it holds bytes rather than a page, else ``None``.

    A known file signature at the start, a NUL character, or more than 5% of
    control or undecodable (U+FFFD) characters in the first 4,096 make a text
    binary.
    """
    start = text.lstrip("\ufeff \t\r\n")[:16]
    for magic, kind in _MAGIC:
        if start.startswith(magic):
            return kind
    sample = text[:_SAMPLE]
    if "\x00" in sample:
        return "binary data (it holds NUL characters)"
    odd = len(_ODD.findall(sample))
    if sample and odd / len(sample) > _MAX_ODD_SHARE:
        return f"binary data ({odd} of its first {len(sample)} characters are control characters)"
    return None


def looks_like_html(text: str) -> str | None:
    """Return ``None`` for HTML, else why ``text`` is not HTML (it is JSON, or has no tag)."""
    stripped = text.strip()
    if stripped[:1] in "{[" and stripped[-1:] in "}]":
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return "it is JSON, not HTML"
    if _TAG.search(text) is None:
        return "it has no HTML tag (plain text?)"
    return None


def has_visible_text(html: str) -> bool:
    """Return whether an HTML page shows any text outside scripts, styles and its head."""
    text = _ANY_TAG.sub(" ", _INVISIBLE.sub(" ", html))
    return bool(_ENTITY_SPACE.sub(" ", text).strip())


def declared_language(html: str) -> str | None:
    """Return the primary language subtag a page declares, lower-cased (``"en"``), or ``None``.

    Read from ``<html lang>`` (or ``xml:lang``), else from ``<meta
    http-equiv="content-language">``, in the first 64 KiB of the page.
    """
    head = html[:_HEAD]
    for pattern in (_HTML_LANG, _META_LANG):
        match = pattern.search(head)
        if match is not None:
            return match.group(1).lower()
    return None


def iso_date(value: object) -> str | None:
    """Return ``value`` when it is an ISO date (``YYYY-MM-DD``, optionally with a time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return value
