"""Filter out low-quality text with length limits and Gopher/C4-style heuristics.

The heuristics and their default thresholds come from two published
pipelines:

- **Gopher** (Rae et al. 2021, *Scaling Language Models*, appendix A.1.1
  and table A1): word count, mean word length, symbol-to-word ratio,
  bullet and ellipsis lines, alphabetic words, stop words, and the
  repetition measures (duplicate lines and paragraphs, top n-gram and
  duplicate n-gram character fractions).
- **C4** (Raffel et al. 2020, *Exploring the Limits of Transfer Learning*,
  section 2.2): "lorem ipsum", curly braces, and lines about JavaScript,
  cookies and terms of use.

Texts are measured as described in :class:`QualityFilter` and
:class:`~finetune_web.transforms._measures.TextStats`; ``docs/cleaning.md`` explains each measure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.formats.models import resolve_model
from finetune_web.formats.tokens import TokenCounter
from finetune_web.records import Record, Rejection, StepMetric
from finetune_web.transforms._measures import TextStats
from finetune_web.transforms._text import check_fields, check_roles, reject, selected_texts

__all__ = ["QUALITY_REASONS", "QualityFilter", "TextStats"]

#: Every reason code :class:`QualityFilter` rejects with.
QUALITY_REASONS = (
    "no_text",
    "too_short_chars",
    "too_long_chars",
    "too_few_tokens",
    "too_many_tokens",
    "too_few_words",
    "too_many_words",
    "mean_word_length",
    "symbol_ratio",
    "bullet_lines",
    "ellipsis_lines",
    "non_alpha_words",
    "stop_words",
    "boilerplate",
    "repeated_lines",
    "repeated_paragraphs",
    "repeated_ngrams",
)

#: A bullet at the start of a line: a bullet sign, or Markdown's "- ", "* ", "+ ".  Dashes
#: (– and —) are not bullets: Russian and other dialogue lines open with them.
_BULLET = re.compile(r"[•‣◦⁃●○■□▪▫◆◇►▶➢✓✔・]|[-*+]\s")
_GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_C4_LINE_PHRASES = (
    "javascript",
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


@attrs.frozen
class _Failure:
    reason: str
    check: str
    message: str
    details: dict[str, Any]


def _thresholds(value: Mapping[Any, float] | None) -> dict[int, float] | None:
    if value is None:
        return None
    out: dict[int, float] = {}
    for key, threshold in value.items():
        try:
            n = int(key)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            raise ConfigError(f"n-gram sizes must be positive integers, got {key!r}")
        out[n] = float(threshold)
    return dict(sorted(out.items()))


def _phrases(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(phrase.casefold() for phrase in value)


def _check_model(instance: QualityFilter, _: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        if instance.encoding is not None:
            raise ConfigError("give QualityFilter a model or an encoding, not both")
        resolve_model(value)


#: (reason, option, what is measured, how to measure it: ``None`` skips the check).
_Measure = tuple[str, str, str, Callable[[], "float | None"]]


def _limit(
    reason: str, check: str, what: str, value: float, threshold: float, n: int | None = None
) -> _Failure:
    above = check.startswith("max")
    bound = "maximum" if above else "minimum"
    shown = f"{value:.3g}" if isinstance(value, float) else str(value)
    details: dict[str, Any] = {"value": value, "threshold": threshold}
    if n is not None:
        details["n"] = n
    return _Failure(
        reason=reason,
        check=check,
        message=f"{what} {shown} is {'above' if above else 'below'} the {bound} {threshold} "
        f"({check})",
        details=details,
    )


@attrs.frozen(kw_only=True)
class QualityFilter:
    """Reject texts that are too short or long, or look like boilerplate, lists or spam.

    Every check is switched off by setting its threshold to ``None``; the
    first failing check rejects the record with its own reason code and
    ``details`` holding ``check`` (the option), ``value`` (the measure) and
    ``threshold``.  Defaults are Gopher's and C4's (see the module
    docstring), except where noted.

    What is measured: a document's ``text`` and its chosen ``fields``, or an
    example's messages in the chosen ``roles``, joined by blank lines.  A
    record with none of these is rejected with ``no_text``.  Texts in
    Chinese, Japanese, Thai and other scripts without spaces count each
    letter as a word (see :class:`TextStats`); the mean word length is then
    measured on space-separated words only and skipped when they are fewer
    than half the words.

    Attributes:
        min_chars: reject shorter texts (``too_short_chars``); no default.
        max_chars: reject longer texts (``too_long_chars``); no default.
        min_tokens: reject texts of fewer tokens (``too_few_tokens``).
        max_tokens: reject texts of more tokens (``too_many_tokens``).
        model: the model whose encoding counts tokens (e.g. ``gpt-4o-mini``).
        encoding: a tiktoken encoding instead of a model; default ``o200k_base``.
        min_words: Gopher 50 (``too_few_words``).
        max_words: Gopher 100,000 (``too_many_words``).
        min_mean_word_length: Gopher 3 (``mean_word_length``).
        max_mean_word_length: Gopher 10 (``mean_word_length``).
        max_symbol_ratio: Gopher 0.1: ``#`` or ellipses per word (``symbol_ratio``).
        max_bullet_lines: Gopher 0.9: lines starting with a bullet (``bullet_lines``).
        max_ellipsis_lines: Gopher 0.3: lines ending with an ellipsis (``ellipsis_lines``).
        min_alpha_words: Gopher 0.8: words with a letter (``non_alpha_words``).
        min_stop_words: Gopher 2 distinct ``stop_words``, English only, so off by
            default (``stop_words``).
        stop_words: the words ``min_stop_words`` counts.
        max_duplicate_lines: Gopher 0.3: lines repeating an earlier line (``repeated_lines``).
        max_duplicate_line_chars: Gopher 0.2: their share of characters (``repeated_lines``).
        max_duplicate_paragraphs: Gopher 0.3 (``repeated_paragraphs``).
        max_duplicate_paragraph_chars: Gopher 0.2 (``repeated_paragraphs``).
        max_top_ngram_chars: per n, the largest share of characters in the most
            frequent word n-gram; Gopher {2: 0.20, 3: 0.18, 4: 0.16} (``repeated_ngrams``).
        max_duplicate_ngram_chars: per n, the largest share of characters in
            repeated word n-grams; Gopher {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12,
            9: 0.11, 10: 0.10} (``repeated_ngrams``).
        boilerplate_phrases: any of these (case-insensitive) rejects; C4 "lorem
            ipsum" (``boilerplate``).
        reject_curly_braces: C4 drops pages with ``{``; off by default since
            code answers hold braces (``boilerplate``).
        boilerplate_line_phrases: lines holding any of these count as
            boilerplate (C4's JavaScript, cookie and terms-of-use lines).
        max_boilerplate_lines: reject when boilerplate lines are more than this
            share of the lines; 0.5, our choice: C4 deletes such lines instead
            (``boilerplate``).
        roles: for examples, the roles measured (default: assistant).
        fields: for documents, dotted ``data`` paths measured besides ``text``.
        name: the step's name in reports.
    """

    min_chars: int | None = None
    max_chars: int | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    encoding: str | None = None
    model: str | None = attrs.field(default=None, validator=_check_model)
    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_ratio: float | None = 0.1
    max_bullet_lines: float | None = 0.9
    max_ellipsis_lines: float | None = 0.3
    min_alpha_words: float | None = 0.8
    min_stop_words: int | None = None
    stop_words: tuple[str, ...] = attrs.field(default=_GOPHER_STOP_WORDS, converter=_phrases)
    max_duplicate_lines: float | None = 0.3
    max_duplicate_line_chars: float | None = 0.2
    max_duplicate_paragraphs: float | None = 0.3
    max_duplicate_paragraph_chars: float | None = 0.2
    max_top_ngram_chars: dict[int, float] | None = attrs.field(
        factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}, converter=_thresholds
    )
    max_duplicate_ngram_chars: dict[int, float] | None = attrs.field(
        factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        converter=_thresholds,
    )
    boilerplate_phrases: tuple[str, ...] = attrs.field(default=("lorem ipsum",), converter=_phrases)
    reject_curly_braces: bool = False
    boilerplate_line_phrases: tuple[str, ...] = attrs.field(
        default=_C4_LINE_PHRASES, converter=_phrases
    )
    max_boilerplate_lines: float | None = 0.5
    roles: tuple[str, ...] = attrs.field(default=("assistant",), converter=check_roles)
    fields: tuple[str, ...] = attrs.field(default=(), converter=check_fields)
    name: str = "quality"

    def _counter(self) -> TokenCounter | None:
        if self.min_tokens is None and self.max_tokens is None:
            return None
        if self.model is not None:
            return TokenCounter.for_model(self.model)
        return TokenCounter(encoding_name=self.encoding or "o200k_base")

    def check(self, text: str, counter: TokenCounter | None = None) -> tuple[str, str] | None:
        """Return ``(reason, message)`` for the first check ``text`` fails, or ``None``.

        Args:
            text: the text to measure.
            counter: counts tokens when token limits are set (built from
                ``model``/``encoding`` when not given).
        """
        if counter is None:
            counter = self._counter()
        failure = self._first_failure(TextStats(text), counter)
        return None if failure is None else (failure.reason, failure.message)

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield records that pass every check; reject the others with the first failure.

        Raises:
            ConfigError: the token encoding cannot be loaded.
        """
        counter = self._counter()
        for record in records:
            texts = list(selected_texts(record, roles=self.roles, fields=self.fields))
            if not texts:
                yield reject(
                    self.name,
                    record,
                    "no_text",
                    "has no text to measure (for documents with data, name the fields to "
                    f"measure with fields=...; for examples, check roles={list(self.roles)})",
                )
                continue
            failure = self._first_failure(TextStats("\n\n".join(texts)), counter)
            if failure is None:
                yield record
            else:
                details = {"check": failure.check, **failure.details}
                yield reject(self.name, record, failure.reason, failure.message, details)

    def _first_failure(self, stats: TextStats, counter: TokenCounter | None) -> _Failure | None:
        return (
            self._first_over(self._content_measures(stats, counter))
            or self._boilerplate(stats)
            or self._first_over(self._repetition_measures(stats))
            or self._repeated_ngrams(stats)
        )

    def _first_over(self, measures: Iterable[_Measure]) -> _Failure | None:
        """Return the first measure beyond its option's threshold (``None`` thresholds skip)."""
        for reason, check, what, measure in measures:
            threshold = getattr(self, check)
            if threshold is None:
                continue
            value = measure()
            low = check.startswith("min")
            if value is not None and (value < threshold if low else value > threshold):
                return _limit(reason, check, what, value, threshold)
        return None

    def _content_measures(
        self, stats: TextStats, counter: TokenCounter | None
    ) -> Iterator[_Measure]:
        """Yield the length, word, symbol and line checks, cheapest first."""
        yield "too_short_chars", "min_chars", "length", lambda: len(stats.text)
        yield "too_long_chars", "max_chars", "length", lambda: len(stats.text)
        if counter is not None:
            tokens = partial(counter.count_text, stats.text)
            yield "too_few_tokens", "min_tokens", "tokens", tokens
            yield "too_many_tokens", "max_tokens", "tokens", tokens
        yield "too_few_words", "min_words", "word count", lambda: len(stats.words)
        yield "too_many_words", "max_words", "word count", lambda: len(stats.words)
        yield "mean_word_length", "min_mean_word_length", "mean word length", stats.mean_word_length
        yield "mean_word_length", "max_mean_word_length", "mean word length", stats.mean_word_length
        yield "symbol_ratio", "max_symbol_ratio", "'#' or ellipses per word", stats.symbol_ratio
        yield (
            "bullet_lines",
            "max_bullet_lines",
            "share of bullet lines",
            partial(stats.line_fraction, lambda line: _BULLET.match(line) is not None),
        )
        yield (
            "ellipsis_lines",
            "max_ellipsis_lines",
            "share of lines ending in an ellipsis",
            partial(stats.line_fraction, lambda line: line.endswith(("...", "…"))),
        )
        yield (
            "non_alpha_words",
            "min_alpha_words",
            "share of words with a letter",
            (stats.alpha_word_fraction),
        )
        stop_words = set(self.stop_words)
        yield (
            "stop_words",
            "min_stop_words",
            "distinct stop words",
            (lambda: len(set(stats.normalized_words) & stop_words)),
        )

    def _repetition_measures(self, stats: TextStats) -> Iterator[_Measure]:
        """Yield the boilerplate-line and repeated line and paragraph checks."""
        phrases = self.boilerplate_line_phrases
        yield (
            "boilerplate",
            "max_boilerplate_lines",
            "share of boilerplate lines",
            partial(stats.line_fraction, lambda line: any(p in line.casefold() for p in phrases)),
        )
        for kind, items in (("line", stats.lines), ("paragraph", stats.paragraphs)):
            share, chars = TextStats.duplicates(items)
            yield (
                f"repeated_{kind}s",
                f"max_duplicate_{kind}s",
                f"share of repeated {kind}s",
                (partial(float, share)),
            )
            yield (
                f"repeated_{kind}s",
                f"max_duplicate_{kind}_chars",
                f"share of characters in repeated {kind}s",
                partial(float, chars),
            )

    def _boilerplate(self, stats: TextStats) -> _Failure | None:
        folded = stats.text.casefold()
        for phrase in self.boilerplate_phrases:
            if phrase in folded:
                return _Failure(
                    reason="boilerplate",
                    check="boilerplate_phrases",
                    message=f"contains the boilerplate phrase {phrase!r} (boilerplate_phrases)",
                    details={"phrase": phrase},
                )
        if self.reject_curly_braces and "{" in stats.text:
            return _Failure(
                reason="boilerplate",
                check="reject_curly_braces",
                message="contains a curly brace (reject_curly_braces)",
                details={"phrase": "{"},
            )
        return None

    def _repeated_ngrams(self, stats: TextStats) -> _Failure | None:
        for check, what, measure in (
            ("max_top_ngram_chars", "in the most frequent {n}-gram", stats.top_ngram_fraction),
            ("max_duplicate_ngram_chars", "in repeated {n}-grams", stats.duplicate_ngram_fraction),
        ):
            thresholds: dict[int, float] = getattr(self, check) or {}
            for n, threshold in thresholds.items():
                value = measure(n)
                if value > threshold:
                    what = "share of characters " + what.format(n=n)
                    return _limit("repeated_ngrams", check, what, value, threshold, n)
        return None
