"""LLM-as-judge: a grader model rates each answer against a rubric; the grade is its last line."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.evaluation._common import generate, mean, prompt_text, split_reference
from finetune_web.interfaces import ChatModel
from finetune_web.records import EvalResult, Example, Message

__all__ = ["DEFAULT_GRADES", "DEFAULT_RUBRIC", "JudgeEvaluator", "parse_grade"]

#: The default rubric: fields ``{question}``, ``{answer}`` and ``{reference}``.
DEFAULT_RUBRIC = """You are grading an answer to a question against a reference answer.

[Question]
{question}

[Reference answer]
{reference}

[Answer to grade]
{answer}

Judge whether the answer is correct and complete compared with the reference; wording
may differ. Explain your reasoning in a few sentences. Then, on the last line, write
only the grade, one of:
5 = correct and complete; 4 = correct, minor omissions; 3 = partly correct;
2 = mostly wrong; 1 = wrong or no answer."""

#: Grade -> score for :data:`DEFAULT_RUBRIC`.
DEFAULT_GRADES: Mapping[str, float] = {"1": 0.0, "2": 0.25, "3": 0.5, "4": 0.75, "5": 1.0}

_FIELDS = frozenset(("question", "answer", "reference"))
_LABEL = re.compile(
    r"^(?:final\s+)?(?:grade|score|verdict|rating|answer)\s*(?:is)?\s*[:=\-]?\s*", re.IGNORECASE
)
_EDGES = string.punctuation.replace("+", "").replace("-", "") + " \t"


def parse_grade(text: str, grades: Sequence[str]) -> str | None:
    """Read the grade from a grader's reply: its last non-empty line must be one grade.

    The line may carry a label and decoration (``"Grade: 4"``, ``"**B**"``,
    ``"Verdict - PASS."``); matching ignores case.  Anything else on the line
    (``"4/5"``, ``"between 3 and 4"``) makes the grade invalid.

    Args:
        text: the grader's reply.
        grades: the valid grades.

    Returns:
        The grade as spelled in ``grades``, or ``None`` when invalid.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1].strip(_EDGES)
    line = _LABEL.sub("", line).strip(_EDGES)
    by_folded = {grade.casefold(): grade for grade in grades}
    return by_folded.get(line.casefold())


def _check_rubric(_: object, __: attrs.Attribute[str], value: str) -> None:
    names = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
    unknown = names - _FIELDS
    if unknown or "answer" not in names:
        raise ConfigError(
            f"a judge rubric must use {{answer}} and only the fields {sorted(_FIELDS)}; "
            f"it uses {sorted(names)} (write literal braces as {{{{ and }}}})"
        )


def _check_grades(_: object, __: attrs.Attribute[Mapping[str, float]], value: Any) -> None:
    if not value or any(not str(grade).strip() for grade in value):
        raise ConfigError("a judge needs at least one non-empty grade")


@attrs.frozen(kw_only=True)
class JudgeEvaluator:
    """Scores answers with a grader model (LLM-as-judge).

    The model under test answers each prompt; the grader, which may be
    another model, gets the rubric filled with the question (the prompt
    without its system message), the reference and the answer, and ends its
    reply with a grade on the last line (see :func:`parse_grade`).  A grade
    maps to a score through ``grades``.  An invalid grade scores ``None``
    (not scorable: left out of the mean and counted in
    ``details["invalid"]``).

    Attributes:
        grader: the judging chat model (use temperature 0 for repeatable grades).
        rubric: the grader's instructions, a ``str.format`` template with
            ``{answer}`` and optionally ``{question}`` and ``{reference}``.
        grades: grade text -> score (0-1).
        name: the metric name in results.
    """

    grader: ChatModel
    rubric: str = attrs.field(default=DEFAULT_RUBRIC, validator=_check_rubric)
    grades: Mapping[str, float] = attrs.field(
        factory=lambda: dict(DEFAULT_GRADES), converter=dict, validator=_check_grades
    )
    name: str = "judge"

    def grading_prompt(self, prompt: Sequence[Message], answer: str, reference: str) -> Message:
        """Return the message sent to the grader for one answer."""
        text = self.rubric.format(question=prompt_text(prompt), answer=answer, reference=reference)
        return Message(role="user", content=text)

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Have ``model`` answer and the grader grade each answer.

        Returns:
            The mean score of the valid grades as ``score``; per example the
            grade's score, or ``None`` for an invalid grade.  ``details`` holds
            the grader's id, ``grades`` (each grade read, ``None`` when
            invalid), ``invalid`` and ``grade_counts``.

        Raises:
            ConfigError: an example does not end with its reference answer.
        """
        split = [split_reference(example, index) for index, example in enumerate(examples)]
        replies = generate(model, [prompt for prompt, _ in split])
        requests = [
            (self.grading_prompt(prompt, reply.text, reference),)
            for (prompt, reference), reply in zip(split, replies, strict=True)
        ]
        verdicts = generate(self.grader, requests)
        read = [parse_grade(verdict.text, list(self.grades)) for verdict in verdicts]
        scores: list[float | None] = [
            None if grade is None else float(self.grades[grade]) for grade in read
        ]
        counts = Counter(grade for grade in read if grade is not None)
        return EvalResult(
            metric=self.name,
            model=model.model_id,
            score=mean(scores),
            per_example=scores,
            details={
                "grader": self.grader.model_id,
                "n": len(scores),
                "invalid": sum(1 for grade in read if grade is None),
                "grades": read,
                "grade_counts": {grade: counts[grade] for grade in self.grades},
            },
        )
