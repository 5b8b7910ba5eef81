"""ProductToDescription: scraped product records to description-writing examples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finetune_web.config import load_config
from finetune_web.errors import ConfigError
from finetune_web.plugins import Family, Registry
from finetune_web.records import Document, Example, Location, Message, Rejection
from finetune_web.sources import JsonSource
from finetune_web.testing import check_transformer
from finetune_web.transforms.product import ProductToDescription, product_features

DESCRIPTION = (
    "Keep water ice-cold through a full day of hiking. Double-wall vacuum insulation and "
    "18/8 stainless steel mean nothing tastes metallic."
)
AMAZON = Path("brightdata_amazon") / "amazon_global_dataset_by_keyword.json"


def _product(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "title": "Insulated Water Bottle, 750 ml",
        "brand": "Hydrava",
        "description": DESCRIPTION,
        "features": ["Keeps drinks cold 24 hours", "BPA-free lid", "Fits cup holders"],
        "url": "https://www.amazon.com/dp/B0DEMO0000",
        "categories": ["Sports & Outdoors", "Water Bottles"],
    }
    record.update(changes)
    return record


def _one(step: ProductToDescription, data: dict[str, Any] | None) -> Example | Rejection:
    doc = Document(
        id="products.json#0",
        data=data,
        metadata={"snapshot_id": "s_1"},
        location=Location(origin="products.json", line=2, index=0),
    )
    (out,) = step.transform([doc])
    assert isinstance(out, Example | Rejection)
    return out


def test_builds_system_user_and_assistant_from_the_record() -> None:
    """The user lists name, brand and features; the assistant is the description."""
    out = _one(ProductToDescription(system="Be accurate."), _product())
    assert isinstance(out, Example)
    assert [(m.role, m.content) for m in out.messages] == [
        ("system", "Be accurate."),
        (
            "user",
            "Write a product description.\n\nProduct: Insulated Water Bottle, 750 ml\n"
            "Brand: Hydrava\nKey features:\n- Keeps drinks cold 24 hours\n- BPA-free lid\n"
            "- Fits cup holders",
        ),
        ("assistant", DESCRIPTION),
    ]
    assert (out.id, out.parent_id) == ("products.json#0", "products.json#0")
    assert out.location == Location(origin="products.json", line=2, index=0)
    assert out.metadata == {"snapshot_id": "s_1", "url": "https://www.amazon.com/dp/B0DEMO0000"}


def test_optional_parts_are_left_out() -> None:
    """No brand, no features and an empty system prompt leave their lines out."""
    step = ProductToDescription(system="", instruction="Describe this product.")
    out = _one(step, _product(brand=None, features=None))
    assert isinstance(out, Example)
    assert [m.role for m in out.messages] == ["user", "assistant"]
    assert (
        out.messages[0].content
        == "Describe this product.\n\nProduct: Insulated Water Bottle, 750 ml"
    )


def test_features_as_a_string_and_capped() -> None:
    """Features may be one bulleted string; count and length are capped at a word boundary."""
    text = "• Keeps drinks cold for a very long time indeed\n\n- BPA-free lid\n3. Loop\n- Extra"
    assert product_features(text, limit=3, max_chars=30) == [
        "Keeps drinks cold for a very…",
        "BPA-free lid",
        "Loop",
    ]
    assert product_features(["a", 3, "", None, " b "], limit=9, max_chars=10) == ["a", "b"]
    assert product_features({"a": 1}, limit=9, max_chars=10) == []
    out = _one(ProductToDescription(max_features=0), _product())
    assert isinstance(out, Example) and "Key features" not in out.messages[1].text


def test_dotted_field_options_and_list_descriptions() -> None:
    """Field options take dotted paths; a description given as paragraphs is joined."""
    step = ProductToDescription(
        title_field="product.name", description_field="product.about", brand_field="maker"
    )
    out = _one(
        step,
        {
            "product": {
                "name": "Mug",
                "about": ["First paragraph, long enough.", "Second paragraph."],
            }
        },
    )
    assert isinstance(out, Example)
    assert out.messages[-1].content == "First paragraph, long enough.\n\nSecond paragraph."
    assert "Product: Mug" in out.messages[1].text and "Brand" not in out.messages[1].text


@pytest.mark.parametrize(
    ("data", "reason", "details"),
    [
        (_product(description=None), "missing_field", {"field": "description"}),
        (_product(description="   "), "missing_field", {"field": "description"}),
        (_product(title=""), "missing_field", {"field": "title"}),
        (_product(description={"html": "<p>x</p>"}), "data_type", {"field": "description"}),
        (
            _product(description="Previous page Next page"),
            "too_short",
            {"field": "description", "chars": 23},
        ),
        (None, "missing_field", {"field": "data"}),
    ],
)
def test_unusable_records_are_rejections_naming_the_field(
    data: dict[str, Any] | None, reason: str, details: dict[str, Any]
) -> None:
    """Missing, empty, non-text or too-short fields reject the record, naming file and field."""
    out = _one(ProductToDescription(), data)
    assert isinstance(out, Rejection)
    assert (out.reason, out.details, out.record_id) == (reason, details, "products.json#0")
    assert "products.json:2" in out.message
    assert out.record == data


def test_failed_scrapes_are_scrape_error_rejections() -> None:
    """A record carrying error_code is a failed scrape, unless the check is turned off."""
    failed = {"error_code": "dead_page", "error": "Page not found", "input": {"url": "u"}}
    out = _one(ProductToDescription(), failed)
    assert isinstance(out, Rejection) and out.reason == "scrape_error"
    assert out.details == {"error_code": "dead_page", "error": "Page not found"}
    unchecked = _one(ProductToDescription(error_key=None), failed)
    assert isinstance(unchecked, Rejection) and unchecked.reason == "missing_field"


def test_examples_are_wrong_record_type() -> None:
    """Only documents are read; an example is rejected as wrong_record_type."""
    example = Example(id="e", messages=[Message(role="user", content="hi")])
    (out,) = ProductToDescription().transform([example])
    assert isinstance(out, Rejection) and out.reason == "wrong_record_type"


@pytest.mark.parametrize(
    "options", [{"min_chars": 0}, {"max_features": -1}, {"max_feature_chars": 3}]
)
def test_bad_limits_fail_when_built(options: dict[str, Any]) -> None:
    """Limits out of range are ConfigErrors at construction."""
    with pytest.raises(ConfigError):
        ProductToDescription(**options)


def test_demo_products(demo_products: Path) -> None:
    """The tutorial's products: 19 examples; the two failed scrapes and the one without a
    description are rejections."""
    records = list(JsonSource(str(demo_products), error_key=None).read())
    outputs = check_transformer(ProductToDescription(), records)  # type: ignore[arg-type]
    rejected = [(o.record_id, o.reason) for o in outputs if isinstance(o, Rejection)]
    assert rejected == [
        ("products.json#4", "scrape_error"),
        ("products.json#11", "missing_field"),
        ("products.json#21", "scrape_error"),
    ]
    assert sum(isinstance(o, Example) for o in outputs) == 19


def test_real_bright_data_amazon_records(realdata: Path) -> None:
    """All 367 real Amazon records are accounted for; unusable ones are rejections with reasons.

    The file holds 9 records without a description and 9 whose "description" is a
    scraped fragment under 40 characters (e.g. "Previous page Next page").
    """
    records = list(JsonSource(str(realdata / AMAZON)).read())
    assert len(records) == 367 and all(isinstance(r, Document) for r in records)
    documents = [r for r in records if isinstance(r, Document)]
    outputs = list(ProductToDescription().transform(documents))
    examples = [o for o in outputs if isinstance(o, Example)]
    rejections = [o for o in outputs if isinstance(o, Rejection)]
    assert len(examples) + len(rejections) == 367
    accounted = [e.id for e in examples] + [str(r.record_id) for r in rejections]
    assert sorted(accounted) == sorted(d.id for d in documents)
    assert Counter(r.reason for r in rejections) == {"missing_field": 9, "too_short": 9}
    for rejection in rejections:
        assert rejection.details["field"] == "description" and rejection.message
        description = rejection.record.get("description")
        assert not description or len(description.strip()) < 40
    by_id = {d.id: d for d in documents}
    for example in examples:
        data = by_id[example.id].data
        assert data is not None
        assert example.messages[-1].content == data["description"].strip()
        assert f"Product: {data['title'].strip()}" in example.messages[1].text


def test_built_by_the_registry_and_from_toml(tmp_path: Path, demo_products: Path) -> None:
    """Registered under a name, the step is built from TOML options and runs in a pipeline."""
    registry = Registry.builtins().with_plugin(
        Family.TRANSFORMS, "product_description", ProductToDescription
    )
    config = tmp_path / "products.toml"
    config.write_text(
        f'[source]\ntype = "json"\npath = "{demo_products.as_posix()}"\n\n'
        '[[steps]]\ntype = "product_description"\nsystem = "Be concise."\n'
        "max_features = 3\nmin_chars = 60\n",
        encoding="utf-8",
    )
    pipeline = load_config(config, registry=registry).pipeline
    assert pipeline.steps == (
        ProductToDescription(system="Be concise.", max_features=3, min_chars=60),
    )
    rejected: list[Rejection] = []
    examples = list(pipeline.stream(on_reject=rejected.append))
    assert len(examples) == 19 and len(rejected) == 3
    assert all(isinstance(e, Example) and e.messages[0].text == "Be concise." for e in examples)
