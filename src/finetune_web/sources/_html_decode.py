"""HTML bytes to text: the charset a page declares, checked against its bytes.

The order, for one page:

1. a byte-order mark (UTF-8, UTF-16, UTF-32) wins;
2. a UTF-16/32 charset named by the HTTP header;
3. bytes that are valid UTF-8 are read as UTF-8, whatever the page declares
   (a legacy label on a UTF-8 page is a common mistake; legacy text with
   accents is almost never valid UTF-8 by chance);
4. the charset of the HTTP header, then the one of ``<meta charset>`` or
   ``<meta http-equiv="Content-Type">`` in the first bytes, each used only when
   the bytes decode with it;
5. detection: a page that is UTF-8 but for a few corrupt bytes stays UTF-8
   (the bad bytes become U+FFFD); otherwise charset-normalizer names the
   encoding.

Labels are read the way browsers read them (``iso-8859-1`` and ``ascii`` mean
windows-1252, ``shift_jis`` means cp932, ``gb2312`` means gb18030...).  Bytes
that no encoding fits, or text holding NUL bytes or many control characters,
are binary content, not a page.
"""

from __future__ import annotations

import codecs
import re

import attrs

from finetune_web._io import _pick_encoding
from finetune_web.errors import DecodeError

__all__ = ["DecodedHtml", "canonical_charset", "declared_charset", "decode_html"]

#: Bytes scanned for a ``<meta>`` charset (browsers scan 1,024; pages often put it later).
META_SCAN_BYTES = 8192
_DETECT_SAMPLE_BYTES = 1 << 20
_CONTROL_SAMPLE_CHARS = 1 << 16

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16"),
)
_MAGIC: tuple[bytes, ...] = (
    b"%PDF-",
    b"\x89PNG",
    b"GIF87a",
    b"GIF89a",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\xfd7zXZ",
    b"RIFF",
    b"OggS",
    b"\x7fELF",
)
# Labels as the WHATWG Encoding Standard reads them, where Python's codec differs.
_ALIASES = {
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "windows-1252": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "unicode-1-1-utf-8": "utf-8",
    "utf8": "utf-8",
}
_META = re.compile(
    rb"<meta\b[^>]*?\bcharset\s*=\s*[\"']?\s*([A-Za-z0-9][-A-Za-z0-9_.:]*)", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([^\"';\s]+)", re.IGNORECASE)
_CONTROL = re.compile("[\x01-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_CONTROL_BYTES = bytes([*range(0x01, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


@attrs.frozen(kw_only=True)
class DecodedHtml:
    """A page as text.

    Attributes:
        text: the decoded page.
        charset: the codec used, as Python names it (``utf-8``, ``cp1252``, ``cp932``...).
        how: where the charset came from: ``bom``, ``utf-8``, ``header``, ``meta``,
            ``detected`` or ``given``.
    """

    text: str
    charset: str
    how: str


def canonical_charset(label: str | None) -> str | None:
    """Return the Python codec for a charset label, read as browsers read it.

    Args:
        label: a label such as ``"UTF-8"``, ``"iso-8859-1"`` or ``"Shift_JIS"``.

    Returns:
        The codec's name (``"utf-8"``, ``"cp1252"``, ``"cp932"``...), or ``None``
        when the label names no encoding Python knows.
    """
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def declared_charset(content_type: str | None) -> str | None:
    """Return the ``charset`` parameter of a ``Content-Type`` header value, if any."""
    if not content_type:
        return None
    found = _HEADER_CHARSET.search(content_type)
    return found.group(1) if found else None


def _meta_charset(body: bytes) -> str | None:
    found = _META.search(body[:META_SCAN_BYTES])
    if found is None:
        return None
    name = canonical_charset(found.group(1).decode("ascii"))
    # A page cannot name a UTF-16/32 charset in ASCII-compatible bytes: browsers read UTF-8.
    if name is not None and name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return name


def _try(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _mostly_utf8(body: bytes) -> str | None:
    """Return the text when the bytes are UTF-8 but for a few corrupt sequences."""
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if good >= 10 * bad else None


def _detect(body: bytes) -> tuple[str, str] | None:
    text = _mostly_utf8(body)
    if text is not None:
        return text, "utf-8"
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(body[:_DETECT_SAMPLE_BYTES]))
    if not matches:
        return None
    tried: list[str] = []
    for name in (_pick_encoding(matches), *(str(m.encoding) for m in matches)):
        codec = canonical_charset(name)
        if codec is None or codec in tried:
            continue
        tried.append(codec)
        decoded = _try(body, codec)
        if decoded is not None:
            return decoded, codec
    return None


def _looks_binary(body: bytes, decoded: DecodedHtml) -> str | None:
    """Return why decoded bytes are binary content rather than a page, or ``None``."""
    if body.startswith(_MAGIC):
        return "the bytes start with the signature of a binary file format"
    if "\x00" in decoded.text:
        return "the text holds NUL bytes"
    if decoded.charset.startswith(("utf-16", "utf-32")):
        sample = decoded.text[:_CONTROL_SAMPLE_CHARS]
        size, controls = len(sample), len(_CONTROL.findall(sample))
    else:
        # ASCII-compatible encodings keep control characters as the same single bytes.
        head = body[:_CONTROL_SAMPLE_CHARS]
        size, controls = len(head), len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls >= 8 and controls > size // 100:
        return f"{controls} control characters in the first {size:,} bytes"
    return None


def _decode(body: bytes, header: str | None, forced: str | None) -> DecodedHtml | None:
    if forced is not None:
        text = _try(body, forced)
        return None if text is None else DecodedHtml(text=text, charset=forced, how="given")
    for bom, codec, label in _BOMS:
        if body.startswith(bom):
            text = _try(body, codec)
            if text is not None:
                return DecodedHtml(text=text, charset=label, how="bom")
    if header is not None and header.startswith(("utf-16", "utf-32")):
        text = _try(body, header)
        if text is not None:
            return DecodedHtml(text=text, charset=header, how="header")
    text = _try(body, "utf-8")
    if text is not None:
        return DecodedHtml(text=text, charset="utf-8", how="utf-8")
    declared: tuple[tuple[str | None, str], ...] = (
        (header, "header"),
        (_meta_charset(body), "meta"),
    )
    for name, how in declared:
        if name is not None:
            text = _try(body, name)
            if text is not None:
                return DecodedHtml(text=text, charset=name, how=how)
    found = _detect(body)
    return None if found is None else DecodedHtml(text=found[0], charset=found[1], how="detected")


def decode_html(
    body: bytes, *, header_charset: str | None = None, encoding: str | None = None
) -> DecodedHtml:
    """Decode an HTML page (see the module docstring for the order of the checks).

    Args:
        body: the page's bytes (after any ``Content-Encoding`` was undone).
        header_charset: the charset label of the HTTP ``Content-Type`` header.
        encoding: a codec to use whatever the page says (no detection).

    Returns:
        The text and the charset used.

    Raises:
        DecodeError: the bytes are binary content, or no encoding fits them
            (the message says which).
    """
    forced = canonical_charset(encoding) if encoding is not None else None
    if encoding is not None and forced is None:
        raise DecodeError(f"encoding={encoding!r} is not an encoding Python knows")
    decoded = _decode(body, canonical_charset(header_charset), forced)
    if decoded is None:
        what = f"the {forced} encoding" if forced else "any known encoding"
        raise DecodeError(f"binary content: the bytes do not decode in {what}")
    problem = _looks_binary(body, decoded)
    if problem is not None:
        raise DecodeError(f"binary content: {problem}")
    return decoded
