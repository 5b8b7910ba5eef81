"""Exact match: openai/evals ``Match`` semantics, or a normalised comparison."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

import attrs

from finetune_web.evaluation._common import generate, mean, reference_texts, split_reference
from finetune_web.interfaces import ChatModel
from finetune_web.records import EvalResult, Example

__all__ = ["ExactMatchEvaluator", "normalize_text"]

_SPACES = re.compile(r"\s+")


def normalize_text(
    text: str, *, case: bool = True, punctuation: bool = True, whitespace: bool = True
) -> str:
    """Return ``text`` normalised for a lenient comparison.

    Args:
        text: the text.
        case: fold case (``str.casefold``: "Straße" equals "STRASSE").
        punctuation: drop every Unicode punctuation character (categories ``P*``).
        whitespace: collapse runs of whitespace to one space and strip both ends.

    Returns:
        The normalised text.
    """
    if case:
        text = text.casefold()
    if punctuation:
        text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    if whitespace:
        text = _SPACES.sub(" ", text).strip()
    return text


@attrs.frozen(kw_only=True)
class ExactMatchEvaluator:
    """Scores 1 when the model's answer matches the reference, else 0.

    The default is openai/evals ``Match``: the raw answer *starts with* the
    reference (any of them, for examples with an ``ideal`` list).  ``mode="full"``
    asks for the whole answer instead; the ``ignore_*`` switches normalise both
    sides first (see :func:`normalize_text`); :meth:`normalized` turns all three on.

    Attributes:
        mode: ``"prefix"`` (the answer starts with the reference) or ``"full"``.
        ignore_case: fold case on both sides.
        ignore_punctuation: drop punctuation on both sides.
        ignore_whitespace: collapse and strip whitespace on both sides.
        name: the metric name in results.
    """

    mode: Literal["prefix", "full"] = attrs.field(
        default="prefix", validator=attrs.validators.in_(("prefix", "full"))
    )
    ignore_case: bool = False
    ignore_punctuation: bool = False
    ignore_whitespace: bool = False
    name: str = "exact_match"

    @classmethod
    def normalized(
        cls, *, mode: Literal["prefix", "full"] = "full", name: str = "exact_match_normalized"
    ) -> ExactMatchEvaluator:
        """Return an evaluator ignoring case, punctuation and whitespace differences.

        Args:
            mode: ``"full"`` (default) or ``"prefix"``.
            name: the metric name in results.
        """
        return cls(
            mode=mode,
            ignore_case=True,
            ignore_punctuation=True,
            ignore_whitespace=True,
            name=name,
        )

    def _prepare(self, text: str) -> str:
        return normalize_text(
            text,
            case=self.ignore_case,
            punctuation=self.ignore_punctuation,
            whitespace=self.ignore_whitespace,
        )

    def matches(self, answer: str, references: Sequence[str]) -> bool:
        """Say whether ``answer`` matches any of ``references`` under this evaluator's rules."""
        prepared = self._prepare(answer)
        for reference in references:
            wanted = self._prepare(reference)
            if prepared == wanted or (self.mode == "prefix" and prepared.startswith(wanted)):
                return True
        return False

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model`` on ``examples``.

        Returns:
            The accuracy as ``score`` and 1.0/0.0 per example; ``details`` holds
            the settings and the number of matches.

        Raises:
            ConfigError: an example does not end with its reference answer.
        """
        split = [split_reference(example, index) for index, example in enumerate(examples)]
        replies = generate(model, [prompt for prompt, _ in split])
        scores: list[float | None] = [
            1.0 if self.matches(reply.text, reference_texts(example, reference)) else 0.0
            for example, (_, reference), reply in zip(examples, split, replies, strict=True)
        ]
        return EvalResult(
            metric=self.name,
            model=model.model_id,
            score=mean(scores),
            per_example=scores,
            details={
                "mode": self.mode,
                "ignore_case": self.ignore_case,
                "ignore_punctuation": self.ignore_punctuation,
                "ignore_whitespace": self.ignore_whitespace,
                "matches": sum(1 for score in scores if score == 1.0),
                "n": len(scores),
            },
        )
