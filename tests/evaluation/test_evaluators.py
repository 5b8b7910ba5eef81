"""The evaluators: semantics, the Evaluator contract, and the ranges of their scores."""

from __future__ import annotations

import logging
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.evaluation import (
    BleuEvaluator,
    ChrfEvaluator,
    ExactMatchEvaluator,
    JudgeEvaluator,
    MultipleChoiceEvaluator,
    RougeEvaluator,
    extract_choice,
    normalize_text,
    parse_grade,
    unicode_rouge_tokens,
)
from finetune_web.interfaces import Evaluator
from finetune_web.records import Example, Message
from finetune_web.testing import ScriptedChatModel, check_evaluator

# Text as models write it: any script, punctuation, whitespace (no surrogates).
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def qa(question: str, answer: str, ident: str = "", **metadata: object) -> Example:
    """An evaluation example: system, user question, reference answer."""
    return Example(
        messages=[
            Message(role="system", content="Answer briefly."),
            Message(role="user", content=question),
            Message(role="assistant", content=answer),
        ],
        id=ident or question,
        metadata=metadata,
    )


EXAMPLES = [
    qa("Capital of France?", "Paris"),
    qa("2 + 2?", "4"),
    qa("Colour of the sky?", "Blue."),
    qa("日本の首都は?", "東京です。"),
    qa("Столица России?", "Москва — столица России."),
]


def _grader() -> ScriptedChatModel:
    return ScriptedChatModel(
        default="The answer matches the reference.\nGrade: 5", model_id="judge"
    )


ALL_EVALUATORS: list[Evaluator] = [
    ExactMatchEvaluator(),
    ExactMatchEvaluator.normalized(),
    BleuEvaluator(),
    ChrfEvaluator(),
    RougeEvaluator(),
    RougeEvaluator(rouge_type="rouge1", use_stemmer=True),
    JudgeEvaluator(grader=_grader()),
]


@pytest.mark.parametrize("evaluator", ALL_EVALUATORS, ids=lambda e: type(e).__name__)
def test_check_evaluator_passes_and_echo_scores_top(evaluator: Evaluator) -> None:
    """finetune_web.testing.check_evaluator passes; echoing each reference scores the top."""
    result = check_evaluator(evaluator, EXAMPLES)
    top = 100.0 if result.details.get("scale") == 100 else 1.0
    assert result.model == "scripted"
    assert result.score == pytest.approx(top)


def test_check_evaluator_passes_for_multiple_choice() -> None:
    """check_evaluator passes for MultipleChoiceEvaluator on letter-answer examples."""
    examples = [qa(f"Question {n}? A. x B. y C. z", "ABC"[n % 3]) for n in range(6)]
    result = check_evaluator(MultipleChoiceEvaluator(letters="ABC"), examples)
    assert result.score == 1.0 and result.details["unparseable"] == 0


def test_exact_match_follows_openai_evals_prefix_semantics() -> None:
    """Default exact match = openai/evals Match: the raw answer starts with the ideal answer."""
    model = ScriptedChatModel(
        answers={
            "Capital of France?": "Paris, of course.",
            "2 + 2?": " 4",
            "Colour of the sky?": "blue",
        },
        default="?",
    )
    result = ExactMatchEvaluator().evaluate(model, EXAMPLES[:3])
    assert result.per_example == (1.0, 0.0, 0.0)
    normalized = ExactMatchEvaluator.normalized(mode="prefix").evaluate(model, EXAMPLES[:3])
    assert normalized.per_example == (1.0, 1.0, 1.0)
    full = ExactMatchEvaluator.normalized().evaluate(model, EXAMPLES[:3])
    assert full.per_example == (0.0, 1.0, 1.0)


def test_exact_match_accepts_any_ideal_answer_from_metadata() -> None:
    """An example's metadata["ideal"] list (openai/evals) gives several acceptable answers."""
    example = qa("Largest planet?", "Jupiter", ideal=["Jupiter", "jupiter", "The planet Jupiter"])
    model = ScriptedChatModel(default="The planet Jupiter!")
    assert ExactMatchEvaluator().evaluate(model, [example]).score == 1.0


def test_switches_normalise_separately() -> None:
    """Each ignore_* switch normalises only its own aspect."""
    assert normalize_text("  A,  b!\n", case=False, punctuation=False) == "A, b!"
    assert normalize_text("Straße", punctuation=False, whitespace=False) == "strasse"
    only_case = ExactMatchEvaluator(mode="full", ignore_case=True)
    assert only_case.matches("PARIS", ["paris"]) and not only_case.matches("Paris.", ["paris"])


@given(texts)
def test_exact_match_of_a_text_with_itself_is_one(text: str) -> None:
    """Whatever the text and mode, a text matches itself."""
    for evaluator in (
        ExactMatchEvaluator(),
        ExactMatchEvaluator(mode="full"),
        ExactMatchEvaluator.normalized(),
        ExactMatchEvaluator.normalized(mode="prefix"),
    ):
        assert evaluator.matches(text, [text])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=4))
def test_scores_stay_within_their_ranges(pairs: list[tuple[str, str]]) -> None:
    """Exact match and ROUGE lie in [0, 1], BLEU and chrF in [0, 100], per example and overall."""
    hypotheses = [h for h, _ in pairs]
    references = [r for _, r in pairs]
    for evaluator, top in (
        (BleuEvaluator(), 100.0),
        (ChrfEvaluator(), 100.0),
        (RougeEvaluator(), 1.0),
    ):
        result = evaluator.score_texts(hypotheses, references)
        for score in (result.score, *result.per_example):
            assert score is not None and 0.0 <= score <= top + 1e-9
    examples = [qa(f"q{n}", r or "x") for n, (_, r) in enumerate(pairs)]
    model = ScriptedChatModel(answers={f"q{n}": h for n, (h, _) in enumerate(pairs)})
    result = ExactMatchEvaluator.normalized().evaluate(model, examples)
    assert 0.0 <= result.score <= 1.0 and set(result.per_example) <= {0.0, 1.0}


def test_japanese_and_russian_rouge_is_not_zero() -> None:
    """A near-identical Japanese or Russian pair scores well; rouge-score's tokenizer gives 0."""
    hypotheses = ["東京は日本の首都です。", "Москва — столица России."]
    references = ["東京は日本の首都だ。", "Москва - столица Российской Федерации."]
    unicode = RougeEvaluator().score_texts(hypotheses, references)
    assert all(score is not None and score > 0.5 for score in unicode.per_example)
    library = RougeEvaluator(tokenizer="rouge_score").score_texts(hypotheses, references)
    assert library.per_example == (0.0, 0.0)
    assert library.details["untokenizable_references"] == 2


def test_rouge_score_tokenizer_warns_when_text_has_no_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With rouge-score's tokenizer, references without ASCII tokens are logged as a warning."""
    with caplog.at_level(logging.WARNING, logger="finetune_web.evaluation"):
        RougeEvaluator(tokenizer="rouge_score").score_texts(["Привет"], ["Привет"])
    assert "gave no ROUGE tokens" in caplog.text


def test_unicode_tokens_split_unspaced_scripts_and_keep_words() -> None:
    """CJK and Thai become characters (with their marks); Cyrillic and accented words stay whole."""
    assert unicode_rouge_tokens("東京タワー") == ["東", "京", "タ", "ワ", "ー"]
    assert unicode_rouge_tokens("Москва, РОССИЯ!") == ["москва", "россия"]
    assert unicode_rouge_tokens("สวัสดี") == ["ส", "วั", "ส", "ดี"]
    assert unicode_rouge_tokens("café naïve") == ["café", "naïve"]


@given(st.text(st.characters(max_codepoint=127), max_size=60), st.booleans())
def test_unicode_tokens_equal_rouge_score_tokens_on_ascii(text: str, stem: bool) -> None:
    """On ASCII text the Unicode tokenizer gives exactly rouge-score's tokens, stemmed or not."""
    from nltk.stem import porter
    from rouge_score import tokenize

    stemmer = porter.PorterStemmer() if stem else None
    expected = tokenize.tokenize(text, stemmer)
    assert unicode_rouge_tokens(text, stemmer.stem if stemmer else None) == expected


def test_bleu_records_defaults_and_both_signatures() -> None:
    """BLEU details hold sacrebleu's signatures: defaults (corpus), effective order (sentences)."""
    result = BleuEvaluator().score_texts(["the cat sat"], ["the cat sat down"])
    assert result.details["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert "eff:yes" in result.details["sentence_signature"]
    chrf = ChrfEvaluator().score_texts(["the cat sat"], ["the cat sat down"])
    assert chrf.details["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no")


@pytest.mark.parametrize("evaluator", [BleuEvaluator(), ChrfEvaluator()], ids=["bleu", "chrf"])
def test_corpus_aggregate_of_all_examples_is_the_score(evaluator: BleuEvaluator) -> None:
    """aggregate() over every example reproduces the corpus score exactly (bootstrap contract)."""
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
    result = evaluator.score_texts(hyps, refs)
    assert evaluator.aggregate(result, range(3)) == result.score
    assert evaluator.aggregate(result, []) == 0.0


def test_missing_sacrebleu_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without sacrebleu, BLEU raises MissingDependencyError with the exact pip command."""
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "finetune-web\[eval\]"'):
        BleuEvaluator().score_texts(["a"], ["a"])


def test_missing_rouge_score_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rouge-score, ROUGE raises MissingDependencyError naming rouge-score."""
    monkeypatch.setitem(sys.modules, "rouge_score.rouge_scorer", None)
    with pytest.raises(MissingDependencyError, match="rouge-score"):
        RougeEvaluator().score_texts(["a"], ["a"])


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(c).", "C"),
        ("**D**", "D"),
        ("The answer is (C).", "C"),
        ("Answer: E", "E"),
        ("Option A is wrong, so the answer is B", "B"),
        ("I'd pick option D.", "D"),
        ("A. Because the passage says so", "A"),
        ("A careful reading shows no answer", None),
        ("answer: Because", None),
        ("F", None),
        ("", None),
    ],
)
def test_extract_choice(answer: str, letter: str | None) -> None:
    """The option letter is read from bare, decorated, stated and labelled answers only."""
    assert extract_choice(answer) == letter


def test_multiple_choice_rejects_a_reference_that_is_not_a_letter() -> None:
    """A reference that is no option letter is a ConfigError naming the example."""
    with pytest.raises(ConfigError, match="not one of the letters") as info:
        MultipleChoiceEvaluator().evaluate(ScriptedChatModel(default="A"), [qa("q", "Paris")])
    assert info.value.context.record_id == "q"


def test_example_without_reference_is_a_config_error() -> None:
    """An example that does not end with an assistant answer cannot be evaluated."""
    example = Example(messages=[Message(role="user", content="hi")], id="e1")
    with pytest.raises(ConfigError, match="reference assistant answer"):
        ExactMatchEvaluator().evaluate(ScriptedChatModel(default="x"), [example])


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("Reasoning...\nGrade: 4", "4"),
        ("Looks right.\n\n**5**\n", "5"),
        ("ok\nverdict - pass.", "PASS"),
        ("The grade is 5.\nI would say 4/5", None),
        ("5\nbut maybe 3 or 4", None),
        ("", None),
    ],
)
def test_parse_grade_reads_only_the_last_line(reply: str, grade: str | None) -> None:
    """The grade is the grader's last non-empty line, label and decoration allowed."""
    assert parse_grade(reply, ["1", "2", "3", "4", "5", "PASS", "FAIL"]) == grade


def test_judge_uses_its_own_grader_and_counts_invalid_grades() -> None:
    """The grader (another model) sees the rubric; invalid grades score None and are counted."""
    examples = EXAMPLES[:3]
    model = ScriptedChatModel(default="Paris", model_id="under-test")
    seen: list[str] = []

    class Grader:
        model_id = "grader-model"

        def complete(self, messages: list[Message]) -> Message:
            seen.append(messages[-1].text)
            verdicts = ["Fine.\n5", "Hmm.\n2", "I cannot decide."]
            return Message(role="assistant", content=verdicts[len(seen) - 1])

    result = JudgeEvaluator(grader=Grader()).evaluate(model, examples)
    assert result.per_example == (1.0, 0.25, None)
    assert result.score == pytest.approx(0.625)
    assert result.details["invalid"] == 1
    assert result.details["grader"] == "grader-model"
    assert result.model == "under-test"
    assert "Capital of France?" in seen[0] and "[Reference answer]\nParis" in seen[0]
    assert "Answer briefly." not in seen[0]  # the system message is not shown


def test_judge_rubric_must_use_answer_and_known_fields() -> None:
    """A rubric without {answer}, or with an unknown field, is rejected at construction."""
    with pytest.raises(ConfigError, match="answer"):
        JudgeEvaluator(grader=_grader(), rubric="Rate {question}")
    with pytest.raises(ConfigError, match="only the fields"):
        JudgeEvaluator(grader=_grader(), rubric="{answer} {context}")
    custom = JudgeEvaluator(
        grader=ScriptedChatModel(default="CORRECT"),
        rubric="Is {answer} right? {{json}} Reply CORRECT or WRONG.",
        grades={"CORRECT": 1.0, "WRONG": 0.0},
    )
    assert custom.evaluate(ScriptedChatModel(default="x"), EXAMPLES[:1]).score == 1.0
