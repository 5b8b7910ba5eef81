"""LanguageFilter: offline language identification with py3langid, loaded lazily."""

from __future__ import annotations

import sys

import pytest

from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.records import (
    Document,
    Example,
    Location,
    Message,
    Record,
    Rejection,
    StepMetric,
)
from finetune_web.testing import check_transformer
from finetune_web.transforms.language import LanguageFilter

EN = "The kettle boils a full litre of water in under three minutes and switches itself off."
JA = "この電気ケトルは三分以内に一リットルの水を沸かし、自動的に電源が切れます。"
RU = "Этот чайник закипает меньше чем за три минуты и сам выключается."


def test_missing_py3langid_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without py3langid the step fails when it starts, with the exact install command."""
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    step = LanguageFilter(languages=("en",))  # building the step imports nothing
    with pytest.raises(MissingDependencyError, match=r'pip install "finetune-web\[language\]"'):
        next(iter(step.transform([Document(id="d", text=EN)])))


@pytest.mark.parametrize(
    "kwargs", [{"languages": ()}, {"languages": ("",)}, {"languages": ("en",), "min_confidence": 2}]
)
def test_bad_options_are_refused(kwargs: dict[str, object]) -> None:
    """No language, an empty code or a confidence outside 0-1 fail when the step is built."""
    with pytest.raises(ConfigError):
        LanguageFilter(**kwargs)  # type: ignore[arg-type]


def test_keeps_allowed_languages_and_rejects_others_with_details() -> None:
    """English and Japanese pass; Russian and digits-only text are rejected with what was
    detected, how sure, and what is allowed; the report counts records per language."""
    pytest.importorskip("py3langid")
    loc = Location(origin="reviews.jsonl", line=2)
    records: list[Record] = [
        Document(id="en", text=EN),
        Document(id="ja", text=JA),
        Document(id="ru", text=RU, location=loc),
        Example(
            id="digits",
            messages=[
                Message(role="user", content="12345"),
                Message(role="assistant", content="678"),
            ],
        ),
    ]
    step = LanguageFilter(languages=("en", "ja"), min_confidence=0.5)
    items = list(step.transform(records))
    metrics = {i.name: i.value for i in items if isinstance(i, StepMetric)}
    assert metrics["language.en"] == metrics["language.ja"] == metrics["language.ru"] == 1
    outputs = check_transformer(step, records)
    assert [o.id for o in outputs if not isinstance(o, Rejection)] == ["en", "ja"]
    russian, digits = (o for o in outputs if isinstance(o, Rejection))
    assert (russian.record_id, russian.reason) == ("ru", "language")
    assert russian.details["detected"] == "ru" and russian.details["allowed"] == ["en", "ja"]
    assert 0.5 < russian.details["confidence"] <= 1
    assert russian.message.startswith("record ru (reviews.jsonl:2): text is in 'ru'")
    assert (digits.record_id, digits.reason) == ("digits", "language")
