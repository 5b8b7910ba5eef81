"""Tests for finetune_web._io: encoding detection and line reading with per-line errors."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from finetune_web._io import TextLine, check_file, detect_encoding, iter_text_lines
from finetune_web.errors import DecodeError, SourceError

FRENCH = (
    "Le garçon a mangé une crème brûlée à l'hôtel.\n"
    "Où est la bibliothèque ? Très bien, merci.\n"
    "Ça coûte 12,50 € — c'est cher !\n"
)
GERMAN = "Grüße aus München!\nÜber 50 Äpfel für 3,50 €.\nDie Straße ist naß und glatt.\n"
FRENCH_QUOTES = "Œuvre complète, cœur — «naïveté».\nPrix: 5 € ™\n"
RUSSIAN = "Привет, как дела? Сегодня хорошая погода.\nМосква — столица России.\nЦена: 100 рублей.\n"
JAPANESE = (
    "商品名：ワイヤレスイヤホン\n"
    "価格：３，９８０円（税込）\n"
    "レビュー：音質が良くて満足しています。\n"
    "東京都の天気は晴れです。\n"
)
POLISH = (
    "Zażółć gęślą jaźń. Łódź jest dużym miastem w Polsce.\n"
    "Pchnąć w tę łódź jeża lub ośm skrzyń fig.\n"
)


def _write(tmp_path: Path, content: bytes, name: str = "sample.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (FRENCH, "cp1252"),
        (GERMAN, "cp1252"),
        (FRENCH_QUOTES, "cp1252"),
        (RUSSIAN, "cp1251"),
        (JAPANESE, "shift_jis"),
        (POLISH, "cp1250"),
    ],
)
def test_detects_legacy_encodings_and_decodes_the_text_exactly(
    tmp_path: Path, text: str, encoding: str
) -> None:
    """Short multi-line legacy files decode to the original text with the detected codec.

    The German and French samples fit cp1250, cp1252 and cp1257 equally well;
    the most common one, cp1252, must win so that characters such as Œ and ™
    (which differ between them) come out right.
    """
    path = _write(tmp_path, text.encode(encoding))
    detected = detect_encoding(path)
    assert path.read_bytes().decode(detected) == text


def test_western_tie_prefers_cp1252(tmp_path: Path) -> None:
    """A German sample that cp1250 also decodes is reported as cp1252, the common codec."""
    path = _write(tmp_path, GERMAN.encode("cp1252"))
    assert codecs.lookup(detect_encoding(path)).name == "cp1252"


def test_shift_jis_is_reported_as_a_shift_jis_family_codec(tmp_path: Path) -> None:
    """Japanese Shift-JIS text is detected as cp932 (Windows Shift-JIS) or shift_jis."""
    path = _write(tmp_path, JAPANESE.encode("shift_jis"))
    assert codecs.lookup(detect_encoding(path)).name in {"cp932", "shift_jis"}


@pytest.mark.parametrize(
    ("bom", "encoding", "expected"),
    [
        (codecs.BOM_UTF8, "utf-8", "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
    ],
)
def test_byte_order_mark_wins(tmp_path: Path, bom: bytes, encoding: str, expected: str) -> None:
    """A byte-order mark decides the codec, whatever the text looks like."""
    path = _write(tmp_path, bom + RUSSIAN.encode(encoding))
    assert detect_encoding(path) == expected


def test_ascii_and_utf8_are_utf8(tmp_path: Path) -> None:
    """Plain ASCII and UTF-8 text are read as UTF-8."""
    assert detect_encoding(_write(tmp_path, b"hello\nworld\n", "a.txt")) == "utf-8"
    assert detect_encoding(_write(tmp_path, JAPANESE.encode("utf-8"), "b.txt")) == "utf-8"


def test_one_corrupt_line_does_not_make_a_file_legacy(tmp_path: Path) -> None:
    """One line of bad bytes in a UTF-8 file is a corrupt line to reject, not cp1252 text.

    Decoding the whole file as cp1252 would silently turn the good UTF-8 lines
    into mojibake; rejecting one line loses nothing silently.
    """
    content = "ok\nnaïve café\n".encode() + b"bad \xff\xfe line\n" + b"more\n"
    assert detect_encoding(_write(tmp_path, content)) == "utf-8"


def test_detect_encoding_of_a_missing_file_raises_source_error(tmp_path: Path) -> None:
    """A missing file gives SourceError naming the path."""
    with pytest.raises(SourceError, match=r"missing\.txt"):
        detect_encoding(tmp_path / "missing.txt")


def test_lines_are_numbered_and_line_breaks_dropped(tmp_path: Path) -> None:
    """Lines come back 1-based, without \\n or \\r\\n, the last one without a break too."""
    path = _write(tmp_path, b"one\r\ntwo\n\nfour")
    lines = list(iter_text_lines(path))
    assert [(t.line, t.text) for t in lines] == [(1, "one"), (2, "two"), (3, ""), (4, "four")]
    assert [t.size for t in lines] == [5, 4, 1, 4]


def test_a_bad_line_is_reported_with_its_bytes_and_reading_goes_on(tmp_path: Path) -> None:
    """Invalid UTF-8 on line 2 gives an invalid_encoding line holding its raw bytes."""
    path = _write(tmp_path, b"good\nbad \xff here\r\nalso good\n")
    lines = list(iter_text_lines(path, encoding="utf-8"))
    assert [t.text for t in lines] == ["good", None, "also good"]
    bad = lines[1]
    assert bad.error == "invalid_encoding"
    assert bad.raw == b"bad \xff here"
    assert "0xff" in bad.message
    assert "byte offset 4" in bad.message


def test_a_long_line_is_skipped_without_stopping(tmp_path: Path) -> None:
    """A line over max_line_bytes is record_too_large with its full size; the next line reads."""
    path = _write(tmp_path, b"short\n" + b"x" * 5000 + b"\nafter\n")
    lines = list(iter_text_lines(path, max_line_bytes=100))
    assert [t.text for t in lines] == ["short", None, "after"]
    assert lines[1] == TextLine(
        line=2, text=None, error="record_too_large", message=lines[1].message, size=5001
    )
    assert "5,001 bytes" in lines[1].message


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_lines_with_bom(tmp_path: Path, encoding: str) -> None:
    """UTF-16 files with a BOM are split on \\n and decoded, CRLF included."""
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    path = _write(tmp_path, bom + "Привет\r\nмир\n\nend".encode(encoding))
    assert [(t.line, t.text) for t in iter_text_lines(path)] == [
        (1, "Привет"),
        (2, "мир"),
        (3, ""),
        (4, "end"),
    ]


def test_utf16_long_line_is_skipped(tmp_path: Path) -> None:
    """A UTF-16 line over the limit is record_too_large, and the following line is read."""
    path = _write(tmp_path, codecs.BOM_UTF16_LE + ("a" * 200_000 + "\nnext\n").encode("utf-16-le"))
    lines = list(iter_text_lines(path, max_line_bytes=1000))
    assert [t.error for t in lines] == ["record_too_large", None]
    assert lines[1].text == "next"


def test_utf16_lone_surrogate_costs_only_its_line(tmp_path: Path) -> None:
    """A lone surrogate in UTF-16 data makes its line invalid_encoding; the next lines read."""
    content = (
        codecs.BOM_UTF16_LE
        + "ok\n".encode("utf-16-le")
        + b"\x00\xd8"  # a high surrogate with no low one after it
        + "a\nlast\n".encode("utf-16-le")
    )
    lines = list(iter_text_lines(_write(tmp_path, content)))
    assert [(t.line, t.text, t.error) for t in lines] == [
        (1, "ok", None),
        (2, None, "invalid_encoding"),
        (3, "last", None),
    ]


def test_utf16_file_cut_inside_a_character_flags_the_last_line(tmp_path: Path) -> None:
    """An odd number of bytes at the end of a UTF-16 file makes only the last line invalid."""
    content = codecs.BOM_UTF16_LE + "ok\nend".encode("utf-16-le") + b"x"
    lines = list(iter_text_lines(_write(tmp_path, content)))
    assert [(t.text, t.error) for t in lines] == [("ok", None), (None, "invalid_encoding")]


def test_utf32_out_of_range_code_point_raises_decode_error(tmp_path: Path) -> None:
    """UTF-32 data that no error handler can pass raises DecodeError naming where it starts.

    The chunk holding the bad data cannot be decoded at all, so the error names
    the first line not yet read.
    """
    content = codecs.BOM_UTF32_LE + "ok\n".encode("utf-32-le") + b"\xff\xff\xff\x7f"
    with pytest.raises(DecodeError, match="at or after line 1") as caught:
        list(iter_text_lines(_write(tmp_path, content)))
    assert caught.value.context.line == 1


def test_missing_file_and_directory_are_source_errors(tmp_path: Path) -> None:
    """iter_text_lines and check_file refuse a missing path and a directory, naming them."""
    with pytest.raises(SourceError, match="no such file") as caught:
        list(iter_text_lines(tmp_path / "nope.jsonl"))
    assert caught.value.context.path == str(tmp_path / "nope.jsonl")
    assert "check the path" in str(caught.value)
    with pytest.raises(SourceError, match="directory"):
        check_file(tmp_path)


def test_unknown_encoding_is_a_source_error(tmp_path: Path) -> None:
    """An encoding name Python does not know is reported as such."""
    with pytest.raises(SourceError, match="unknown encoding"):
        list(iter_text_lines(_write(tmp_path, b"x\n"), encoding="klingon-8"))
