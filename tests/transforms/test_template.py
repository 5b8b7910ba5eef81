"""TemplateTransformer: documents to chat examples, declaratively."""

from __future__ import annotations

import pytest

from finetune_web import ConfigError, Document, Example, Location, Rejection, TemplateTransformer
from finetune_web.testing import check_transformer


def _one(step: TemplateTransformer, data: dict[str, object]) -> Example | Rejection:
    doc = Document(id="p", data=data, location=Location(origin="products.json", line=12, index=3))
    (out,) = step.transform([doc])
    assert isinstance(out, Example | Rejection)
    return out


def test_fills_system_user_and_assistant() -> None:
    """Placeholders are filled from the data; the example keeps id, parent and location."""
    step = TemplateTransformer(system="Be crisp.", user="Describe {title}.", assistant="{d}")
    out = _one(step, {"title": "Kettle", "d": "Boils fast."})
    assert isinstance(out, Example)
    assert [(m.role, m.content) for m in out.messages] == [
        ("system", "Be crisp."),
        ("user", "Describe Kettle."),
        ("assistant", "Boils fast."),
    ]
    assert (out.id, out.parent_id, out.location) == (
        "p",
        "p",
        Location(origin="products.json", line=12, index=3),
    )


def test_fallbacks_optional_nested_and_lists() -> None:
    """{a|b} falls back, {x?} may be missing, dotted paths and list items resolve, lists join."""
    step = TemplateTransformer(
        user="{title|name} [{sub?}] {details.weight} {images.1} {features}",
        assistant="{d}",
        joins={"features": " / "},
    )
    out = _one(
        step,
        {
            "title": "",
            "name": "Mug",
            "details": {"weight": "300 g"},
            "images": ["a.jpg", "b.jpg"],
            "features": ["ceramic", "", "350 ml"],
            "d": "Holds tea.",
        },
    )
    assert isinstance(out, Example)
    assert out.messages[0].content == "Mug [] 300 g b.jpg ceramic / 350 ml"


def test_numbers_and_objects_render() -> None:
    """Numbers render as text and objects as compact sorted JSON."""
    out = _one(
        TemplateTransformer(user="{price} {meta}", assistant="{d}"),
        {"price": 9.5, "meta": {"b": 1, "a": "x"}, "d": "ok"},
    )
    assert isinstance(out, Example)
    assert out.messages[0].content == '9.5 {"a":"x","b":1}'


def test_caps_cut_at_a_word_boundary() -> None:
    """max_chars caps a field without cutting a word in half."""
    step = TemplateTransformer(user="{t}", assistant="{d}", max_chars={"t": 12})
    out = _one(step, {"t": "alpha beta gamma delta", "d": "x"})
    assert isinstance(out, Example)
    assert out.messages[0].content == "alpha beta"


def test_literal_braces() -> None:
    """{{ and }} are literal braces."""
    out = _one(TemplateTransformer(user="{{json}} {t}", assistant="{d}"), {"t": "x", "d": "y"})
    assert isinstance(out, Example)
    assert out.messages[0].content == "{json} x"


def test_missing_required_field_is_a_rejection_naming_file_and_line() -> None:
    """A missing or empty required field rejects the record, naming file, line and field."""
    out = _one(
        TemplateTransformer(user="{title|name}", assistant="{description}"),
        {"title": "K", "description": None},
    )
    assert isinstance(out, Rejection)
    assert out.reason == "missing_field"
    assert "products.json:12" in out.message and "{description}" in out.message
    assert out.details == {"fields": ["description"], "role": "assistant"}
    assert out.record == {"title": "K", "description": None}


@pytest.mark.parametrize("template", ["{", "}", "{bad name}", "{}", "{a|}"])
def test_bad_templates_fail_when_built(template: str) -> None:
    """A malformed template is a ConfigError at construction, before any data is read."""
    with pytest.raises(ConfigError):
        TemplateTransformer(user=template, assistant="{d}")


def test_contract() -> None:
    """The step keeps the Transformer contract (accounting, determinism, no state)."""
    docs = [
        Document(id=f"d{i}", data={"t": "x", "d": "y"} if i % 2 else {"t": "x"}) for i in range(6)
    ]
    outputs = check_transformer(TemplateTransformer(user="{t}", assistant="{d}"), docs)
    assert [type(o).__name__ for o in outputs] == ["Rejection", "Example"] * 3
