"""TranscriptSource and parse_transcript: WebVTT, SRT and SBV files into cues and passages."""

from __future__ import annotations

import itertools
import pickle
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError, SourceError
from finetune_web.records import Document, Location, Rejection
from finetune_web.sources.transcripts import Cue, TranscriptSource, parse_transcript
from finetune_web.testing import check_source

Write = Callable[[str, str | bytes], Path]

#: Cue counts of the real files, as their own test suites state them
#: (webvtt-py's tests, the vtt-test-file README).
REAL_CUE_COUNTS = {
    "webvtt-py/captions_with_bom.vtt": 4,
    "webvtt-py/cue_tags.vtt": 3,
    "webvtt-py/metadata_headers.vtt": 2,
    "webvtt-py/netflix_chicas_del_cable.vtt": 865,
    "webvtt-py/sample.srt": 5,
    "webvtt-py/sample.vtt": 16,
    "webvtt-py/youtube_dl.vtt": 4,
    "vtt-test-file/1_contain_index_number.vtt": 92,
    "vtt-test-file/2_no_index_youtube-dl.vtt": 13,
}

TAGGED_VTT = """WEBVTT - a talk
Kind: captions
Language: en

STYLE
::cue(.yellow) { color: yellow; }

REGION
id:fred
width:40%

NOTE a comment
that runs over two lines

intro
00:00:01.000 --> 00:00:04.000 position:10%,line-left align:left size:35%
<v.loud Roger Bingham>We are in New York City</v>

00:00:04.500 --> 00:00:06.000
<c.yellow.bg_blue>Fish</c> &amp; <i>chips</i> &lt;3&nbsp;<b>bold</b> <u>under</u>

3
00:00:06.000 --> 00:00:08.000
<lang ja><ruby>漢<rt>かん</rt>字<rt>じ</rt></ruby></lang> and \
<00:00:06.500><c> timed</c><00:00:07.000><c> words</c>
"""


def _cues(items: list[Cue | Rejection]) -> list[Cue]:
    return [item for item in items if isinstance(item, Cue)]


def _docs(items: list[object]) -> list[Document]:
    return [item for item in items if isinstance(item, Document)]


def _rejections(items: list[object]) -> list[Rejection]:
    return [item for item in items if isinstance(item, Rejection)]


# --- real files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "count"), sorted(REAL_CUE_COUNTS.items()))
def test_real_files_give_their_documented_cue_counts(realdata: Path, name: str, count: int) -> None:
    """Every real VTT and SRT file parses to the number of cues its source states, none rejected."""
    items = list(parse_transcript(realdata / "transcripts" / name))
    assert len(_cues(items)) == count
    assert _rejections(items) == []


def test_real_sbv_reads_four_cues_and_rejects_the_reversed_one(realdata: Path) -> None:
    """sample.sbv holds 5 cues; the last ends before it starts: a bad_timestamp rejection."""
    path = realdata / "transcripts" / "webvtt-py" / "sample.sbv"
    items = list(parse_transcript(path))
    cues = _cues(items)
    assert [cue.text for cue in cues] == [
        "Caption text #1",
        "Caption text #2",
        "Caption text #3 (line 1)\nCaption text #3 (line 2)",
        "Caption text #4",
    ]
    assert (cues[1].start, cues[1].end) == (11.378, 12.305)
    (rejection,) = _rejections(items)
    assert rejection.reason == "bad_timestamp"
    assert rejection.message.startswith(f"{path}:14: cue ends (16.543 s) before it starts")
    assert rejection.record_id == "sample.sbv#cue00004"


def test_real_netflix_file_loses_tags_notes_and_settings(realdata: Path) -> None:
    """The Netflix file's NOTE blocks, cue numbers, settings and <i> tags do not reach the text."""
    path = realdata / "transcripts" / "webvtt-py" / "netflix_chicas_del_cable.vtt"
    cues = _cues(list(parse_transcript(path)))
    assert cues[0] == Cue(
        start=7.96, end=9.48, text="[Alba] En 1928,", index=0, line=20, identifier="1"
    )
    assert cues[-2].text == "Diez años no son suficientes\npara olvidarte..."
    assert cues[-1].identifier == "865"
    assert not any("<" in cue.text or "NOTE" in cue.text for cue in cues)


def test_real_cue_tags_and_bom_files(realdata: Path) -> None:
    """Per-word timestamps and <c> classes are stripped; a UTF-8 BOM leaves no trace."""
    folder = realdata / "transcripts" / "webvtt-py"
    tags = _cues(list(parse_transcript(folder / "cue_tags.vtt")))
    assert [c.text for c in tags] == [
        "When the moon hits your eye",
        "Like a big-a pizza pie",
        "That's amore",
    ]
    assert tags[0].start == 16.5  # the short mm:ss.ttt form
    bom = _cues(list(parse_transcript(folder / "captions_with_bom.vtt")))
    assert bom[0].text == "Caption text #1"
    assert [c.start for c in bom] == [0.5, 7.0, 11.89, 16.32]


def test_real_youtube_rolling_captions_collapse(realdata: Path) -> None:
    """youtube_dl.vtt's repeated lines and snapshot cue collapse to each word said once."""
    path = realdata / "transcripts" / "webvtt-py" / "youtube_dl.vtt"
    assert _cues(list(parse_transcript(path)))[2].text == "this will happen is I'm telling"
    docs = _docs(check_source(TranscriptSource(path)))
    assert [d.text for d in docs] == ["yeah what this will happen is I'm telling"]
    assert docs[0].metadata == {
        "source": "youtube_dl.vtt",
        "format": "vtt",
        "start": 286.07,
        "end": 305.069,
        "cues": 3,
        "passage": 0,
    }
    collapsed = [c.text for c in _cues(list(parse_transcript(path, collapse=True)))]
    assert collapsed == ["yeah", "what", "this will happen is I'm telling", ""]


def test_real_passages_respect_max_seconds_and_keep_every_cue(realdata: Path) -> None:
    """Over all real files, passages span at most max_seconds and hold every cue with text once."""
    folder = realdata / "transcripts"
    source = TranscriptSource(folder, max_seconds=20)
    items = check_source(source)
    docs = _docs(items)
    assert [r.reason for r in _rejections(items)] == ["bad_timestamp"]  # the reversed SBV cue
    for doc in docs:
        span = doc.metadata["end"] - doc.metadata["start"]
        assert span <= 20 or doc.metadata["cues"] == 1, doc.id
    by_file: Counter[str] = Counter()
    for doc in docs:
        by_file[doc.metadata["source"]] += doc.metadata["cues"]
    assert by_file["webvtt-py/netflix_chicas_del_cable.vtt"] == 865
    assert by_file["vtt-test-file/1_contain_index_number.vtt"] == 92
    assert by_file["webvtt-py/youtube_dl.vtt"] == 3  # the snapshot cue adds no words
    assert [p.name for p in source.input_files()][:2] == [
        "1_contain_index_number.vtt",
        "2_no_index_youtube-dl.vtt",
    ]


def test_real_passages_end_at_sentence_ends(realdata: Path) -> None:
    """With sentence_ends, 30 s passages end after a sentence; alone, each passage is a sentence."""
    path = realdata / "transcripts" / "vtt-test-file" / "1_contain_index_number.vtt"
    merged = _docs(list(TranscriptSource(path).read()))
    ended = [d for d in merged[:-1] if d.text.rstrip().endswith((".", "?", "!"))]
    assert len(ended) >= 0.8 * (len(merged) - 1)
    plain = _docs(list(TranscriptSource(path, sentence_ends=False).read()))
    assert sum(d.text.endswith(".") for d in plain) < len(ended)
    sentences = _docs(list(TranscriptSource(path, max_seconds=None).read()))
    assert all(d.text.endswith((".", "?", "!")) for d in sentences[:-1])
    assert len(sentences) > len(merged)
    per_cue = _docs(list(TranscriptSource(path, per_cue=True).read()))
    assert len(per_cue) == 92
    assert per_cue[5].id == "1_contain_index_number.vtt#00005"
    assert per_cue[5].metadata["cues"] == 1


# --- markup, blocks, encodings --------------------------------------------------------------


def test_tags_entities_and_blocks_are_stripped(write: Write) -> None:
    """Header, STYLE, REGION and NOTE blocks are skipped; voice, class, ruby, lang tags stripped."""
    path = write("talk.vtt", TAGGED_VTT)
    items = list(parse_transcript(path))
    assert items == [
        Cue(
            start=1.0,
            end=4.0,
            text="We are in New York City",
            index=0,
            line=16,
            identifier="intro",
            speaker="Roger Bingham",
        ),
        Cue(start=4.5, end=6.0, text="Fish & chips <3 bold under", index=1, line=19),
        Cue(start=6.0, end=8.0, text="漢字 and timed words", index=2, line=23, identifier="3"),
    ]


def test_srt_markup_and_missing_blank_line(write: Write) -> None:
    """SRT <font>/{\\an8} markup goes; a cue number right before a timing line starts a new cue."""
    text = (
        '1\n00:00:01,000 --> 00:00:02,000 X1:10 X2:20\n{\\an8}<font color="#fff">Top</font>\n'
        "2\n00:00:02,500 --> 00:00:03,000\n<i>Second</i>\n   \n"
        "3\n00:00:04,000 --> 00:00:05,000\n42\n"
    )
    cues = _cues(list(parse_transcript(write("a.srt", text))))
    assert [(c.identifier, c.text) for c in cues] == [("1", "Top"), ("2", "Second"), ("3", "42")]


def test_bom_and_legacy_encodings(write: Write) -> None:
    """UTF-16 with BOM, cp1252 and Shift-JIS SRT files are detected and decoded right."""
    french = (
        "1\n00:00:01,000 --> 00:00:03,500\nCafé crème, déjà vu.\n\n"
        "2\n00:00:04,000 --> 00:00:06,000\n«Naïve» façade — résumé, 25 €.\n"
    )
    cp1252 = write("fr.srt", french.encode("cp1252"))
    assert [c.text for c in _cues(list(parse_transcript(cp1252)))] == [
        "Café crème, déjà vu.",
        "«Naïve» façade — résumé, 25 €.",
    ]
    japanese = (
        "1\n00:00:01,000 --> 00:00:03,000\nこんにちは、世界。\n\n"
        "2\n00:00:03,500 --> 00:00:06,000\n今日はいい天気ですね。\n\n"
        "3\n00:00:06,500 --> 00:00:09,000\n字幕のテストです。\n"
    )
    sjis = write("ja.srt", japanese.encode("shift_jis"))
    docs = _docs(list(TranscriptSource(sjis).read()))
    assert [d.text for d in docs] == [
        "こんにちは、世界。 今日はいい天気ですね。 字幕のテストです。"
    ]
    forced = _cues(list(parse_transcript(sjis, encoding="shift_jis")))
    assert forced[1].text == "今日はいい天気ですね。"
    utf16 = write("u16.vtt", ("WEBVTT\n\n00:01.000 --> 00:02.000\nÜber\n").encode("utf-16"))
    assert [c.text for c in _cues(list(parse_transcript(utf16)))] == ["Über"]
    bom8 = write("b.srt", b"\xef\xbb\xbf" + b"1\n00:00:01,000 --> 00:00:02,000\nHi\n")
    assert _cues(list(parse_transcript(bom8, encoding="utf-8")))[0].identifier == "1"


def test_undecodable_line_rejects_its_cue_only(write: Write) -> None:
    """A cue line with bytes invalid in the chosen encoding rejects that cue; the rest is read."""
    data = (
        b"1\n00:00:01,000 --> 00:00:02,000\nbad \xff byte\n\n2\n00:00:03,000 --> 00:00:04,000\nok\n"
    )
    items = list(parse_transcript(write("bad.srt", data), encoding="utf-8"))
    assert [type(i).__name__ for i in items] == ["Rejection", "Cue"]
    rejection = items[0]
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid_encoding"
    assert rejection.location == Location(origin=rejection.location.origin, line=2, index=0)


def test_format_is_sniffed_or_given(write: Write) -> None:
    """A .txt file is sniffed (SRT, SBV, WebVTT); format= overrides; nothing to go on fails."""
    srt = write("a.txt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n")
    sbv = write("b.txt", "0:00:01.000,0:00:02.000\nHi\n")
    vtt = write("c.txt", "WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n")
    for path, fmt in ((srt, "srt"), (sbv, "sbv"), (vtt, "vtt")):
        (doc,) = _docs(list(TranscriptSource(path).read()))
        assert doc.metadata["format"] == fmt
        assert doc.text == "Hi"
    (doc,) = _docs(list(TranscriptSource(srt, format="vtt").read()))
    assert doc.metadata["format"] == "vtt"
    prose = write("notes.txt", "just some prose\n")
    with pytest.raises(SourceError, match="pass format="):
        list(TranscriptSource(prose).read())


# --- malformed input ---------------------------------------------------------------------------


def test_malformed_timestamps_become_rejections(write: Write) -> None:
    """Bad digits, minutes over 59, a one-dash arrow and a reversed cue each reject one cue."""
    text = (
        "1\n00:00:0a,000 --> 00:00:02,000\nletter in time\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\ngood one\n\n"
        "3\n00:61:00,000 --> 00:62:00,000\nminutes over 59\n\n"
        "4\n00:00:04,000 -> 00:00:05,000\none-dash arrow\n\n"
        "5\n00:00:09,000 --> 00:00:08,000\nreversed\n\n"
        "6\n00:00:10,000 --> 00:00:11,000\nlast good one\n"
    )
    path = write("broken.srt", text)
    items = list(TranscriptSource(path, per_cue=True).read())
    assert [d.text for d in _docs(items)] == ["good one", "last good one"]
    rejections = _rejections(items)
    assert [r.reason for r in rejections] == ["bad_timestamp"] * 4
    assert [r.location.line for r in rejections if r.location] == [2, 10, 14, 18]
    assert rejections[0].message.startswith(f"{path}:2: malformed timestamp '00:00:0a,000'")
    assert rejections[2].record == "4\n00:00:04,000 -> 00:00:05,000\none-dash arrow"
    assert {r.step for r in rejections} == {"TranscriptSource"}


def test_text_outside_cues_is_rejected(write: Write) -> None:
    """A block of text with no timing line is an orphan_text rejection, not silently lost."""
    path = write("o.vtt", "WEBVTT\n\nstray words\nmore\n\n00:01.000 --> 00:02.000\nkept\n")
    items = list(parse_transcript(path))
    assert [type(i).__name__ for i in items] == ["Rejection", "Cue"]
    assert isinstance(items[0], Rejection) and items[0].reason == "orphan_text"
    assert items[0].record_id == "o.vtt#line3"


def test_missing_and_empty_files(write: Write, tmp_path: Path) -> None:
    """Missing paths raise; a lone empty file raises as in other sources; in a folder, rejected."""
    with pytest.raises(SourceError, match="no such file"):
        TranscriptSource(tmp_path / "nope.vtt").read()
    with pytest.raises(SourceError, match="no such file"):
        parse_transcript(tmp_path / "nope.srt")
    empty = write("empty.vtt", "")
    with pytest.raises(SourceError, match="no caption text"):
        TranscriptSource(empty).read()
    header_only = write("header.vtt", "WEBVTT\n\nNOTE nothing here\n")
    with pytest.raises(SourceError, match="no caption text"):
        list(TranscriptSource(header_only).read())
    write("good.srt", "1\n00:00:01,000 --> 00:00:02,000\nHello.\n")
    items = check_source(TranscriptSource(tmp_path))
    assert [(type(i).__name__, getattr(i, "id", None) or i.record_id) for i in items] == [
        ("Rejection", "empty.vtt"),
        ("Document", "good.srt#00000"),
        ("Rejection", "header.vtt"),
    ]
    assert {r.reason for r in _rejections(items)} == {"empty_file"}
    (tmp_path / "sub").mkdir()
    with pytest.raises(SourceError, match="no caption files"):
        TranscriptSource(tmp_path / "sub").read()


def test_options_are_checked() -> None:
    """Unknown formats, encodings, non-positive windows and empty path lists are ConfigErrors."""
    with pytest.raises(ConfigError, match="not a caption format"):
        TranscriptSource("a.vtt", format="ass")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not an encoding"):
        TranscriptSource("a.vtt", encoding="klingon")
    with pytest.raises(ConfigError, match="above 0"):
        TranscriptSource("a.vtt", max_seconds=0)
    with pytest.raises(ConfigError, match="paths is empty"):
        TranscriptSource([])
    with pytest.raises(ConfigError, match="not a caption format"):
        parse_transcript("a.vtt", format="txt")  # type: ignore[arg-type]


def test_list_of_paths_and_ids(write: Write, tmp_path: Path) -> None:
    """A list of files is read in order, named relative to their common folder, once each."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cue = "1\n00:00:01,000 --> 00:00:02,000\nHello.\n"
    first, second = tmp_path / "a" / "x.srt", tmp_path / "b" / "x.srt"
    first.write_text(cue, encoding="utf-8")
    second.write_text(cue, encoding="utf-8")
    source = TranscriptSource([second, first, second])
    assert [d.id for d in _docs(check_source(source))] == ["b/x.srt#00000", "a/x.srt#00000"]
    assert source.input_files() == (second, first)
    assert pickle.loads(pickle.dumps(source)) == source


# --- rolling captions and passages ------------------------------------------------------------


def _timestamp(millis: int, separator: str = ".") -> str:
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _youtube_vtt(words: list[str], per_line: int = 6, word_ms: int = 400) -> str:
    """Render words as YouTube automatic captions: rolling two-line cues plus snapshot cues."""
    out = ["WEBVTT\nKind: captions\nLanguage: en\n\n"]
    lines = [words[i : i + per_line] for i in range(0, len(words), per_line)]
    clock, previous = 0, ""
    for line in lines:
        start, end = clock, clock + word_ms * len(line) - 10
        timed = line[0] + "".join(
            f"<{_timestamp(start + word_ms * n)}><c> {word}</c>" for n, word in enumerate(line) if n
        )
        out.append(f"{_timestamp(start)} --> {_timestamp(end)} align:start position:0%\n")
        out.append(f"{previous or ' '}\n{timed}\n\n")
        previous = " ".join(line)
        out.append(f"{_timestamp(end)} --> {_timestamp(end + 10)} align:start position:0%\n")
        out.append(f"{previous}\n \n\n")
        clock = end + 10
    return "".join(out)


def _four_grams(text: str) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + 4]) for i in range(len(words) - 3)}


def test_rolling_captions_collapse_to_the_spoken_words(write: Write) -> None:
    """Rolling auto-captions give back each spoken word once; no 4-gram repeats across passages."""
    spoken = [f"word{n}" for n in range(240)]
    path = write("auto.en.vtt", _youtube_vtt(spoken))
    assert len(_cues(list(parse_transcript(path)))) == 80  # 40 rolling + 40 snapshot cues
    docs = _docs(check_source(TranscriptSource(path, max_seconds=30)))
    assert len(docs) == 4
    assert " ".join(d.text for d in docs).split() == spoken
    for before, after in itertools.pairwise(docs):
        assert not _four_grams(before.text) & _four_grams(after.text)
        assert before.metadata["end"] <= after.metadata["start"]
    assert all(d.metadata["end"] - d.metadata["start"] <= 30 for d in docs)
    raw = _docs(list(TranscriptSource(path, collapse=False, max_seconds=30).read()))
    assert len(" ".join(d.text for d in raw).split()) > 2.5 * len(spoken)


def test_equal_cues_in_ordinary_subtitles_are_kept(write: Write) -> None:
    """Two equal cues in a row (a sound repeated) are not mistaken for rolling captions."""
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\n[phone rings]\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\n[phone rings]\n\n"
        "3\n00:00:05,000 --> 00:00:06,000\nHello?\n"
    )
    (doc,) = _docs(list(TranscriptSource(write("p.srt", text)).read()))
    assert doc.text == "[phone rings] [phone rings] Hello?"
    assert doc.metadata["cues"] == 3


def test_passage_windows_and_sentence_ends(write: Write) -> None:
    """A passage closes after its last full sentence before the window overflows."""
    text = "".join(
        f"{n + 1}\n{_timestamp(n * 4000, ',')} --> {_timestamp(n * 4000 + 3500, ',')}\n{line}\n\n"
        for n, line in enumerate(
            ["One two", "three.", "Four five", "six seven", "eight.", "Nine ten"]
        )
    )
    path = write("s.srt", text)
    docs = _docs(list(TranscriptSource(path, max_seconds=12).read()))
    assert [d.text for d in docs] == ["One two three.", "Four five six seven eight.", "Nine ten"]
    assert [(d.metadata["start"], d.metadata["end"]) for d in docs] == [
        (0.0, 7.5),
        (8.0, 19.5),
        (20.0, 23.5),
    ]
    assert [d.location.line for d in docs if d.location] == [2, 10, 22]
    timed = _docs(list(TranscriptSource(path, max_seconds=12, sentence_ends=False).read()))
    assert [d.text for d in timed] == ["One two three. Four five", "six seven eight. Nine ten"]
    whole = _docs(list(TranscriptSource(path, max_seconds=None, sentence_ends=False).read()))
    assert [d.metadata["cues"] for d in whole] == [6]


# --- round trip --------------------------------------------------------------------------------

_WORD = st.text(
    st.characters(categories=("L", "N"), include_characters=".,!?'\"-()"),
    min_size=1,
    max_size=8,
).filter(lambda w: "--" not in w)
_LINE = st.lists(_WORD, min_size=1, max_size=5).map(" ".join)
_CUE = st.tuples(
    st.integers(0, 99 * 3_600_000), st.integers(0, 60_000), st.lists(_LINE, min_size=1, max_size=3)
)


def _sbv_timestamp(millis: int) -> str:
    hours, rest = divmod(millis, 3_600_000)
    return f"{hours}:{_timestamp(rest)[3:]}"


def _render(cues: list[tuple[int, int, list[str]]], fmt: str) -> str:
    blocks = []
    for n, (start, length, lines) in enumerate(cues, start=1):
        end, body = start + length, "\n".join(lines)
        if fmt == "srt":
            blocks.append(f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{body}\n")
        elif fmt == "vtt":
            timing = f"{_timestamp(start)} --> {_timestamp(end)} align:start"
            blocks.append(f"cue-{n}\n{timing}\n{body}\n")
        else:
            blocks.append(f"{_sbv_timestamp(start)},{_sbv_timestamp(end)}\n{body}\n")
    header = "WEBVTT\n\n" if fmt == "vtt" else ""
    return header + "\n".join(blocks)


@settings(max_examples=60, deadline=None)
@given(cues=st.lists(_CUE, min_size=1, max_size=8), fmt=st.sampled_from(["srt", "vtt", "sbv"]))
def test_rendered_cues_parse_back(cues: list[tuple[int, int, list[str]]], fmt: str) -> None:
    """Any cue list rendered to SRT, WebVTT or SBV parses back to the same times and texts."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"cues.{fmt}"
        path.write_text(_render(cues, fmt), encoding="utf-8")
        parsed = list(parse_transcript(path))
    assert [(c.start, c.end, c.text) for c in _cues(parsed)] == [
        (start / 1000, (start + length) / 1000, "\n".join(lines)) for start, length, lines in cues
    ]
    assert _rejections(parsed) == []
