"""Paired bootstrap, base-versus-tuned comparison and the knowledge-retention check."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError
from finetune_web.evaluation import (
    BleuEvaluator,
    ExactMatchEvaluator,
    MultipleChoiceEvaluator,
    RougeEvaluator,
    check_retention,
    compare,
    paired_bootstrap,
)
from finetune_web.records import Example, Message
from finetune_web.testing import ScriptedChatModel

scores = st.floats(0.0, 1.0, allow_nan=False)
paired = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(scores | st.none(), min_size=n, max_size=n),
        st.lists(scores | st.none(), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(paired, st.integers(0, 2**32 - 1))
def test_interval_contains_the_observed_difference(
    pair: tuple[list[float | None], list[float | None]], seed: int
) -> None:
    """The bootstrap interval always contains the observed difference (mean of paired gaps)."""
    base, tuned = pair
    interval = paired_bootstrap(base, tuned, seed=seed, n_resamples=200)
    assert interval.low <= interval.difference <= interval.high
    kept = [(b, t) for b, t in zip(base, tuned, strict=True) if b is not None and t is not None]
    assert interval.n_pairs == len(kept)
    assert -1.0 <= interval.low <= interval.high <= 1.0


@settings(max_examples=30, deadline=None)
@given(paired, st.integers(0, 2**32 - 1))
def test_same_seed_gives_the_same_interval(
    pair: tuple[list[float | None], list[float | None]], seed: int
) -> None:
    """The same scores and seed give the same interval, to the last bit."""
    base, tuned = pair
    first = paired_bootstrap(base, tuned, seed=seed, n_resamples=100)
    assert paired_bootstrap(base, tuned, seed=seed, n_resamples=100) == first


def test_clear_improvement_is_significant_and_noise_is_not() -> None:
    """A large consistent gain is significant; identical models give a zero-width interval at 0."""
    base = [0.0] * 40 + [1.0] * 10
    tuned = [1.0] * 40 + [1.0] * 10
    gain = paired_bootstrap(base, tuned, seed=1)
    assert gain.difference == pytest.approx(0.8) and gain.significant
    same = paired_bootstrap(base, base, seed=1)
    assert (same.difference, same.low, same.high, same.significant) == (0.0, 0.0, 0.0, False)
    noisy = paired_bootstrap([0.0, 1.0] * 10, [1.0, 0.0] * 9 + [1.0, 1.0], seed=1)
    assert not noisy.significant


def test_bootstrap_rejects_unpaired_scores_and_bad_settings() -> None:
    """Scores of different lengths, or a confidence outside (0, 1), are configuration errors."""
    with pytest.raises(ConfigError, match="same examples"):
        paired_bootstrap([1.0], [1.0, 0.0], seed=0)
    with pytest.raises(ConfigError, match="confidence"):
        paired_bootstrap([1.0], [1.0], seed=0, confidence=1.0)


def mc_example(n: int, answer: str) -> Example:
    """A multiple-choice example whose question text is unique to ``n``."""
    return Example(
        messages=[
            Message(role="user", content=f"Question {n}: pick A-E."),
            Message(role="assistant", content=answer),
        ],
        id=f"q{n}",
    )


TASK = [mc_example(n, "ABCDE"[n % 5]) for n in range(30)]


class CountingModel:
    """A scripted model that counts how often each prompt is asked."""

    def __init__(self, answers: dict[str, str], model_id: str) -> None:
        self.inner = ScriptedChatModel(answers=answers, default="no idea", model_id=model_id)
        self.model_id = model_id
        self.calls: list[str] = []

    def complete(self, messages: Sequence[Message]) -> Message:
        self.calls.append(messages[-1].text)
        return self.inner.complete(messages)


def _answers(examples: list[Example], right: int) -> dict[str, str]:
    """Right on examples with index < ``right``, a wrong letter on the others."""
    out = {}
    for n, example in enumerate(examples):
        ideal = example.messages[-1].text
        out[example.messages[0].text] = (
            ideal if n < right else "ABCDE"[("ABCDE".index(ideal) + 1) % 5]
        )
    return out


def test_compare_scores_both_models_on_the_same_examples_once_each() -> None:
    """Each model answers each prompt once, whatever the number of evaluators; results pair up."""
    base = CountingModel(_answers(TASK, 10), "base")
    tuned = CountingModel(_answers(TASK, 28), "tuned")
    evaluators = [MultipleChoiceEvaluator(), ExactMatchEvaluator(), RougeEvaluator()]
    result = compare(base, tuned, TASK, evaluators, seed=3, n_resamples=300)
    assert sorted(base.calls) == sorted(tuned.calls) == sorted(e.messages[0].text for e in TASK)
    choice = result.metric("multiple_choice")
    assert (choice.base.score, choice.tuned.score) == (10 / 30, 28 / 30)
    assert (choice.wins, choice.ties, choice.losses) == (18, 12, 0)
    assert choice.difference == pytest.approx(18 / 30) and choice.significant
    assert [s.example_id for s in result.samples] == [e.id for e in TASK]
    assert (result.samples[20].base_output, result.samples[20].tuned_output) == ("B", "A")
    assert result.scores() == {
        "base": {m.metric: m.base.score for m in result.metrics},
        "tuned": {m.metric: m.tuned.score for m in result.metrics},
    }
    summary = result.to_json()
    assert summary["metrics"][0]["significant"] is True and summary["n_examples"] == 30


def test_corpus_metric_difference_is_the_corpus_score_difference() -> None:
    """For BLEU the difference is corpus BLEU(tuned) - corpus BLEU(base), resampled as such."""
    examples = [mc_example(n, f"the answer to question {n} is here") for n in range(12)]
    base = ScriptedChatModel(default="an answer to some question", model_id="b")
    tuned = ScriptedChatModel(
        answers={e.messages[0].text: e.messages[-1].text for e in examples[:8]},
        default="the answer is elsewhere",
        model_id="t",
    )
    result = compare(base, tuned, examples, [BleuEvaluator()], seed=0, n_resamples=200)
    bleu = result.metric("bleu")
    assert bleu.difference == bleu.tuned.score - bleu.base.score
    assert bleu.interval.low <= bleu.difference <= bleu.interval.high


def test_retention_flags_a_regression_beyond_the_interval() -> None:
    """On a general set, a tuned model much worse than its base is flagged; an equal one is not."""
    general = [mc_example(100 + n, "ABCDE"[n % 5]) for n in range(40)]
    base = ScriptedChatModel(answers=_answers(general, 36), model_id="base")
    forgot = ScriptedChatModel(answers=_answers(general, 12), model_id="forgot")
    kept = ScriptedChatModel(answers=_answers(general, 35), model_id="kept")
    evaluators = [MultipleChoiceEvaluator()]
    flagged = check_retention(base, forgot, general, evaluators, seed=5, n_resamples=300)
    assert flagged.regressed and flagged.regressions == ("multiple_choice",)
    fine = check_retention(base, kept, general, evaluators, seed=5, n_resamples=300)
    assert not fine.regressed
    lenient = check_retention(base, forgot, general, evaluators, seed=5, tolerance=0.9)
    assert not lenient.regressed


def test_compare_runs_the_retention_check_when_given_a_general_set() -> None:
    """compare(general=...) attaches the retention check, using the same evaluators and seed."""
    general = [mc_example(200 + n, "ABCDE"[n % 5]) for n in range(20)]
    base = ScriptedChatModel(answers=_answers(TASK + general, 50), model_id="base")
    tuned = ScriptedChatModel(answers=_answers(TASK, 30) | _answers(general, 2), model_id="t")
    result = compare(
        base, tuned, TASK, [MultipleChoiceEvaluator()], seed=2, n_resamples=200, general=general
    )
    assert result.retention is not None and result.retention.regressed
    assert result.to_json()["retention"]["regressions"] == ["multiple_choice"]


def test_compare_rejects_no_evaluators_and_duplicate_metric_names() -> None:
    """compare() needs evaluators with distinct metric names."""
    model = ScriptedChatModel(default="A")
    with pytest.raises(ConfigError, match="at least one"):
        compare(model, model, TASK, [], seed=0)
    with pytest.raises(ConfigError, match="same metric name"):
        compare(model, model, TASK, [ExactMatchEvaluator(), ExactMatchEvaluator()], seed=0)
