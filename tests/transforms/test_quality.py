"""QualityFilter: length limits and Gopher/C4 heuristics, each with its own reason code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError, UnknownModelError
from finetune_web.records import Document, Example, Location, Message, Record, Rejection, StepMetric
from finetune_web.testing import check_transformer
from finetune_web.transforms.quality import QUALITY_REASONS, QualityFilter, TextStats

GOOD_EN = (
    "The old lighthouse on the northern cliff was built in 1871 to guide fishing boats through "
    "the narrow channel. For more than a century its keepers climbed the spiral stairs every "
    "evening, trimmed the wicks and wound the clockwork that turned the great lens. When the "
    "light was automated in 1983, the last keeper moved to the village below, where he opened a "
    "small museum. Visitors can still see his logbooks, which record storms, shipwrecks and the "
    "arrival of the first motor ferry in careful, patient handwriting."
)
GOOD_JA = (
    "北の岬に立つ古い灯台は、一八七一年に漁船を狭い水路へ導くために建てられました。"
    "百年以上にわたり、灯台守は毎晩らせん階段を上り、芯を整え、大きなレンズを回す時計仕掛けを"
    "巻きました。一九八三年に自動化されると、最後の灯台守は麓の村に移り、小さな博物館を開きました。"
    "今でも訪れる人は、嵐や難破、最初の連絡船の到着を丁寧な字で記した日誌を見ることができます。"
)
GOOD_RU = (
    "Старый маяк на северном утёсе построили в 1871 году, чтобы проводить рыбацкие лодки "
    "через узкий пролив.\n"
    "— Вы здесь давно живёте? — спросила гостья.\n"
    "— Всю жизнь, — ответил смотритель и улыбнулся.\n"
    "— И не скучно?\n"
    "— Море каждый день разное.\n"
    "Больше ста лет смотрители каждый вечер поднимались по винтовой лестнице, подрезали фитили "
    "и заводили часовой механизм, вращавший огромную линзу. Когда маяк автоматизировали, "
    "последний смотритель переехал в деревню и открыл там небольшой музей."
)
LOC = Location(origin="pages.jsonl", line=7)


def _doc(text: str | None, **kwargs: Any) -> Document:
    return Document(id="d1", text=text, location=LOC, **kwargs)


def _verdict(step: QualityFilter, record: Record) -> Record | Rejection:
    (out,) = [o for o in step.transform([record]) if not isinstance(o, StepMetric)]
    return out


def _rejection(step: QualityFilter, text: str) -> Rejection:
    out = _verdict(step, _doc(text))
    assert isinstance(out, Rejection), f"expected a rejection for {text[:60]!r}"
    return out


@pytest.mark.parametrize("text", [GOOD_EN, GOOD_JA, GOOD_RU], ids=["en", "ja", "ru"])
def test_natural_prose_passes_the_defaults_in_english_japanese_and_russian(text: str) -> None:
    """Ordinary prose passes every default check, whether or not its script uses spaces."""
    doc = _doc(text)
    assert _verdict(QualityFilter(), doc) is doc


def test_japanese_counts_letters_as_words_and_skips_mean_word_length() -> None:
    """Without spaces, each kana or kanji is a word; the mean word length is not measured."""
    stats = TextStats("東京は日本の首都です。")
    assert stats.words == ["東", "京", "は", "日", "本", "の", "首", "都", "で", "す", "。"]
    assert stats.mean_word_length() is None
    assert QualityFilter(min_words=10).check("東京は日本の首都です。") is None
    assert QualityFilter(min_words=12).check("東京は日本の首都です。") is not None


def test_mixed_tokens_split_into_latin_runs_and_letters() -> None:
    """A token mixing Latin and Japanese keeps the Latin run whole."""
    assert TextStats("iPhoneのケース").words == ["iPhone", "の", "ケ", "ー", "ス"]


def test_russian_dialogue_dashes_are_not_bullets() -> None:
    """Lines opening with an em dash (dialogue) do not count as bullet lines."""
    dialogue = (
        "— Вы здесь давно живёте? — спросила гостья.\n"
        "— Всю жизнь, — ответил смотритель.\n"
        "— И не скучно одному?\n"
        "— Море каждый день разное, а по субботам приходит паром.\n"
        "— А зимой?\n"
        "— Зимой читаю письма и чиню старые часы."
    )
    assert QualityFilter(min_words=None).check(dialogue) is None
    bulleted = QualityFilter(min_words=None).check(dialogue.replace("— ", "• "))
    assert bulleted is not None and bulleted[0] == "bullet_lines"


# --- each check, its reason, details, and its off switch ----------------------------------------

_LIST = "\n".join(f"- item number {i} of the catalogue listing" for i in range(20))
_ELLIPSES = "\n".join(
    f"Story {i} begins with the hero walking home..." if i % 2 else f"Plain line {i} of prose."
    for i in range(20)
)
_NUMBERS = GOOD_EN + " " + " ".join(str(n) for n in range(40))
_HASHTAGS = GOOD_EN + " " + " ".join(f"#tag{n}" for n in range(12))
_REPEATED_LINES = "\n".join([GOOD_EN[:60]] * 4 + [GOOD_EN[60:150], GOOD_EN[150:300], GOOD_EN[300:]])
_REPEATED_PARAGRAPHS = "\n\n".join([GOOD_EN[:200], GOOD_EN[:200], GOOD_EN[200:]])

CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    # (reason, options, text, the option that fails, id)
    ("too_short_chars", {"min_chars": 600}, GOOD_EN, "min_chars", "min_chars"),
    ("too_long_chars", {"max_chars": 100}, GOOD_EN, "max_chars", "max_chars"),
    ("too_few_tokens", {"min_tokens": 500, "encoding": "o200k_base"}, GOOD_EN, "min_tokens", "mt"),
    ("too_many_tokens", {"max_tokens": 20, "model": "gpt-4o-mini"}, GOOD_EN, "max_tokens", "xt"),
    ("too_few_words", {}, "Too short to be a page.", "min_words", "min_words"),
    ("too_many_words", {"max_words": 60}, GOOD_EN, "max_words", "max_words"),
    ("mean_word_length", {}, " ".join(["a an to of it"] * 12), "min_mean_word_length", "short"),
    (
        "mean_word_length",
        {},
        " ".join(["incomprehensibilities"] * 60),
        "max_mean_word_length",
        "long",
    ),
    ("symbol_ratio", {}, _HASHTAGS, "max_symbol_ratio", "hashtags"),
    ("bullet_lines", {}, _LIST, "max_bullet_lines", "bullets"),
    ("ellipsis_lines", {}, _ELLIPSES, "max_ellipsis_lines", "ellipses"),
    ("non_alpha_words", {}, _NUMBERS, "min_alpha_words", "numbers"),
    ("stop_words", {"min_stop_words": 2}, GOOD_RU, "min_stop_words", "stop_words"),
    ("boilerplate", {}, GOOD_EN + " Lorem ipsum dolor sit amet.", "boilerplate_phrases", "lorem"),
    (
        "boilerplate",
        {"reject_curly_braces": True},
        GOOD_EN + " {x}",
        "reject_curly_braces",
        "brace",
    ),
    ("repeated_lines", {}, _REPEATED_LINES, "max_duplicate_lines", "lines"),
    (
        "repeated_paragraphs",
        {"max_duplicate_lines": None, "max_duplicate_line_chars": None},
        _REPEATED_PARAGRAPHS,
        "max_duplicate_paragraphs",
        "paragraphs",
    ),
]


@pytest.mark.parametrize(
    ("reason", "options", "text", "check"), [c[:4] for c in CASES], ids=[c[4] for c in CASES]
)
def test_each_check_rejects_with_its_reason_and_can_be_switched_off(
    reason: str, options: dict[str, Any], text: str, check: str
) -> None:
    """The failing check gives its own reason and names itself; setting it to None (or False)
    lets the same text through that check."""
    rejection = _rejection(QualityFilter(**options), text)
    assert (rejection.reason, rejection.details["check"]) == (reason, check)
    assert rejection.message.startswith("record d1 (pages.jsonl:7): ")
    assert check in rejection.message
    off = {**options, check: False if check == "reject_curly_braces" else None}
    if check == "boilerplate_phrases":
        off[check] = ()
    after = _verdict(QualityFilter(**off), _doc(text))
    assert not isinstance(after, Rejection) or after.details["check"] != check


def test_details_hold_the_measured_value_and_the_threshold() -> None:
    """Details give the measure and the threshold, so the report says how far off a record was."""
    rejection = _rejection(QualityFilter(), "Too short to be a page.")
    assert rejection.details == {"check": "min_words", "value": 6, "threshold": 50}
    assert rejection.message.endswith("word count 6 is below the minimum 50 (min_words)")
    tokens = _rejection(QualityFilter(max_tokens=20, encoding="cl100k_base"), GOOD_EN)
    assert tokens.details["threshold"] == 20 and tokens.details["value"] > 80


def test_boilerplate_lines_count_c4_phrases() -> None:
    """Pages that are mostly cookie, JavaScript or terms-of-use lines are boilerplate."""
    page = "\n".join(
        [
            "This website uses cookies to improve your experience.",
            "Please enable JavaScript to view the comments.",
            "Read our Terms of Use and Privacy Policy.",
            GOOD_EN,
        ]
    )
    rejection = _rejection(QualityFilter(), page)
    assert rejection.details == {"check": "max_boilerplate_lines", "value": 0.75, "threshold": 0.5}


def test_repeated_ngrams_report_n_and_both_measures() -> None:
    """A text repeating a phrase fails the top n-gram or duplicate n-gram measure, naming n."""
    spam = " ".join(["buy cheap watches online"] * 15)
    top = _rejection(QualityFilter(), spam)
    assert (top.reason, top.details["check"], top.details["n"]) == (
        "repeated_ngrams",
        "max_top_ngram_chars",
        2,
    )
    copied = GOOD_EN + " " + GOOD_EN[:150]
    duplicate = _rejection(QualityFilter(), copied)
    assert (duplicate.reason, duplicate.details["check"], duplicate.details["n"]) == (
        "repeated_ngrams",
        "max_duplicate_ngram_chars",
        5,
    )
    assert QualityFilter(max_top_ngram_chars=None, max_duplicate_ngram_chars=None).check(
        copied
    ) is (None)


def test_ngram_measures_on_a_small_text() -> None:
    """The measures match a hand count: 'a b a b c' has 'a b' twice (4 of 5 letters)."""
    stats = TextStats("a b a b c")
    assert stats.top_ngram_fraction(2) == pytest.approx(4 / 5)
    assert stats.duplicate_ngram_fraction(2) == pytest.approx(4 / 5)
    assert stats.duplicate_ngram_fraction(3) == 0.0
    assert TextStats("x y z").top_ngram_fraction(2) == 0.0
    assert TextStats.duplicates(["one", "two", "one", "one"]) == pytest.approx((0.5, 6 / 12))


def test_ngram_sizes_double_for_text_without_spaces() -> None:
    """In Japanese, where each letter is a word, an n-gram is 2n letters (about n words): a
    five-letter word said often is not a repeated 5-gram."""
    text = (
        "パスワードを変えました。" * 1
        + "新しいパスワードは長いです。"
        + "パスワード管理は大切です。"
    )
    stats = TextStats(text)
    assert stats.mostly_unspaced
    assert (
        stats.duplicate_ngram_fraction(5) == 0.0
    )  # "パスワード" repeats, but 10-letter runs do not


def test_ngram_thresholds_accept_toml_string_keys() -> None:
    """Tables from TOML have string keys: they become ints, and bad ones are refused."""
    step = QualityFilter(max_top_ngram_chars={"3": 0.2}, max_duplicate_ngram_chars={})
    assert step.max_top_ngram_chars == {3: 0.2}
    with pytest.raises(ConfigError, match="n-gram sizes"):
        QualityFilter(max_top_ngram_chars={"x": 0.2})


def test_model_or_encoding_but_not_both_and_known_models_only() -> None:
    """Token limits take a model or an encoding; an unknown model fails when the step is built."""
    with pytest.raises(ConfigError, match="not both"):
        QualityFilter(model="gpt-4o-mini", encoding="o200k_base")
    with pytest.raises(UnknownModelError):
        QualityFilter(model="gpt-nonexistent")


# --- records --------------------------------------------------------------------------------


def test_examples_are_measured_on_assistant_messages_by_default() -> None:
    """A short user prompt does not sink an example whose answer is good prose."""
    example = Example(
        id="e1",
        messages=[
            Message(role="user", content="Tell me?"),
            Message(role="assistant", content=GOOD_EN),
        ],
    )
    assert _verdict(QualityFilter(), example) is example
    rejected = _verdict(QualityFilter(roles=("user",)), example)
    assert isinstance(rejected, Rejection) and rejected.reason == "too_few_words"


def test_documents_measure_text_and_chosen_fields_together() -> None:
    """Fields are joined to the text, so a short title plus a long description passes."""
    doc = Document(id="p1", data={"title": "Lighthouse", "about": {"body": GOOD_EN}})
    assert _verdict(QualityFilter(fields=("title", "about.body")), doc) is doc


def test_record_without_any_text_is_rejected_as_no_text() -> None:
    """A data-only document with no fields chosen has nothing to measure: no_text says so."""
    out = _verdict(QualityFilter(), Document(id="p1", data={"title": "x"}, location=LOC))
    assert isinstance(out, Rejection)
    assert out.reason == "no_text"
    assert "fields=" in out.message


def test_reason_codes_are_listed() -> None:
    """Every reason the tests exercise is in QUALITY_REASONS (the documented list)."""
    assert {c[0] for c in CASES} | {"no_text", "repeated_ngrams"} <= set(QUALITY_REASONS)


def test_real_articles_mostly_pass_the_defaults(realdata: Path) -> None:
    """On 181 real news and blog articles (several languages), at least 90% pass the defaults."""
    truth = json.loads(
        (realdata / "article_extraction_benchmark" / "ground-truth.json").read_text("utf-8")
    )
    step = QualityFilter()
    passed = sum(step.check(item["articleBody"]) is None for item in truth.values())
    assert passed / len(truth) >= 0.9


# --- properties -----------------------------------------------------------------------------

_WORDS = st.sampled_from(
    ["the", "cat", "東京", "Москва", "...", "#", "-", "42", "lorem ipsum", "\n"]
)
_TEXTS = st.lists(st.one_of(_WORDS, st.text(max_size=6)), max_size=80).map(" ".join)


@settings(max_examples=50, deadline=None)
@given(st.lists(_TEXTS, min_size=1, max_size=6))
def test_every_record_passes_unchanged_or_is_rejected_once(texts: list[str]) -> None:
    """On generated texts the step keeps the Transformer contract and never alters a record."""
    records = [Document(id=f"d{i}", text=text) for i, text in enumerate(texts)]
    outputs = check_transformer(QualityFilter(min_words=5), records)
    by_id = {r.id: r for r in records}
    for out in outputs:
        if isinstance(out, Rejection):
            assert out.reason in QUALITY_REASONS
        else:
            assert out == by_id[out.id]


def test_pulling_one_output_reads_a_bounded_number_of_inputs() -> None:
    """The step is lazy: the first record out costs one record in."""
    pulled = 0

    def endless() -> Iterator[Record]:
        nonlocal pulled
        while True:
            pulled += 1
            yield Document(id=f"d{pulled}", text=GOOD_EN)

    first = next(iter(QualityFilter().transform(endless())))
    assert isinstance(first, Document)
    assert pulled == 1
