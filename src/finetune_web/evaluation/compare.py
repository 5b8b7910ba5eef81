"""Compare a fine-tuned model with its base on the same examples, and check what it forgot."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from finetune_web.errors import ConfigError
from finetune_web.evaluation._common import (
    CorpusEvaluator,
    Prompt,
    generate,
    prompt_text,
    split_reference,
)
from finetune_web.evaluation._compare_results import (
    Comparison,
    MetricComparison,
    Retention,
    SamplePair,
    result_higher_is_better,
)
from finetune_web.evaluation.bootstrap import paired_bootstrap
from finetune_web.evaluation.loglik import LogLikelihoodRequest, loglikelihoods, scoring_error
from finetune_web.interfaces import (
    ChatModel,
    Evaluator,
    LogLikelihoodModel,
    TokenScoringModel,
    step_name,
)
from finetune_web.records import EvalResult, Example, Message, canonical_content

__all__ = [
    "Comparison",
    "MetricComparison",
    "Retention",
    "SamplePair",
    "check_retention",
    "compare",
]


def _key(prompt: Sequence[Message]) -> str:
    return canonical_content(Example(messages=prompt)).decode()


@attrs.define
class _Recorder:
    """Wraps a model for one comparison: asks each prompt once, remembers every answer."""

    model: ChatModel
    answers: dict[str, Message] = attrs.field(factory=dict)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def complete(self, messages: Sequence[Message]) -> Message:
        return self.complete_many([messages])[0]

    def complete_many(self, prompts: Sequence[Sequence[Message]]) -> list[Message]:
        keys = [_key(prompt) for prompt in prompts]
        missing: dict[str, Prompt] = {}
        for key, prompt in zip(keys, prompts, strict=True):
            if key not in self.answers:
                missing.setdefault(key, tuple(prompt))
        if missing:
            replies = generate(self.model, list(missing.values()))
            self.answers.update(zip(missing, replies, strict=True))
        return [self.answers[key] for key in keys]

    # Scoring passes straight through, for evaluators that read token probabilities.

    def loglikelihood(self, context: Sequence[Message], continuation: str) -> tuple[float, int]:
        return self.loglikelihood_many([(context, continuation)])[0]

    def loglikelihood_many(
        self, requests: Sequence[LogLikelihoodRequest]
    ) -> list[tuple[float, int]]:
        if not isinstance(self.model, LogLikelihoodModel):
            raise scoring_error(self.model, LogLikelihoodModel, "log-likelihood")
        return loglikelihoods(self.model, requests)

    def token_stats(self, examples: Sequence[Example]) -> list[tuple[float, int, int]]:
        if not isinstance(self.model, TokenScoringModel):
            raise scoring_error(self.model, TokenScoringModel, "token scoring")
        return self.model.token_stats(examples)


def _metric_name(evaluator: Evaluator, result: EvalResult) -> str:
    return result.metric or step_name(evaluator)


def _compare_metric(
    evaluator: Evaluator,
    base: EvalResult,
    tuned: EvalResult,
    *,
    seed: int,
    n_resamples: int,
    confidence: float,
) -> MetricComparison:
    statistic = None
    if isinstance(evaluator, CorpusEvaluator):
        corpus = evaluator

        def statistic(indices: Sequence[int]) -> float:
            return corpus.aggregate(tuned, indices) - corpus.aggregate(base, indices)

    interval = paired_bootstrap(
        base.per_example,
        tuned.per_example,
        seed=seed,
        n_resamples=n_resamples,
        confidence=confidence,
        statistic=statistic,
    )
    sign = 1.0 if result_higher_is_better(tuned) else -1.0
    pairs = [
        (sign * b, sign * t)
        for b, t in zip(base.per_example, tuned.per_example, strict=True)
        if b is not None and t is not None
    ]
    return MetricComparison(
        metric=_metric_name(evaluator, tuned),
        base=base,
        tuned=tuned,
        interval=interval,
        wins=sum(1 for b, t in pairs if t > b),
        losses=sum(1 for b, t in pairs if t < b),
        ties=sum(1 for b, t in pairs if t == b),
    )


def compare(
    base: ChatModel,
    tuned: ChatModel,
    examples: Sequence[Example],
    evaluators: Sequence[Evaluator],
    *,
    seed: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    general: Sequence[Example] | None = None,
    tolerance: float = 0.0,
) -> Comparison:
    """Evaluate both models on the same examples and bound each metric's difference.

    Each model answers each distinct prompt once, whatever the number of
    evaluators; every evaluator then scores the same answers.  For each
    metric a seeded paired bootstrap (see :func:`paired_bootstrap`) gives
    the difference tuned - base with its interval; corpus metrics (BLEU,
    chrF) are recomputed on each resample.

    Args:
        base: the model before fine-tuning.
        tuned: the fine-tuned model.
        examples: held-out task examples, each ending with its reference answer.
        evaluators: the metrics; their names must differ.
        seed: the bootstrap seed.
        n_resamples: bootstrap resamples per metric.
        confidence: the intervals' level.
        general: a general held-out set for :func:`check_retention`, run with
            the same evaluators, seed and settings.
        tolerance: the drop allowed on the general set.

    Returns:
        The comparison.

    Raises:
        ConfigError: no evaluator, two metrics with one name, or an example
            without a reference answer.
    """
    if not evaluators:
        raise ConfigError("compare() needs at least one evaluator")
    examples = tuple(examples)
    recorders = _Recorder(base), _Recorder(tuned)
    metrics: list[MetricComparison] = []
    for evaluator in evaluators:
        results = [evaluator.evaluate(recorder, examples) for recorder in recorders]
        metrics.append(
            _compare_metric(
                evaluator, *results, seed=seed, n_resamples=n_resamples, confidence=confidence
            )
        )
    names = [m.metric for m in metrics]
    if len(set(names)) != len(names):
        raise ConfigError(f"two evaluators report the same metric name: {names}; rename one")
    samples = []
    for index, example in enumerate(examples):
        prompt, reference = split_reference(example, index)
        outputs = [recorder.answers.get(_key(prompt)) for recorder in recorders]
        samples.append(
            SamplePair(
                index=index,
                example_id=example.id or f"#{index}",
                prompt=prompt_text(prompt),
                reference=reference,
                base_output=None if outputs[0] is None else outputs[0].text,
                tuned_output=None if outputs[1] is None else outputs[1].text,
            )
        )
    retention = None
    if general is not None:
        retention = check_retention(
            base,
            tuned,
            general,
            evaluators,
            seed=seed,
            n_resamples=n_resamples,
            confidence=confidence,
            tolerance=tolerance,
        )
    return Comparison(
        base_model=base.model_id,
        tuned_model=tuned.model_id,
        metrics=tuple(metrics),
        samples=tuple(samples),
        seed=seed,
        n_resamples=n_resamples,
        confidence=confidence,
        retention=retention,
    )


def check_retention(
    base: ChatModel,
    tuned: ChatModel,
    general: Sequence[Example],
    evaluators: Sequence[Evaluator],
    *,
    seed: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    tolerance: float = 0.0,
) -> Retention:
    """Check that fine-tuning did not cost general skills.

    Compares both models on a general held-out set; a metric regressed when
    the upper bound of its interval is below ``-tolerance`` (the tuned model
    is worse by more than ``tolerance`` beyond what noise explains), or, for
    a metric where lower is better, when the lower bound is above ``tolerance``.

    Args:
        general: general held-out examples (not from the fine-tuning task).
        tolerance: the drop allowed, in each metric's units (>= 0).
        base, tuned, evaluators, seed, n_resamples, confidence: as for :func:`compare`.

    Returns:
        The check, with the metrics that regressed.

    Raises:
        ConfigError: ``tolerance`` is negative, or as :func:`compare`.
    """
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0, not {tolerance}")
    comparison = compare(
        base,
        tuned,
        general,
        evaluators,
        seed=seed,
        n_resamples=n_resamples,
        confidence=confidence,
    )
    regressions = tuple(
        m.metric
        for m in comparison.metrics
        if (m.interval.high < -tolerance if m.higher_is_better else m.interval.low > tolerance)
    )
    return Retention(comparison=comparison, tolerance=tolerance, regressions=regressions)
