"""ROUGE-1/2/L through rouge-score, with a tokenizer that also reads non-Latin text.

rouge-score's own tokenizer keeps only ``[a-z0-9]``: Japanese, Russian,
Greek or Thai text becomes no tokens at all and scores 0 whatever the model
said.  :func:`unicode_rouge_tokens` keeps every letter and digit of every
script, and splits scripts written without spaces (Chinese, Japanese, Thai,
Lao, Khmer, Myanmar) into single characters.  On ASCII text it gives
exactly rouge-score's tokens (lower-cased, split at anything that is not a
letter or digit, Porter-stemmed when asked), so English scores do not move.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from finetune_web.evaluation._common import answers_and_references, import_optional, mean
from finetune_web.interfaces import ChatModel
from finetune_web.records import EvalResult, Example

__all__ = ["RougeEvaluator", "unicode_rouge_tokens"]

log = logging.getLogger("finetune_web.evaluation")

_REQUIREMENT = "rouge-score>=0.1.2"
_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

# Scripts written without spaces between words: each character is a token.
_UNSPACED = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3134F),  # CJK extensions B-G
)


def _unspaced(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _UNSPACED)


def unicode_rouge_tokens(text: str, stem: Callable[[str], str] | None = None) -> list[str]:
    """Split text into ROUGE tokens in any script.

    Lower-cases, keeps runs of letters, digits and combining marks as words,
    makes each character of an unspaced script (CJK, Thai...) its own token
    (with its combining marks), and drops everything else.

    Args:
        text: the text.
        stem: a stemmer applied, as rouge-score does, to ASCII words longer
            than three characters.

    Returns:
        The tokens, in order.
    """
    tokens: list[str] = []
    word: list[str] = []
    glued = False  # the last token is an unspaced character that may take combining marks

    def flush() -> None:
        if word:
            token = "".join(word)
            if stem is not None and len(token) > 3 and token.isascii():
                token = stem(token)
            tokens.append(token)
            word.clear()

    for char in text.lower():
        kind = unicodedata.category(char)[0]
        if kind in "LN" and _unspaced(char):
            flush()
            tokens.append(char)
            glued = True
        elif kind == "M" and glued:
            tokens[-1] += char  # a vowel sign or tone mark belongs to its character
        elif kind in "LN" or (kind == "M" and word):
            word.append(char)
            glued = False
        else:
            flush()
            glued = False
    flush()
    return tokens


@attrs.frozen
class _Tokenizer:
    """The object rouge-score calls: ``tokenize(text) -> list[str]``."""

    stem: Callable[[str], str] | None

    def tokenize(self, text: str) -> list[str]:
        return unicode_rouge_tokens(text, self.stem)


def _check_type(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in _TYPES:
        raise ValueError(f"rouge_type must be one of {_TYPES}, not {value!r}")


@attrs.frozen(kw_only=True)
class RougeEvaluator:
    """ROUGE F-measure (rouge-score), 0-1, per example and averaged.

    ``score`` is the mean F-measure of ``rouge_type``; ``details["scores"]``
    holds the mean precision, recall and F-measure of ROUGE-1, ROUGE-2 and
    ROUGE-L (and ROUGE-Lsum when it is the chosen type), and
    ``details["per_example_fmeasure"]`` every example's F-measure of each.
    With several acceptable references the best one counts (rouge-score's
    ``score_multi``).  The computation is deterministic (no sampling).

    Attributes:
        rouge_type: ``rouge1``, ``rouge2``, ``rougeL`` or ``rougeLsum``
            (summary-level LCS over newline-separated sentences).
        use_stemmer: Porter-stem ASCII words longer than three characters.
        tokenizer: ``"unicode"`` (:func:`unicode_rouge_tokens`, any script) or
            ``"rouge_score"`` (the library's ASCII-only tokenizer, as published).
        name: the metric name in results; ``None`` uses ``rouge_type``.
    """

    rouge_type: Literal["rouge1", "rouge2", "rougeL", "rougeLsum"] = attrs.field(
        default="rougeL", validator=_check_type
    )
    use_stemmer: bool = False
    tokenizer: Literal["unicode", "rouge_score"] = attrs.field(
        default="unicode", validator=attrs.validators.in_(("unicode", "rouge_score"))
    )
    name: str | None = None

    @property
    def metric(self) -> str:
        """The metric name in results."""
        return self.name or self.rouge_type

    def _types(self) -> list[str]:
        types = ["rouge1", "rouge2", "rougeL"]
        return [*types, "rougeLsum"] if self.rouge_type == "rougeLsum" else types

    def _scorer(self) -> tuple[Any, Any]:
        """Return rouge-score's scorer and the tokenizer it uses."""
        scorer = import_optional(
            "rouge_score.rouge_scorer", requirement=_REQUIREMENT, needed_by="ROUGE"
        )
        tokenizer: Any
        if self.tokenizer == "rouge_score":
            library = import_optional(
                "rouge_score.tokenizers", requirement=_REQUIREMENT, needed_by="ROUGE"
            )
            tokenizer = library.DefaultTokenizer(use_stemmer=self.use_stemmer)
        else:
            stem: Callable[[str], str] | None = None
            if self.use_stemmer:
                porter = import_optional(
                    "nltk.stem.porter", requirement=_REQUIREMENT, needed_by="ROUGE"
                )
                stem = porter.PorterStemmer().stem
            tokenizer = _Tokenizer(stem)
        return scorer.RougeScorer(self._types(), tokenizer=tokenizer), tokenizer

    def score_texts(
        self, hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
    ) -> EvalResult:
        """Score texts directly (no model).

        Args:
            hypotheses: the system outputs.
            references: for each hypothesis, its reference or a sequence of references.

        Returns:
            The result, with ``model`` set to ``""``.

        Raises:
            ValueError: the two sequences differ in length.
            MissingDependencyError: rouge-score is not installed.
        """
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        scorer, tokenizer = self._scorer()
        types = self._types()
        rows: list[dict[str, Any]] = []
        for hypothesis, refs in zip(hypotheses, references, strict=True):
            targets = [refs] if isinstance(refs, str) else list(refs)
            if len(targets) == 1:
                rows.append(scorer.score(targets[0], hypothesis))
            else:
                rows.append(scorer.score_multi(targets, hypothesis))
        untokenizable = sum(
            1
            for refs in references
            for text in ([refs] if isinstance(refs, str) else refs)[:1]
            if text.strip() and not tokenizer.tokenize(text)
        )
        if untokenizable:
            log.warning(
                "%d reference(s) gave no ROUGE tokens (non-Latin text with the rouge_score "
                "tokenizer?): they score 0; use tokenizer='unicode'",
                untokenizable,
            )
        summary = {
            kind: {
                part: mean([float(getattr(row[kind], part)) for row in rows])
                for part in ("precision", "recall", "fmeasure")
            }
            for kind in types
        }
        per_type = {kind: [float(row[kind].fmeasure) for row in rows] for kind in types}
        return EvalResult(
            metric=self.metric,
            model="",
            score=summary[self.rouge_type]["fmeasure"] if rows else 0.0,
            per_example=per_type[self.rouge_type],
            details={
                "n": len(rows),
                "rouge_type": self.rouge_type,
                "use_stemmer": self.use_stemmer,
                "tokenizer": self.tokenizer,
                "scores": summary,
                "per_example_fmeasure": per_type,
                "untokenizable_references": untokenizable,
            },
        )

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model``'s answers against the examples' reference answers.

        Raises:
            ConfigError: an example does not end with its reference answer.
            MissingDependencyError: rouge-score is not installed.
        """
        hypotheses, references = answers_and_references(model, examples)
        result = self.score_texts(hypotheses, references)
        return attrs.evolve(result, model=model.model_id)
