"""Keep texts in chosen languages, identified offline with py3langid."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.records import Record, Rejection, StepMetric
from finetune_web.transforms._text import check_fields, check_roles, reject, selected_texts

__all__ = ["LanguageFilter", "load_language_identifier"]

#: ``(language code, confidence)`` of a text.
Identifier = Callable[[str], tuple[str, float]]

_PIP_HINT = 'pip install "finetune-web[language]"  (or: pip install "py3langid>=0.4")'


def load_language_identifier() -> Identifier:
    """Load py3langid's model (shipped inside its wheel; about 1 s) and return its classifier.

    Returns:
        A function giving the ISO 639-1 code of a text's language and a
        confidence between 0 and 1.

    Raises:
        MissingDependencyError: py3langid is not installed.
    """
    try:
        langid = importlib.import_module("py3langid.langid")
    except ImportError as exc:
        raise MissingDependencyError(f"LanguageFilter needs py3langid: {_PIP_HINT}") from exc
    identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)

    def classify(text: str) -> tuple[str, float]:
        code, confidence = identifier.classify(text)
        return str(code), float(confidence)

    return classify


def _languages(value: Iterable[str] | str) -> tuple[str, ...]:
    languages = (value,) if isinstance(value, str) else tuple(value)
    if not languages or not all(isinstance(code, str) and code for code in languages):
        raise ConfigError(
            f"languages must be ISO 639-1 codes such as 'en', 'ja', 'ru'; got {list(languages)!r}"
        )
    return tuple(code.lower() for code in languages)


def _check_confidence(_: object, __: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"min_confidence must be between 0 and 1, not {value!r}")


@attrs.frozen(kw_only=True)
class LanguageFilter:
    """Keep records whose text is in one of the allowed languages.

    The language is identified offline by py3langid (a fork of langid.py
    that ships its model for 97 languages in the wheel); install it with
    ``pip install "finetune-web[language]"``.  The model is loaded when the
    step starts running, never at import.  The step reports the number of
    records per detected language as ``language.<code>`` figures.

    Rejection reason: ``language``, with ``details`` ``{"detected",
    "confidence", "allowed"}``, for a text in another language or one
    identified with less than ``min_confidence``.

    Attributes:
        languages: allowed ISO 639-1 codes, e.g. ``("en", "ja", "ru")``.
        min_confidence: the least confidence (0-1) to accept a detected language.
        roles: for examples, the roles whose contents are identified (default:
            user and assistant).
        fields: for documents, dotted ``data`` paths read besides ``text``.
        name: the step's name in reports.
    """

    languages: tuple[str, ...] = attrs.field(converter=_languages)
    min_confidence: float = attrs.field(default=0.5, validator=_check_confidence)
    roles: tuple[str, ...] = attrs.field(default=("user", "assistant"), converter=check_roles)
    fields: tuple[str, ...] = attrs.field(default=(), converter=check_fields)
    name: str = "language"

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield records in an allowed language; reject the others.

        Raises:
            MissingDependencyError: py3langid is not installed.
        """
        classify = load_language_identifier()
        allowed = list(self.languages)
        for record in records:
            text = "\n\n".join(selected_texts(record, roles=self.roles, fields=self.fields))
            detected, confidence = classify(text)
            yield StepMetric(name=f"language.{detected}", value=1)
            if detected in self.languages and confidence >= self.min_confidence:
                yield record
                continue
            why = (
                f"is in {detected!r}, not in {allowed}"
                if detected not in self.languages
                else f"is in {detected!r} with confidence {confidence:.2f} only, below "
                f"min_confidence {self.min_confidence}"
            )
            yield reject(
                self.name,
                record,
                "language",
                f"text {why}",
                {"detected": detected, "confidence": round(confidence, 4), "allowed": allowed},
            )
