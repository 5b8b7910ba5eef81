"""Evaluators that read a local model's token probabilities: log-likelihood choice and token loss.

:class:`LogLikelihoodChoiceEvaluator` ranks the options of a multiple-choice
question by how likely the model finds each as its reply, the way
lm-evaluation-harness scores ``multiple_choice`` tasks (``acc`` and
``acc_norm``).  :class:`TokenLossEvaluator` measures the loss and token
accuracy of held-out examples, the figures fine-tuning reports.  Both need
a model that exposes probabilities
(:class:`~finetune_web.interfaces.LogLikelihoodModel`,
:class:`~finetune_web.interfaces.TokenScoringModel`), such as
:class:`~finetune_web.backends.local.LocalChatModel`; a chat API that only
returns text raises :class:`~finetune_web.errors.ConfigError`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.evaluation._common import Prompt, mean, split_reference
from finetune_web.evaluation.choice import _valid_letters, extract_choice
from finetune_web.interfaces import ChatModel, LogLikelihoodModel, TokenScoringModel
from finetune_web.records import EvalResult, Example, Message

__all__ = [
    "LogLikelihoodChoiceEvaluator",
    "TokenLossEvaluator",
    "find_options",
    "loglikelihoods",
    "scoring_error",
]

#: One request: the prompt and the reply to score.
LogLikelihoodRequest = tuple[Sequence[Message], str]


@runtime_checkable
class _BatchLogLikelihood(Protocol):
    def loglikelihood_many(
        self, requests: Sequence[LogLikelihoodRequest]
    ) -> list[tuple[float, int]]: ...


def scoring_error(model: ChatModel, protocol: type, needed_by: str) -> ConfigError:
    """Return the error for a model that cannot give the token probabilities an evaluator needs.

    Args:
        model: the model given to the evaluator.
        protocol: the interface it lacks
            (:class:`~finetune_web.interfaces.LogLikelihoodModel` or
            :class:`~finetune_web.interfaces.TokenScoringModel`).
        needed_by: the evaluator's name, for the message.
    """
    return ConfigError(
        f"the {needed_by} evaluator reads token probabilities, which model "
        f"{model.model_id!r} ({type(model).__name__}) does not give: it needs a local model "
        "(finetune_web.backends.local.LocalChatModel, or `--model local:PATH` on the command "
        f"line) implementing {protocol.__name__}; chat APIs return text only"
    )


def loglikelihoods(
    model: LogLikelihoodModel, requests: Sequence[LogLikelihoodRequest]
) -> list[tuple[float, int]]:
    """Score every ``(context, continuation)``: in one call when the model batches, else in turn.

    Raises:
        ConfigError: the model returned the wrong number of scores.
    """
    if isinstance(model, _BatchLogLikelihood):
        scores = list(model.loglikelihood_many(requests))
        if len(scores) != len(requests):
            raise ConfigError(
                f"{type(model).__name__}.loglikelihood_many returned {len(scores)} scores "
                f"for {len(requests)} requests"
            )
        return scores
    return [model.loglikelihood(context, continuation) for context, continuation in requests]


def _option_runs(markers: list[tuple[str, int, int]], letters: str) -> list[list[int]]:
    """Group marker indexes into runs lettered A, B, C... in order."""
    runs: list[list[int]] = []
    for index, (letter, _, _) in enumerate(markers):
        if letter == letters[0]:
            runs.append([index])
            continue
        run = runs[-1] if runs else []
        if run and run[-1] == index - 1 and len(run) < len(letters) and letter == letters[len(run)]:
            run.append(index)
    return [run for run in runs if len(run) >= 2]


_LINE = re.compile(r"^[ \t]*[(\[]?([A-Z])[)\].:][ \t]+(\S[^\n]*?)[ \t]*$", re.MULTILINE)
_INLINE = re.compile(r"(?<![A-Za-z0-9])[(\[]?([A-Z])[)\].:](?=[ \t])")


def find_options(text: str, letters: str = "ABCDE") -> list[str]:
    """Return the options a question lists, in letter order (empty when it lists none).

    Options are read from lines such as ``A. text``, ``B) text``, ``(C) text``
    or ``D: text``, lettered in order from the first letter; failing that,
    from one line such as ``A. yes B. no C. maybe``.  The last such list in
    the text wins (a passage may hold lettered lines before the question).

    Args:
        text: the question (usually the last user message).
        letters: the option letters, in order.
    """
    lines = [(m.group(1), m.start(2), m.end(2)) for m in _LINE.finditer(text)]
    lines = [item for item in lines if item[0] in letters]
    runs = _option_runs(lines, letters)
    if runs:
        return [text[lines[i][1] : lines[i][2]] for i in runs[-1]]
    markers = [(m.group(1), m.start(), m.end()) for m in _INLINE.finditer(text)]
    markers = [item for item in markers if item[0] in letters]
    runs = _option_runs(markers, letters)
    if not runs:
        return []
    run = [markers[i] for i in runs[-1]]
    options = []
    for position, (_, _, start) in enumerate(run):
        end = run[position + 1][1] if position + 1 < len(run) else len(text)
        options.append(text[start:end].split("\n", 1)[0].strip())
    return options


def _argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (as numpy's argmax)."""
    return max(range(len(values)), key=lambda index: (values[index], -index))


@attrs.frozen
class _Question:
    prompt: Prompt
    letters: str
    options: tuple[str, ...]
    gold: int


@attrs.frozen(kw_only=True)
class LogLikelihoodChoiceEvaluator:
    """Multiple-choice accuracy by log-likelihood, as lm-evaluation-harness computes it.

    For each option the model scores the log-probability of the option as
    its reply to the prompt; the prediction is the option with the highest
    sum (``acc``) or the highest sum divided by the option's length in
    characters (``acc_norm``: lm-evaluation-harness divides by ``len()`` of
    the choice string, so characters, not bytes or tokens).  Both are
    computed; ``metric`` picks the one the result's score carries.

    Examples are in openai/evals multiple-choice form, as for
    :class:`~finetune_web.evaluation.MultipleChoiceEvaluator`: the last user
    message lists the options (``A. text`` lines, or ``A. yes B. no`` on one
    line) and the reference answer is a letter (or an option's exact text).
    ``metadata["choices"]`` (a list of texts, lettered A, B...) overrides
    the options read from the prompt.

    Attributes:
        metric: ``"acc"`` or ``"acc_norm"``.
        continuation: ``"option"`` scores each option's text (as lm-evaluation-harness
            does for ARC or HellaSwag); ``"letter"`` scores the option's letter alone
            (as for MMLU), where ``acc_norm`` equals ``acc``.
        letters: the valid option letters.
        name: the metric name in results (default ``loglik_<metric>``).
    """

    metric: Literal["acc", "acc_norm"] = attrs.field(
        default="acc", validator=attrs.validators.in_(("acc", "acc_norm"))
    )
    continuation: Literal["option", "letter"] = attrs.field(
        default="option", validator=attrs.validators.in_(("option", "letter"))
    )
    letters: str = attrs.field(default="ABCDE", validator=_valid_letters)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: f"loglik_{self.metric}", takes_self=True)
    )

    @classmethod
    def normalized(
        cls,
        *,
        continuation: Literal["option", "letter"] = "option",
        letters: str = "ABCDE",
        name: str = "loglik_acc_norm",
    ) -> LogLikelihoodChoiceEvaluator:
        """Return the evaluator whose score is ``acc_norm`` (length-normalised)."""
        return cls(metric="acc_norm", continuation=continuation, letters=letters, name=name)

    def _question(self, example: Example, index: int) -> _Question:
        prompt, reference = split_reference(example, index)
        context = ErrorContext(record_id=example.id or None, index=index)
        choices = example.metadata.get("choices")
        if (
            isinstance(choices, list | tuple)
            and choices
            and all(isinstance(c, str) for c in choices)
        ):
            options = [str(choice) for choice in choices]
        else:
            asked = next((m.text for m in reversed(prompt) if m.role == "user"), "")
            options = find_options(asked, self.letters)
        if len(options) < 2 or len(options) > len(self.letters):
            raise ConfigError(
                f"found {len(options)} options in the question; list 2 to {len(self.letters)} "
                f"options as lines 'A. text', 'B. text'... in the last user message, or give "
                'them as metadata["choices"]',
                context,
            )
        letters = self.letters[: len(options)]
        texts = [option.strip() for option in options]
        if reference.strip() in texts:
            gold = texts.index(reference.strip())
        else:
            letter = extract_choice(reference, letters)
            if letter is None:
                raise ConfigError(
                    f"the reference answer {reference[:40]!r} is neither one of the letters "
                    f"{letters} nor the text of an option",
                    context,
                )
            gold = letters.index(letter)
        return _Question(prompt=prompt, letters=letters, options=tuple(options), gold=gold)

    def _scored(self, question: _Question) -> list[str]:
        return list(question.letters) if self.continuation == "letter" else list(question.options)

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model`` on ``examples``.

        Returns:
            ``acc`` or ``acc_norm`` (per ``metric``) as ``score``, 1.0/0.0 per
            example; ``details`` holds both accuracies (``acc``, ``acc_norm``)
            and both per-example lists (``per_example_acc``,
            ``per_example_acc_norm``), the letters predicted by each
            (``predictions``, ``predictions_norm``), each option's summed
            log-probability (``logprobs``), token count (``token_counts``)
            and length in characters (``lengths``).

        Raises:
            ConfigError: the model gives no log-likelihoods (not a local
                model), or an example has no readable options or reference.
        """
        if not isinstance(model, LogLikelihoodModel):
            raise scoring_error(model, LogLikelihoodModel, self.name)
        questions = [self._question(example, index) for index, example in enumerate(examples)]
        requests = [(q.prompt, text) for q in questions for text in self._scored(q)]
        scores = iter(loglikelihoods(model, requests))
        acc: list[float | None] = []
        acc_norm: list[float | None] = []
        logprobs: list[list[float]] = []
        token_counts: list[list[int]] = []
        lengths: list[list[int]] = []
        predictions: list[str] = []
        predictions_norm: list[str] = []
        for question in questions:
            texts = self._scored(question)
            pairs = [next(scores) for _ in texts]
            sums = [float(total) for total, _ in pairs]
            sizes = [len(text) for text in texts]
            best = _argmax(sums)
            best_norm = _argmax([total / size for total, size in zip(sums, sizes, strict=True)])
            acc.append(1.0 if best == question.gold else 0.0)
            acc_norm.append(1.0 if best_norm == question.gold else 0.0)
            predictions.append(question.letters[best])
            predictions_norm.append(question.letters[best_norm])
            logprobs.append(sums)
            token_counts.append([count for _, count in pairs])
            lengths.append(sizes)
        chosen = acc if self.metric == "acc" else acc_norm
        counts = Counter(predictions if self.metric == "acc" else predictions_norm)
        return EvalResult(
            metric=self.name,
            model=model.model_id,
            score=mean(chosen),
            per_example=chosen,
            details={
                "metric": self.metric,
                "continuation": self.continuation,
                "normalization": "characters",
                "n": len(chosen),
                "correct": sum(1 for score in chosen if score == 1.0),
                "acc": mean(acc),
                "acc_norm": mean(acc_norm),
                "per_example_acc": acc,
                "per_example_acc_norm": acc_norm,
                "predictions": predictions,
                "predictions_norm": predictions_norm,
                "answer_counts": {letter: counts[letter] for letter in self.letters},
                "logprobs": logprobs,
                "token_counts": token_counts,
                "lengths": lengths,
            },
        )


@attrs.frozen(kw_only=True)
class TokenLossEvaluator:
    """Token loss (or token accuracy) of held-out examples under the model, teacher-forced.

    The tokens scored are those fine-tuning trains on: the content and
    end-of-turn token of every assistant message whose ``weight`` is not 0.
    The score is token-weighted over the whole set (summed loss / tokens),
    as a training run reports its validation loss, so it is compared with
    its bootstrap recomputed the same way (see :meth:`aggregate`); each
    example's own mean is its per-example score (``None`` when it has no
    token left to score).  **Lower loss is better**: ``details["higher_is_better"]``
    says so, and comparisons and reports read it.

    Attributes:
        metric: ``"loss"`` (mean cross-entropy per token, natural log) or
            ``"accuracy"`` (share of tokens that are the model's argmax prediction).
        name: the metric name in results (default ``token_loss`` or ``token_accuracy``).
    """

    metric: Literal["loss", "accuracy"] = attrs.field(
        default="loss", validator=attrs.validators.in_(("loss", "accuracy"))
    )
    name: str = attrs.field(
        default=attrs.Factory(lambda self: f"token_{self.metric}", takes_self=True)
    )

    @classmethod
    def accuracy(cls, *, name: str = "token_accuracy") -> TokenLossEvaluator:
        """Return the evaluator whose score is the token accuracy (higher is better)."""
        return cls(metric="accuracy", name=name)

    def _figure(self, loss: float, correct: float, count: int) -> float | None:
        if count == 0:
            return None
        return (loss if self.metric == "loss" else correct) / count

    def aggregate(self, result: EvalResult, indices: Sequence[int]) -> float:
        """Return the token-weighted score of the examples at ``indices`` (repeats count again)."""
        losses, correct, counts = (
            result.details["loss_sums"],
            result.details["correct_tokens"],
            result.details["token_counts"],
        )
        figure = self._figure(
            math.fsum(losses[i] for i in indices),
            math.fsum(correct[i] for i in indices),
            sum(counts[i] for i in indices),
        )
        return 0.0 if figure is None else figure

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model`` on ``examples``.

        Returns:
            The token-weighted loss or accuracy as ``score`` and each
            example's own figure; ``details`` holds ``higher_is_better``,
            both figures for the whole set (``loss``, ``token_accuracy``, and
            ``perplexity`` = exp(loss)), ``tokens``, and per example
            ``loss_sums``, ``correct_tokens`` and ``token_counts``.

        Raises:
            ConfigError: the model cannot score tokens (not a local model).
            RecordError: an example has no assistant message to score.
        """
        if not isinstance(model, TokenScoringModel):
            raise scoring_error(model, TokenScoringModel, self.name)
        stats = list(model.token_stats(examples))
        if len(stats) != len(examples):
            raise ConfigError(
                f"{type(model).__name__}.token_stats returned {len(stats)} results "
                f"for {len(examples)} examples"
            )
        losses = [float(loss) for loss, _, _ in stats]
        correct = [int(hits) for _, hits, _ in stats]
        counts = [int(count) for _, _, count in stats]
        per_example = [
            self._figure(*figures) for figures in zip(losses, correct, counts, strict=True)
        ]
        tokens = sum(counts)
        loss = math.fsum(losses) / tokens if tokens else 0.0
        details = {
            "metric": self.metric,
            "higher_is_better": self.metric == "accuracy",
            "n": len(examples),
            "tokens": tokens,
            "loss": loss,
            "perplexity": math.exp(loss) if loss < 700 else math.inf,
            "token_accuracy": sum(correct) / tokens if tokens else 0.0,
            "loss_sums": losses,
            "correct_tokens": correct,
            "token_counts": counts,
        }
        result = EvalResult(
            metric=self.name,
            model=model.model_id,
            score=0.0,
            per_example=per_example,
            details=details,
        )
        return attrs.evolve(result, score=self.aggregate(result, range(len(examples))))
