"""BLEU and chrF through sacrebleu, with its defaults and its signature recorded.

``score`` is sacrebleu's *corpus* score (n-gram counts added over all
examples, then one score), as papers report it; ``per_example`` holds the
sentence scores.  The two differ, above all on short texts: corpus BLEU of
the single pair "Zhongjian Plaza" / "Zhongjian Plaza" is 0 (no 4-gram at
all) while its sentence BLEU, computed with an effective n-gram order as
sacrebleu's ``sentence_bleu`` does, is 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.evaluation._common import answers_and_references, import_optional
from finetune_web.interfaces import ChatModel
from finetune_web.records import EvalResult, Example

__all__ = ["BleuEvaluator", "ChrfEvaluator"]

_REQUIREMENT = "sacrebleu>=2.4"


def _sacrebleu(needed_by: str) -> Any:
    return import_optional("sacrebleu", requirement=_REQUIREMENT, needed_by=needed_by)


@attrs.frozen(kw_only=True)
class _SacrebleuEvaluator:
    """What BLEU and chrF share: scoring, evaluating a model, re-aggregating for a bootstrap."""

    name: str

    def _corpus_metric(self) -> Any:
        raise NotImplementedError

    def _sentence_metric(self) -> Any:
        return self._corpus_metric()

    def score_texts(
        self, hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
    ) -> EvalResult:
        """Score texts directly (no model).

        Args:
            hypotheses: the system outputs.
            references: for each hypothesis, its reference or a sequence of references.

        Returns:
            The result, with ``model`` set to ``""``; ``details`` holds the
            signature, sacrebleu's score line and each example's n-gram counts.

        Raises:
            ConfigError: the two sequences differ in length.
            MissingDependencyError: sacrebleu is not installed.
        """
        if len(hypotheses) != len(references):
            raise ConfigError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        if not hypotheses:
            return EvalResult(metric=self.name, model="", score=0.0, details={"n": 0})
        corpus_metric, sentence_metric = self._corpus_metric(), self._sentence_metric()
        alternatives = [(ref,) if isinstance(ref, str) else tuple(ref) for ref in references]
        width = max(len(refs) for refs in alternatives)
        # sacrebleu takes reference *streams*; None pads a segment with fewer references.
        streams = [
            [refs[k] if k < len(refs) else None for refs in alternatives] for k in range(width)
        ]
        corpus = corpus_metric.corpus_score(list(hypotheses), streams)
        sentences = [
            float(sentence_metric.sentence_score(hyp, list(refs)).score)
            for hyp, refs in zip(hypotheses, alternatives, strict=True)
        ]
        stats = corpus_metric._extract_corpus_statistics(list(hypotheses), streams)
        details: dict[str, Any] = {
            "n": len(sentences),
            "scale": 100,
            "signature": str(corpus_metric.get_signature()),
            "corpus": str(corpus),
            "sufficient_stats": [[int(value) for value in row] for row in stats],
        }
        if sentence_metric is not corpus_metric:
            details["sentence_signature"] = str(sentence_metric.get_signature())
        return EvalResult(
            metric=self.name,
            model="",
            score=float(corpus.score),
            per_example=sentences,
            details=details,
        )

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model``'s answers against the examples' reference answers.

        Raises:
            ConfigError: an example does not end with its reference answer.
            MissingDependencyError: sacrebleu is not installed.
        """
        hypotheses, references = answers_and_references(model, examples)
        return attrs.evolve(self.score_texts(hypotheses, references), model=model.model_id)

    def aggregate(self, result: EvalResult, indices: Sequence[int]) -> float:
        """Return the corpus score of the examples at ``indices`` (for a paired bootstrap)."""
        rows: list[list[int]] = result.details.get("sufficient_stats", [])
        if not indices or not rows:
            return 0.0
        total = [0] * len(rows[0])
        for index in indices:
            for position, value in enumerate(rows[index]):
                total[position] += value
        return float(self._corpus_metric()._compute_score_from_stats(total).score)


@attrs.frozen(kw_only=True)
class BleuEvaluator(_SacrebleuEvaluator):
    """BLEU (sacrebleu): corpus BLEU as ``score``, sentence BLEU per example, 0-100.

    The defaults are sacrebleu's: 13a tokenization, exponential smoothing,
    cased, 4-grams.  ``details["signature"]`` is the corpus metric's signature
    (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:...``) and
    ``details["sentence_signature"]`` the sentence metric's (effective order
    on, as sacrebleu's ``sentence_bleu``).

    Attributes:
        tokenize: sacrebleu tokenizer name; ``None`` keeps sacrebleu's default (13a).
        lowercase: compare lower-cased text.
        smooth_method: ``exp``, ``floor``, ``add-k`` or ``none``.
        name: the metric name in results.
    """

    tokenize: str | None = None
    lowercase: bool = False
    smooth_method: str = "exp"
    name: str = "bleu"

    def _bleu(self, *, effective_order: bool) -> Any:
        return _sacrebleu("BLEU").BLEU(
            lowercase=self.lowercase,
            tokenize=self.tokenize,
            smooth_method=self.smooth_method,
            effective_order=effective_order,
        )

    def _corpus_metric(self) -> Any:
        return self._bleu(effective_order=False)

    def _sentence_metric(self) -> Any:
        return self._bleu(effective_order=True)


@attrs.frozen(kw_only=True)
class ChrfEvaluator(_SacrebleuEvaluator):
    """chrF (sacrebleu): corpus chrF as ``score``, sentence chrF per example, 0-100.

    The defaults are sacrebleu's chrF (character 6-grams, beta 2); set
    ``word_order=2`` for chrF++.  ``details["signature"]`` records the settings.

    Attributes:
        char_order: character n-gram order.
        word_order: word n-gram order (2 gives chrF++).
        beta: weight of recall against precision.
        lowercase: compare lower-cased text.
        whitespace: keep whitespace in character n-grams.
        name: the metric name in results.
    """

    char_order: int = 6
    word_order: int = 0
    beta: int = 2
    lowercase: bool = False
    whitespace: bool = False
    name: str = "chrf"

    def _corpus_metric(self) -> Any:
        return _sacrebleu("chrF").CHRF(
            char_order=self.char_order,
            word_order=self.word_order,
            beta=self.beta,
            lowercase=self.lowercase,
            whitespace=self.whitespace,
        )
