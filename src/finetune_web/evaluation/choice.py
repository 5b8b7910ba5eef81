"""Multiple choice by generation: ask any chat model, then extract the option letter it chose."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import attrs

from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.evaluation._common import generate, mean, split_reference
from finetune_web.interfaces import ChatModel
from finetune_web.records import EvalResult, Example

__all__ = ["MultipleChoiceEvaluator", "extract_choice"]

# Markdown emphasis, quotes and brackets around a bare answer ("**(B)**", "`C`", "'D'.").
_DECORATION = "*_`'\"()[]{}<>. :;,!\t\n"


def _valid_letters(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value or not value.isupper() or not value.isalpha() or len(set(value)) != len(value):
        raise ConfigError(f"letters must be distinct upper-case letters, not {value!r}")


def extract_choice(text: str, letters: str = "ABCDE") -> str | None:
    """Return the option letter an answer chose, or ``None`` when it cannot be told.

    Tried in order:

    1. the whole answer is one letter, perhaps decorated (``"B"``, ``"(C)."``,
       ``"**D**"``, ``"e"``);
    2. the last statement such as ``"the answer is (C)"`` or ``"Answer: B"``;
       failing that, the last ``"option E"`` or ``"correct choice: A"``;
    3. the answer opens with a labelled letter (``"B. Because..."``, ``"(A) ..."``).

    A lone capital inside prose (``"A careful reading..."``) is not taken as a choice.

    Args:
        text: the model's answer.
        letters: the valid option letters.

    Returns:
        The upper-case letter, or ``None`` (unparseable).
    """
    bare = text.strip(_DECORATION)
    if len(bare) == 1 and bare.upper() in letters:
        return bare.upper()
    group = f"[{re.escape(letters)}]"
    for keywords in ("answer", "option|choice"):
        statement = re.compile(
            rf"\b(?:{keywords})\b(?:\s+(?:is|would\s+be|should\s+be))?\s*[:=\-]?\s*"
            rf"[*_`'\"(\[]*({group})(?![A-Za-z0-9])",
            re.IGNORECASE,
        )
        found = [m.group(1) for m in statement.finditer(text) if m.group(1) in letters]
        if found:
            return found[-1]
    opening = re.match(rf"\s*[*_`]*[(\[]?({group})(?:[)\].:]|\s*-)(?:\s|$)", text)
    return opening.group(1) if opening else None


@attrs.frozen(kw_only=True)
class MultipleChoiceEvaluator:
    """Accuracy on multiple-choice questions, for any chat model (generate, then extract).

    The model answers the prompt as it stands (the prompt lists the options);
    :func:`extract_choice` reads the letter from its answer.  An answer with
    no readable letter scores 0 and is counted in ``details["unparseable"]``.
    The reference (the example's last assistant message) must be a letter.

    Attributes:
        letters: the valid option letters.
        name: the metric name in results.
    """

    letters: str = attrs.field(default="ABCDE", validator=_valid_letters)
    name: str = "multiple_choice"

    def _reference(self, text: str, example: Example, index: int) -> str:
        letter = extract_choice(text, self.letters)
        if letter is None:
            raise ConfigError(
                f"the reference answer {text[:40]!r} is not one of the letters {self.letters}",
                ErrorContext(record_id=example.id or None, index=index),
            )
        return letter

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model`` on ``examples``.

        Returns:
            Accuracy as ``score``, 1.0/0.0 per example; ``details`` holds
            ``unparseable`` (how many answers had no readable letter),
            ``predictions`` (the letter read from each answer, ``None`` when
            unparseable) and ``answer_counts`` (how often each letter was chosen).

        Raises:
            ConfigError: an example does not end with a reference letter.
        """
        split = [split_reference(example, index) for index, example in enumerate(examples)]
        references = [
            self._reference(text, example, index)
            for index, (example, (_, text)) in enumerate(zip(examples, split, strict=True))
        ]
        replies = generate(model, [prompt for prompt, _ in split])
        predictions = [extract_choice(reply.text, self.letters) for reply in replies]
        scores: list[float | None] = [
            1.0 if predicted == wanted else 0.0
            for predicted, wanted in zip(predictions, references, strict=True)
        ]
        counts = Counter(p for p in predictions if p is not None)
        return EvalResult(
            metric=self.name,
            model=model.model_id,
            score=mean(scores),
            per_example=scores,
            details={
                "letters": self.letters,
                "n": len(scores),
                "correct": sum(1 for score in scores if score == 1.0),
                "unparseable": sum(1 for p in predictions if p is None),
                "predictions": predictions,
                "answer_counts": {letter: counts[letter] for letter in self.letters},
            },
        )
