"""Log-likelihood multiple choice (acc, acc_norm) and token loss/accuracy evaluators."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finetune_web.errors import ConfigError
from finetune_web.evaluation import compare, load_evals_jsonl, render_html, render_markdown
from finetune_web.evaluation.loglik import (
    LogLikelihoodChoiceEvaluator,
    TokenLossEvaluator,
    find_options,
)
from finetune_web.interfaces import Evaluator, LogLikelihoodModel, TokenScoringModel
from finetune_web.records import Example, Message
from finetune_web.testing import ScriptedChatModel, check_evaluator


def question(options: Sequence[str], answer: str, name: str = "q") -> Example:
    """A multiple-choice example listing ``options`` as ``A. text`` lines."""
    lines = "\n".join(f"{'ABCDE'[i]}. {text}" for i, text in enumerate(options))
    return Example(
        id=name,
        messages=[
            Message(role="user", content=f"Pick one.\n{lines}\nAnswer:"),
            Message(role="assistant", content=answer),
        ],
    )


@attrs.frozen
class TableModel:
    """A scoring model answering from tables: log-likelihood by reply, token stats by example id."""

    logprobs: dict[str, float] = attrs.field(factory=dict)
    stats: dict[str, tuple[float, int, int]] = attrs.field(factory=dict)
    model_id: str = "table"

    def complete(self, messages: Sequence[Message]) -> Message:
        return Message(role="assistant", content="")

    def loglikelihood(self, context: Sequence[Message], continuation: str) -> tuple[float, int]:
        return self.logprobs[continuation], max(1, len(continuation) // 3)

    def token_stats(self, examples: Sequence[Example]) -> list[tuple[float, int, int]]:
        return [self.stats[example.id] for example in examples]


# Reading the options ------------------------------------------------------------------------


def test_find_options_reads_lines_and_inline_lists() -> None:
    """Options come from lettered lines (several styles) or from one inline list."""
    assert find_options("Q?\nA. red\nB) green\n(C) blue\nAnswer:") == ["red", "green", "blue"]
    assert find_options("Question 0: A. yes B. no C. maybe\nAnswer:") == ["yes", "no", "maybe"]
    text = "A. an old list\nB. of things\nNow the question.\nA. one\nB. two\nC. three"
    assert find_options(text) == ["one", "two", "three"]
    assert find_options("A careful reading. No options here.") == []
    assert find_options("A. x\nB. y\nC. z", letters="AB") == ["x", "y"]


@given(
    st.lists(
        st.text(alphabet="abcdefgh ;:,.-", min_size=1, max_size=20).filter(str.strip),
        min_size=2,
        max_size=5,
    )
)
def test_find_options_round_trips_lettered_lines(options: list[str]) -> None:
    """Any 2-5 options written as ``A. text`` lines are read back, stripped, in order."""
    assert find_options(question(options, "A").messages[0].text) == [o.strip() for o in options]


def test_every_ar_lsat_question_has_five_options_and_a_letter(realdata: Path) -> None:
    """All 230 AR-LSAT questions (openai/evals form) parse into five options and a gold letter."""
    examples = load_evals_jsonl(realdata / "ar_lsat.jsonl")
    evaluator = LogLikelihoodChoiceEvaluator()
    parsed = [evaluator._question(example, index) for index, example in enumerate(examples)]
    assert len(parsed) == 230
    assert all(len(q.options) == 5 for q in parsed)
    assert [q.letters[q.gold] for q in parsed] == [e.messages[-1].text for e in examples]


# acc and acc_norm ------------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=-50, max_value=-0.01), min_size=2, max_size=5, unique=True))
def test_acc_picks_the_highest_summed_logprob(scores: list[float]) -> None:
    """acc is 1 exactly when the reference option has the highest summed log-probability."""
    options = [f"option {i}" for i in range(len(scores))]
    model = TableModel(logprobs=dict(zip(options, scores, strict=True)))
    best = max(range(len(scores)), key=scores.__getitem__)
    examples = [question(options, "ABCDE"[i], name=f"q{i}") for i in range(len(scores))]
    result = LogLikelihoodChoiceEvaluator().evaluate(model, examples)
    assert result.per_example == tuple(1.0 if i == best else 0.0 for i in range(len(scores)))
    assert result.details["predictions"] == ["ABCDE"[best]] * len(scores)
    assert result.details["logprobs"][0] == scores


def test_acc_norm_divides_by_characters_and_can_disagree_with_acc() -> None:
    """A long option with a lower sum but a better per-character score wins under acc_norm."""
    short, long = "Paris", "Paris, the capital city of France"
    model = TableModel(logprobs={short: -6.0, long: -12.0})  # -1.2/char vs about -0.35/char
    examples = [question([short, long], "B")]
    acc = LogLikelihoodChoiceEvaluator().evaluate(model, examples)
    norm = LogLikelihoodChoiceEvaluator.normalized().evaluate(model, examples)
    assert acc.metric == "loglik_acc" and norm.metric == "loglik_acc_norm"
    assert acc.score == 0.0 and norm.score == 1.0
    assert acc.details["acc_norm"] == 1.0 and norm.details["acc"] == 0.0
    assert acc.details["lengths"] == [[len(short), len(long)]]
    assert acc.details["predictions"] == ["A"] and acc.details["predictions_norm"] == ["B"]


def test_letter_continuations_score_the_letters() -> None:
    """continuation="letter" scores "A", "B"... (MMLU style), so acc_norm equals acc."""
    model = TableModel(logprobs={"A": -3.0, "B": -1.0, "C": -2.0})
    result = LogLikelihoodChoiceEvaluator(continuation="letter").evaluate(
        model, [question(["x", "yyyyyyyy", "z"], "B")]
    )
    assert result.score == 1.0 and result.details["acc_norm"] == 1.0


def test_options_from_metadata_and_text_references() -> None:
    """metadata["choices"] overrides the prompt; a reference may be an option's text."""
    example = Example(
        id="m",
        messages=[
            Message(role="user", content="Which is a fruit?"),
            Message(role="assistant", content="pear"),
        ],
        metadata={"choices": ["stone", "pear", "cloud"]},
    )
    model = TableModel(logprobs={"stone": -5.0, "pear": -1.0, "cloud": -3.0})
    assert LogLikelihoodChoiceEvaluator().evaluate(model, [example]).per_example == (1.0,)


def test_examples_without_options_or_reference_are_config_errors() -> None:
    """No options in the prompt, or a reference that is no option, raises a ConfigError."""
    model = TableModel(logprobs={"x": -1.0, "y": -2.0})
    bare = Example(
        id="bare",
        messages=[Message(role="user", content="Why?"), Message(role="assistant", content="A")],
    )
    with pytest.raises(ConfigError, match="found 0 options"):
        LogLikelihoodChoiceEvaluator().evaluate(model, [bare])
    with pytest.raises(ConfigError, match="neither one of the letters"):
        LogLikelihoodChoiceEvaluator().evaluate(model, [question(["x", "y"], "maybe")])


def test_chat_api_models_are_refused_with_a_clear_error() -> None:
    """A model that only returns text (ScriptedChatModel) gets a ConfigError naming the need."""
    scripted = ScriptedChatModel(default="A")
    assert not isinstance(scripted, LogLikelihoodModel | TokenScoringModel)
    with pytest.raises(ConfigError, match="needs a local model"):
        LogLikelihoodChoiceEvaluator().evaluate(scripted, [question(["x", "y"], "A")])
    with pytest.raises(ConfigError, match="needs a local model"):
        TokenLossEvaluator().evaluate(scripted, [question(["x", "y"], "A")])


# Token loss and accuracy --------------------------------------------------------------------


def test_token_loss_is_token_weighted_and_aggregates_like_its_score() -> None:
    """The score is summed loss / tokens; per example its own mean; aggregate() agrees."""
    model = TableModel(stats={"a": (10.0, 1, 10), "b": (2.0, 3, 4), "c": (0.0, 0, 0)})
    examples = [question(["x", "y"], "A", name=n) for n in "abc"]
    loss = check_evaluator(TokenLossEvaluator(), examples, model)
    assert loss.metric == "token_loss" and loss.details["higher_is_better"] is False
    assert loss.score == pytest.approx(12.0 / 14)
    assert loss.per_example == (1.0, 0.5, None)
    assert loss.details["perplexity"] == pytest.approx(math.exp(12.0 / 14))
    evaluator = TokenLossEvaluator()
    assert evaluator.aggregate(loss, range(3)) == loss.score
    assert evaluator.aggregate(loss, [1, 1]) == pytest.approx(0.5)
    accuracy = TokenLossEvaluator.accuracy().evaluate(model, examples)
    assert accuracy.metric == "token_accuracy" and accuracy.details["higher_is_better"] is True
    assert accuracy.score == pytest.approx(4 / 14)
    assert accuracy.per_example == (0.1, 0.75, None)


def test_compare_reads_lower_loss_as_better() -> None:
    """With a loss, a tuned model with lower loss wins, and a higher loss is a regression."""
    names = [f"e{i}" for i in range(30)]
    examples = [question(["x", "y"], "A", name=n) for n in names]
    worse = TableModel(stats=dict.fromkeys(names, (20.0, 1, 10)), model_id="worse")
    better = TableModel(stats={n: (5.0 + i % 3, 6, 10) for i, n in enumerate(names)}, model_id="b")
    evaluators: list[Evaluator] = [TokenLossEvaluator(), TokenLossEvaluator.accuracy()]
    comparison = compare(worse, better, examples, evaluators, seed=0, n_resamples=200)
    loss = comparison.metric("token_loss")
    assert loss.difference < 0 and loss.significant and loss.improved
    assert (loss.wins, loss.losses) == (30, 0)
    assert comparison.to_json()["metrics"][0]["higher_is_better"] is False
    assert "yes, better" in render_markdown(comparison)
    assert 'class="num win"' in render_html(comparison)
    backwards = compare(better, worse, examples, evaluators, seed=0, general=examples)
    assert backwards.metric("token_loss").losses == 30
    assert backwards.retention is not None
    assert backwards.retention.regressions == ("token_loss", "token_accuracy")


# With a real (tiny) model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A LocalChatModel over a tiny random model built offline."""
    pytest.importorskip("torch")
    from finetune_web.backends.local import build_tiny_model
    from finetune_web.backends.local.chat import LocalChatModel

    path = build_tiny_model(tmp_path_factory.mktemp("loglik-tiny"))
    return LocalChatModel(model=str(path), device="cpu")


def test_tiny_model_acc_follows_direct_log_probabilities(tiny: LogLikelihoodModel) -> None:
    """On a real model, acc/acc_norm predictions are the argmax of torch-computed log-probs."""
    import torch

    loaded = tiny.load()  # type: ignore[attr-defined]
    options = ["a lamp", "a warm kettle that boils water", "the river", "Paris"]
    example = question(options, "B")
    result = check_evaluator(LogLikelihoodChoiceEvaluator(), [example], tiny)
    prompt = loaded.encoder.render(example.messages[:-1], generation_prompt=True)
    start = len(loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    sums = []
    for option in options:
        ids = loaded.tokenizer(prompt + option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([ids])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        sums.append(sum(float(logprobs[p - 1, ids[p]]) for p in range(start, len(ids))))
    assert result.details["logprobs"][0] == pytest.approx(sums, abs=1e-4)
    best = max(range(4), key=sums.__getitem__)
    best_norm = max(range(4), key=lambda i: sums[i] / len(options[i]))
    assert result.details["predictions"] == ["ABCD"[best]]
    assert result.details["predictions_norm"] == ["ABCD"[best_norm]]
    assert result.score == (1.0 if best == 1 else 0.0)


def test_tiny_model_token_loss_equals_torch_cross_entropy(tiny: TokenScoringModel) -> None:
    """The token loss of an example equals torch cross-entropy over its assistant tokens."""
    import torch

    loaded = tiny.load()  # type: ignore[attr-defined]
    example = question(["x", "y"], "The answer is B, because it fits.")
    result = check_evaluator(TokenLossEvaluator(), [example], tiny)
    tokenized = loaded.encoder.encode(example)
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([tokenized.input_ids])).logits[0].float()
    expected = torch.nn.functional.cross_entropy(
        logits[:-1], torch.tensor(tokenized.labels[1:]), ignore_index=-100
    )
    assert result.score == pytest.approx(float(expected), rel=1e-5)
    assert result.per_example[0] == pytest.approx(float(expected), rel=1e-5)


def test_tiny_model_through_compare_and_the_evals_file(tiny: object, tmp_path: Path) -> None:
    """compare() hands scoring through to local models; evals JSONL questions work as they are."""
    path = tmp_path / "mc.jsonl"
    rows = [
        {
            "input": [{"role": "user", "content": "Which?\nA. lamp\nB. kettle\nAnswer:"}],
            "ideal": "A",
        },
        {"input": [{"role": "user", "content": "Pick: A. yes B. no C. maybe"}], "ideal": "C"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    examples = load_evals_jsonl(path)
    evaluators: list[Evaluator] = [
        LogLikelihoodChoiceEvaluator(),
        LogLikelihoodChoiceEvaluator.normalized(),
        TokenLossEvaluator(),
    ]
    comparison = compare(tiny, tiny, examples, evaluators, seed=0, n_resamples=50)  # type: ignore[arg-type]
    assert [m.metric for m in comparison.metrics] == ["loglik_acc", "loglik_acc_norm", "token_loss"]
    assert all(m.difference == 0 and m.ties == 2 for m in comparison.metrics)
