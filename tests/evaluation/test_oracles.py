"""Published reference values reproduced exactly: sacrebleu/rouge-score oracles and AR-LSAT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_web.evaluation import (
    BleuEvaluator,
    MultipleChoiceEvaluator,
    RougeEvaluator,
    load_evals_jsonl,
)
from finetune_web.testing import ScriptedChatModel, check_evaluator

REALDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"
pytestmark = pytest.mark.skipif(
    not REALDATA.is_dir(), reason="../shared/realdata is absent (a user's clone): no oracles"
)


def _cases(name: str) -> list[dict[str, Any]]:
    data = json.loads((REALDATA / "metric_oracles" / "metric_oracles.json").read_text())
    return [case for case in data["cases"] if case["name"] == name]


def test_sacrebleu_readme_corpus_bleu_with_two_reference_streams() -> None:
    """Corpus BLEU of sacrebleu's README case (two reference streams): score and signature exact."""
    (case,) = _cases("sacrebleu_readme_corpus_bleu")
    references = list(zip(*case["refs_streams"], strict=True))
    result = BleuEvaluator().score_texts(case["hyps"], references)
    assert result.score == case["score"]
    assert result.details["signature"] == case["signature"]
    assert result.details["corpus"] == case["str"]
    stats = result.details["sufficient_stats"]
    assert [sum(row[2 + n] for row in stats) for n in range(4)] == case["counts"]
    assert [sum(row[6 + n] for row in stats) for n in range(4)] == case["totals"]


def test_corpus_bleu_with_one_reference_stream() -> None:
    """Corpus BLEU with one reference per hypothesis matches the oracle score and string."""
    (case,) = _cases("corpus_bleu_single_ref_stream")
    result = BleuEvaluator().score_texts(case["hyps"], case["refs_streams"][0])
    assert result.score == case["score"]
    assert result.details["corpus"] == case["str"]


def test_sentence_and_corpus_bleu_on_one_pair() -> None:
    """On one pair, the per-example (sentence) and corpus scores equal sacrebleu's (issue 98)."""
    (case,) = _cases("sentence_vs_corpus_bleu_issue98")
    result = BleuEvaluator().score_texts([case["hyp"]], [case["ref"]])
    assert result.score == case["corpus_bleu_default"]
    assert result.per_example == (case["sentence_bleu_default"],)
    assert result.details["corpus"] == case["corpus_bleu_str"]


@pytest.mark.parametrize("index", [0, 1])
def test_short_identical_strings_corpus_versus_sentence_bleu(index: int) -> None:
    """Short identical strings: corpus BLEU 0 or 100 as the oracle says, sentence BLEU 100."""
    case = _cases("short_identical_issue278")[index]
    result = BleuEvaluator().score_texts([case["hyp"]], [case["ref"]])
    assert result.score == case["corpus_bleu"]
    assert result.per_example == (case["sentence_bleu"],)


def _rouge_cases() -> list[dict[str, Any]]:
    return _cases("rouge_score") if REALDATA.is_dir() else []


@pytest.mark.parametrize("tokenizer", ["rouge_score", "unicode"])
@pytest.mark.parametrize("case", _rouge_cases(), ids=lambda c: f"{c['target'][:12]}")
def test_rouge_oracles(case: dict[str, Any], tokenizer: str) -> None:
    """Every rouge-score oracle is reproduced exactly, with both tokenizers.

    The one deliberate difference: the Unicode tokenizer reads the Thai
    case, which rouge-score's ASCII tokenizer scores 0 (the oracle records
    that 0); identical Thai text then scores 1.
    """
    thai = not case["target"].isascii()
    for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        evaluator = RougeEvaluator(
            rouge_type=kind, use_stemmer=case["use_stemmer"], tokenizer=tokenizer
        )
        result = evaluator.score_texts([case["prediction"]], [case["target"]])
        got = result.details["scores"][kind]
        if tokenizer == "unicode" and thai:
            assert got == {"precision": 1.0, "recall": 1.0, "fmeasure": 1.0}
        else:
            assert got == case["scores"][kind]
            assert result.score == case["scores"][kind]["fmeasure"]


def _table(examples: list[Any]) -> tuple[dict[str, str], int, int]:
    """A fixed answer table: right on every 3rd row, unparseable on every 7th, else wrong."""
    answers: dict[str, str] = {}
    correct = unparseable = 0
    for row, example in enumerate(examples):
        ideal = example.messages[-1].text
        prompt = example.messages[-2].text
        if row % 3 == 0:
            answers[prompt] = f"Let me work through it. The answer is ({ideal})."
            correct += 1
        elif row % 7 == 0:
            answers[prompt] = "I am not sure; none of them seems right."
            unparseable += 1
        else:
            wrong = "ABCDE"[("ABCDE".index(ideal) + 1 + row % 4) % 5]
            answers[prompt] = wrong
    return answers, correct, unparseable


def test_ar_lsat_scripted_accuracy_and_unparseable_count() -> None:
    """On AR-LSAT, a scripted model answering from a fixed table gets exactly the implied score.

    Rows 0, 3, 6... answer right (in prose), rows divisible by 7 but not 3
    give no letter, the rest a wrong letter: accuracy = right / 230 and the
    unparseable count is exact.
    """
    examples = load_evals_jsonl(REALDATA / "ar_lsat.jsonl")
    assert len(examples) == 230
    prompts = {example.messages[-2].text for example in examples}
    assert len(prompts) == 230  # the table can key on the question text
    answers, correct, unparseable = _table(examples)
    model = ScriptedChatModel(answers=answers, model_id="table")
    result = check_evaluator(MultipleChoiceEvaluator(), examples, model)
    assert (correct, unparseable) == (77, 22)  # ceil(230/3); 33 sevens - 11 twenty-ones
    assert result.score == correct / 230
    assert result.details["correct"] == correct
    assert result.details["unparseable"] == unparseable
    assert sum(result.details["answer_counts"].values()) == 230 - unparseable
    assert result.per_example == tuple(1.0 if row % 3 == 0 else 0.0 for row in range(230))


def test_ar_lsat_references_are_letters_and_echo_scores_one() -> None:
    """Every AR-LSAT ideal is one of A-E, and echoing the references scores exactly 1."""
    examples = load_evals_jsonl(REALDATA / "ar_lsat.jsonl")
    assert {example.messages[-1].text for example in examples} <= set("ABCDE")
    assert [m.role for m in examples[0].messages] == ["system", "user", "assistant"]
    result = check_evaluator(MultipleChoiceEvaluator(), examples)
    assert result.score == 1.0 and result.details["unparseable"] == 0
