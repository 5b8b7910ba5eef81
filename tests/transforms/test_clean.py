"""CleanText: Unicode, whitespace, invisible characters, mojibake, HTML and special tokens."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web._types import Role
from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.formats.tokens import OPENAI_SPECIAL_TOKENS, TokenCounter
from finetune_web.records import (
    Document,
    Example,
    Location,
    Message,
    Preference,
    Record,
    Rejection,
    StepMetric,
    ToolCall,
)
from finetune_web.testing import check_transformer, run_step
from finetune_web.transforms.clean import (
    CLEAN_METRICS,
    CleanText,
    escape_special_tokens,
    find_special_tokens,
)

CLEAN = CleanText()


def _doc(text: str | None, **kwargs: object) -> Document:
    return Document(id="d1", text=text, location=Location(origin="pages.jsonl", line=4), **kwargs)  # type: ignore[arg-type]


def _run(
    step: CleanText, records: list[Record]
) -> tuple[list[Record | Rejection], dict[str, float]]:
    return run_step(step, records)


def _example(*contents: tuple[Role, str | None]) -> Example:
    return Example(id="e1", messages=[Message(role=role, content=text) for role, text in contents])


# --- HTML ---------------------------------------------------------------------------------


def test_entities_are_decoded_and_tags_stripped_with_line_breaks() -> None:
    """Named and numeric entities decode; <br>, <p>, </p> become line breaks; inline tags go."""
    text = "Fish&nbsp;&amp;&nbsp;chips&#33;<br>Only &#x20AC;5<p>Fresh <b>daily</b></p>Open"
    assert CLEAN.clean(text) == "Fish & chips!\nOnly €5\nFresh daily\nOpen"


def test_script_style_comments_and_doctype_are_removed_with_their_content() -> None:
    """<script>/<style> blocks, comments and declarations disappear entirely."""
    text = (
        "<!DOCTYPE html><style>p{color:red}</style>Hi<!-- nav --><script>var a = 1;</script> there"
    )
    assert CLEAN.clean(text) == "Hi there"


def test_entity_encoded_and_double_encoded_tags_are_stripped() -> None:
    """Scraped text often holds escaped markup (&lt;br&gt;, &amp;lt;p&amp;gt;): it goes too."""
    assert CLEAN.clean("Line one&lt;br&gt;Line two &amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt;") == (
        "Line one\nLine two bold"
    )


def test_angle_brackets_that_are_not_html_stay() -> None:
    """Comparisons, generics and unknown tags are text, not markup."""
    text = "if a < b > c: Vec<u8>, List<String>, <T> and <3"
    assert CLEAN.clean(text) == text


def test_unknown_entities_and_bare_ampersands_stay() -> None:
    """Only well-formed known entities decode: AT&T, &copy without ';' and &bogus; stay."""
    text = "AT&T R&D ?a=1&copy=2 &bogus;"
    assert CLEAN.clean(text) == text


def test_html_can_be_switched_off() -> None:
    """html=False leaves entities and tags alone."""
    assert CleanText(html=False).clean("a &amp; <b>b</b>") == "a &amp; <b>b</b>"


# --- mojibake -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("cafÃ© â€” naÃ¯ve", "café — naïve"),
        ("Ð¿Ñ€Ð¸Ð²ÐµÑ‚, Ð¼Ð¸Ñ€", "привет, мир"),
        ("こんにちは、世界".encode().decode("latin-1"), "こんにちは、世界"),
    ],
    ids=["latin", "russian", "japanese"],
)
def test_mojibake_is_repaired(broken: str, fixed: str) -> None:
    """UTF-8 text decoded as Windows-1252 or Latin-1 is repaired (Latin, Cyrillic, Japanese)."""
    outputs, metrics = _run(CLEAN, [_doc(broken)])
    assert [o.text for o in outputs if isinstance(o, Document)] == [fixed]
    assert metrics["clean.mojibake_fixed"] == 1


def test_mojibake_repair_can_be_switched_off() -> None:
    """fix_mojibake=False keeps the text as it came."""
    assert CleanText(fix_mojibake=False).clean("cafÃ©") == "cafÃ©"


def test_missing_ftfy_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ftfy, mojibake repair raises MissingDependencyError with the install hint."""
    monkeypatch.setitem(sys.modules, "ftfy", None)
    with pytest.raises(MissingDependencyError, match=r"pip install \"ftfy"):
        list(CleanText().transform([_doc("x")]))
    assert CleanText(fix_mojibake=False).clean("x") == "x"


# --- invisible characters, Unicode, whitespace -----------------------------------------------


def test_control_and_zero_width_characters_go_but_tab_and_newline_stay() -> None:
    """NUL, BEL, ESC sequences, ZWSP, BOM, soft hyphen and bidi marks go; \\t and \\n stay."""
    text = "\ufeffa\x00b\x07c\u200bd\u00ade\u202ef\tg\nh \x1b[31mred\x1b[0m"
    assert CLEAN.clean(text) == "abcdef\tg\nh red"


def test_joiners_can_be_kept_for_emoji_and_persian() -> None:
    """keep_joiners keeps ZWJ (emoji families) and ZWNJ (Persian spelling)."""
    family = "👨\u200d👩\u200d👧"
    persian = "می\u200cخواهم"
    assert CleanText(keep_joiners=True).clean(f"{family} {persian}") == f"{family} {persian}"
    assert CLEAN.clean(family) == "👨👩👧"


def test_invisible_set_covers_every_control_format_and_surrogate_character() -> None:
    """Every Cc, Cf and Cs code point of this Python's Unicode is removed, but tab and the
    line breaks (CR, VT, FF, FS, GS, RS, NEL), which become \\n."""
    breaks = "\r\x0b\x0c\x1c\x1d\x1e\x85"
    expected_gone = [
        chr(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs") and chr(cp) not in "\t\n" + breaks
    ]
    step = CleanText(fix_mojibake=False, html=False)
    assert step.clean("x" + "".join(expected_gone) + "y") == "xy"
    assert step.clean("x" + "y".join(breaks) + "y") == "x" + "\ny" * len(breaks)


def test_nfc_by_default_and_nfkc_on_request() -> None:
    """NFC composes accents and dakuten; NFKC also folds full-width forms and ligatures."""
    decomposed = "e\u0301 \u304b\u3099"  # é and が, decomposed
    assert CLEAN.clean(decomposed) == "é が"
    assert CLEAN.clean("ＡＢＣ１２３ ﬁ") == "ＡＢＣ１２３ ﬁ"
    assert CleanText(normalization="NFKC").clean("ＡＢＣ１２３ ﬁ") == "ABC123 fi"
    assert CleanText(normalization=None).clean(decomposed) == decomposed


def test_whitespace_is_normalised_but_indentation_kept() -> None:
    """CRLF/CR become LF, inner runs of spaces one, trailing spaces and extra blank lines go."""
    text = "  Title   here \r\n\r\n\r\n\r\ndef f():\r\n    return\u00a0\u00a01   \r\rend\u3000ok  "
    assert CLEAN.clean(text) == "Title here\n\ndef f():\n    return 1\n\nend ok"


def test_whitespace_normalisation_can_be_switched_off() -> None:
    """whitespace=False keeps runs of spaces (code) while line breaks are still unified."""
    assert CleanText(whitespace=False).clean("a    b\r\n") == "a    b\n"


def test_clean_japanese_and_russian_text_is_left_alone() -> None:
    """Text that is already clean comes out unchanged, in any script."""
    for text in (
        "東京は日本の首都です。\n人口は約1400万人です。",
        "Москва — столица России.\nЁлка.",
    ):
        assert CLEAN.clean(text) == text


# --- special tokens -----------------------------------------------------------------------


def test_special_tokens_are_escaped_readably_and_no_tokenizer_sees_them() -> None:
    """Every OpenAI special token, and any <|name|>, is escaped so tiktoken finds none."""
    text = " ".join(sorted(OPENAI_SPECIAL_TOKENS)) + " <|im_start|>user<|im_end|> <|eot_id|>"
    cleaned = CLEAN.clean(text)
    assert "<| endoftext |>" in cleaned
    assert "<| im_start |>user<| im_end |>" in cleaned
    assert find_special_tokens(cleaned) == ()
    for encoding in ("o200k_base", "cl100k_base"):
        counter = TokenCounter(encoding_name=encoding)
        assert counter.find_special_tokens(text)  # the raw text holds them
        assert counter.find_special_tokens(cleaned) == ()


def test_special_tokens_hidden_behind_entities_or_invisible_characters_are_caught() -> None:
    """Tokens that only appear after decoding or removing invisible characters are escaped."""
    assert CLEAN.clean("&lt;|endoftext|&gt; <|endo\u200bftext|>") == (
        "<| endoftext |> <| endoftext |>"
    )


def test_reject_policy_rejects_with_the_tokens_found() -> None:
    """special_tokens="reject" rejects the record naming the tokens and where it came from."""
    outputs, _ = _run(CleanText(special_tokens="reject"), [_doc("a <|endoftext|> <|fim_suffix|>")])
    (rejection,) = outputs
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.details) == (
        "special_token",
        {"tokens": ["<|endoftext|>", "<|fim_suffix|>"]},
    )
    assert "pages.jsonl:4" in rejection.message


def test_escape_helpers_round_trip() -> None:
    """escape_special_tokens leaves nothing find_special_tokens can find, and is idempotent."""
    text = "x<|a|>y<|b.c|>z <| spaced |> <||>"
    escaped = escape_special_tokens(text)
    assert escaped == "x<| a |>y<| b.c |>z <| spaced |> <||>"
    assert find_special_tokens(escaped) == ()
    assert escape_special_tokens(escaped) == escaped


def test_guard_covers_every_role_and_tool_call_arguments() -> None:
    """A tool message (not cleaned by default) and tool-call arguments are still guarded."""
    example = Example(
        id="e1",
        messages=[
            Message(role="user", content="Find it"),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="c1", name="f", arguments='{"q": "<|endoftext|>"}')],
            ),
            Message(role="tool", tool_call_id="c1", content='{"a":  "<|fim_prefix|>"}'),
            Message(role="assistant", content="Done"),
        ],
    )
    outputs, metrics = _run(CLEAN, [example])
    (out,) = outputs
    assert isinstance(out, Example)
    assert out.messages[1].tool_calls[0].arguments == '{"q": "<| endoftext |>"}'
    assert out.messages[2].content == '{"a":  "<| fim_prefix |>"}'  # guarded, not cleaned
    assert metrics["clean.special_tokens_escaped"] == 2


# --- records --------------------------------------------------------------------------------


def test_document_emptied_by_cleaning_is_rejected_with_its_location() -> None:
    """A document whose text is only markup and spaces is rejected: empty_after_cleaning."""
    outputs, _ = _run(CLEAN, [_doc("<p>&nbsp;</p>\u200b \n")])
    (rejection,) = outputs
    assert isinstance(rejection, Rejection)
    assert (rejection.record_id, rejection.reason) == ("d1", "empty_after_cleaning")
    assert rejection.message == "record d1 (pages.jsonl:4): no text left after cleaning"


def test_emptied_message_rejects_the_example_but_an_empty_one_does_not() -> None:
    """A message emptied by cleaning rejects the example; content that was already empty is fine."""
    emptied = _example(("user", "Hi"), ("assistant", "<br>\u200b"))
    outputs, _ = _run(CLEAN, [emptied])
    (rejection,) = outputs
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "empty_after_cleaning"
    assert rejection.details == {"message_index": 1, "role": "assistant"}
    already = _example(("system", ""), ("user", "Hi"), ("assistant", "Hello"))
    assert _run(CLEAN, [already])[0] == [already]


def test_document_fields_are_cleaned_nested_and_in_lists() -> None:
    """Chosen data fields (dotted paths, lists of strings) are cleaned; other fields are not."""
    doc = Document(
        id="p1",
        data={
            "title": "Kettle&nbsp;1.7&nbsp;L",
            "details": {"summary": "<b>Fast</b>  boil"},
            "features": ["Auto&#8209;off", 3, "  Steel "],
            "raw": "<b>kept</b>",
        },
    )
    step = CleanText(fields=("title", "details.summary", "features", "missing.path"))
    (out,) = _run(step, [doc])[0]
    assert isinstance(out, Document)
    assert out.data == {
        "title": "Kettle 1.7 L",
        "details": {"summary": "Fast boil"},
        "features": ["Auto\u2011off", 3, "Steel"],
        "raw": "<b>kept</b>",
    }


def test_document_with_only_data_and_no_fields_passes_untouched() -> None:
    """Nothing selected means nothing cleaned and nothing rejected."""
    doc = Document(id="p1", data={"title": "<b>x</b>"})
    assert _run(CLEAN, [doc])[0] == [doc]


def test_examples_clean_chosen_roles_and_content_parts() -> None:
    """Contents of the chosen roles are cleaned, text parts included; other roles only guarded."""
    example = Example(
        id="e1",
        messages=[
            Message(role="system", content="Be  brief."),
            Message(role="user", content=[{"type": "text", "text": "Hi&amp;bye  "}]),
            Message(role="assistant", content="Hello\u200b!"),
        ],
    )
    (out,) = _run(CleanText(roles=("user", "assistant")), [example])[0]
    assert isinstance(out, Example)
    assert [m.text for m in out.messages] == ["Be  brief.", "Hi&bye", "Hello!"]


def test_preferences_are_cleaned_in_prompt_and_both_answers() -> None:
    """A DPO pair's prompt, preferred and non-preferred answers are all cleaned."""
    pair = Preference(
        id="p1",
        messages=[Message(role="user", content="Q&amp;A?")],
        preferred=Message(role="assistant", content="<p>Yes</p>"),
        non_preferred=Message(role="assistant", content="No  way"),
    )
    (out,) = _run(CLEAN, [pair])[0]
    assert isinstance(out, Preference)
    assert (out.messages[0].text, out.preferred.text, out.non_preferred.text) == (
        "Q&A?",
        "Yes",
        "No way",
    )


def test_metrics_count_each_kind_of_repair() -> None:
    """The step reports counts per kind; every metric appears, zero when nothing happened."""
    records: list[Record] = [
        _doc("<b>a</b> &amp; b<br>"),
        Document(id="d2", text="cafÃ© \u200b<|endoftext|>"),
        Document(id="d3", text="e\u0301"),
    ]
    _, metrics = _run(CLEAN, records)
    assert metrics == {
        "clean.control_chars_removed": 1,
        "clean.html_entities_decoded": 1,
        "clean.html_tags_removed": 3,
        "clean.mojibake_fixed": 1,
        "clean.special_tokens_escaped": 1,
        "clean.unicode_normalized": 1,
    }
    assert set(metrics) == set(CLEAN_METRICS)


def test_unchanged_records_are_passed_on_as_they_are() -> None:
    """A clean record is yielded as the same object (no needless copies)."""
    doc = _doc("Already clean.")
    (out,) = _run(CLEAN, [doc])[0]
    assert out is doc


@pytest.mark.parametrize(
    "kwargs",
    [
        {"normalization": "NFD"},
        {"special_tokens": "drop"},
        {"roles": ("robot",)},
        {"fields": ("",)},
    ],
)
def test_bad_options_raise_config_errors(kwargs: dict[str, object]) -> None:
    """Unknown normalisation forms, policies, roles and empty field paths are refused."""
    with pytest.raises(ConfigError):
        CleanText(**kwargs)  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "<br>", "<p>", "</p>", "<b>", "&amp;", "&lt;", "&gt;", "&nbsp;", "&#8203;", "&#x301;",
        "<|endoftext|>", "<|", "|>", "endoftext", "\u200b", "\u200d", "\ufeff", "\x00", "\x1b[1m",
        "\r\n", "\r", "\n\n\n", "  ", "\t", "\u3000", "\u00a0", "Ã©", "â€”", "é", "e\u0301",
        "ｅ", "<script>", "</script>", "<!--", "-->", "東京", "Привет", " ", "a", "<", ">", "&",
        "|",
    ]
)  # fmt: skip
_TEXTS = st.lists(st.one_of(st.text(max_size=4), _FRAGMENTS), max_size=25).map("".join)
_INVISIBLE_CATEGORIES = ("Cc", "Cf", "Cs")


@settings(max_examples=300, deadline=None)
@given(_TEXTS, st.sampled_from(["NFC", "NFKC"]))
def test_cleaning_is_idempotent_and_leaves_no_invisible_characters_or_special_tokens(
    text: str, normalization: str
) -> None:
    """clean(clean(x)) == clean(x); the result has no control, zero-width or format
    characters (but \\t and \\n), no ``<|name|>`` token, and is stripped."""
    step = CleanText(normalization=normalization)  # type: ignore[arg-type]
    once = step.clean(text)
    assert step.clean(once) == once
    assert not [
        c for c in once if unicodedata.category(c) in _INVISIBLE_CATEGORIES and c not in "\t\n"
    ]
    assert find_special_tokens(once) == ()
    assert once == once.strip()


@settings(max_examples=50, deadline=None)
@given(st.lists(_TEXTS, min_size=1, max_size=8))
def test_every_record_leaves_as_an_output_or_one_rejection(texts: list[str]) -> None:
    """On generated documents and examples the step keeps the Transformer contract."""
    records: list[Record] = []
    for i, text in enumerate(texts):
        if i % 2:
            records.append(Document(id=f"d{i}", text=text))
        else:
            messages = [Message(role="user", content=text), Message(role="assistant", content="x")]
            records.append(Example(id=f"e{i}", messages=messages))
    outputs = check_transformer(CLEAN, records)
    rejected = [o for o in outputs if isinstance(o, Rejection)]
    assert len(outputs) == len(records)
    assert {r.reason for r in rejected} <= {"empty_after_cleaning"}


def test_pulling_one_output_reads_a_bounded_number_of_inputs() -> None:
    """The step is lazy: the first record out costs one record in, whatever the stream length."""
    pulled = 0

    def endless() -> Iterator[Record]:
        nonlocal pulled
        while True:
            pulled += 1
            yield Document(id=f"d{pulled}", text="some <b>text</b>")

    stream = CLEAN.transform(endless())
    first = next(item for item in stream if not isinstance(item, StepMetric))
    assert isinstance(first, Document)
    assert pulled == 1
