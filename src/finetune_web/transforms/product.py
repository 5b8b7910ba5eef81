"""Turn a scraped product record into a description-writing example.

The product is a :class:`~finetune_web.records.Document` whose ``data`` is a
scraper record in the shape Bright Data's Amazon datasets use (``title``,
``brand``, ``description``, ``features``...), as read by
:class:`~finetune_web.sources.JsonSource` or a scraper-API source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from finetune_web.records import Document, Example, Record, Rejection
from finetune_web.transforms._examples import at_least, chat_messages, not_a_document, refuse
from finetune_web.transforms.template import lookup_field

__all__ = ["ProductToDescription", "product_features"]

_DEFAULT_SYSTEM = (
    "You are a copywriter for an online store. You write accurate, appealing product "
    "descriptions from the facts you are given."
)
_BULLET = re.compile(r"^\s*(?:[-*•·▪●]|\d+[.)])\s+")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-") + "…"


def product_features(value: Any, *, limit: int, max_chars: int) -> list[str]:
    """Return a product's key features as a clean list.

    Args:
        value: a list of strings, or one string holding one feature per line
            (leading ``-``, ``*``, ``•`` or ``1.`` bullets are removed); anything
            else gives no features.
        limit: keep at most this many (the first ones).
        max_chars: cut longer features at a word boundary, marked with ``…``.

    Returns:
        The non-empty features, in order.
    """
    if isinstance(value, str):
        items: list[Any] = value.splitlines()
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return []
    features = [_BULLET.sub("", item).strip() for item in items if isinstance(item, str)]
    return [_cut(item, max_chars) for item in features if item][:limit]


def _text_value(value: Any) -> str | None:
    """A string field's stripped text; a list of strings is joined by blank lines."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return "\n\n".join(item.strip() for item in value if item.strip())
    return None


@attrs.frozen(kw_only=True)
class ProductToDescription:
    """Make a "write the description" example from each scraped product.

    The user message gives ``instruction``, then the product's name, its
    brand (left out when the record has none) and up to ``max_features`` of
    its features; the assistant answers with the product's own description.
    The example keeps the document's ``id`` (and names it as ``parent_id``),
    its location, and its metadata plus the product's ``url``.

    Rejection reasons: ``missing_field`` (no data, or the name or description is
    missing or empty; ``details["field"]`` names it), ``data_type`` (the
    description is not text), ``too_short`` (the description has fewer than
    ``min_chars`` characters: scraped placeholders such as "Previous page Next
    page" are caught here), ``scrape_error`` (a failed scrape that carries an
    ``error_code``: the file sources reject those already unless told not to),
    ``wrong_record_type`` (not a document).

    Attributes:
        system: the system message (``None`` or ``""`` for none).
        instruction: the first line of the user message.
        min_chars: the shortest description kept, in characters.
        max_features: how many features to list at most (0 lists none).
        max_feature_chars: longer features are cut at a word boundary.
        title_field: dotted path of the product's name in ``data``.
        brand_field: dotted path of the brand.
        description_field: dotted path of the description.
        features_field: dotted path of the features (a list, or one string with
            one feature per line).
        error_key: a record where this field is set is a failed scrape (``None``
            or ``""`` to turn the check off).
        name: the step's name in reports.
    """

    system: str | None = _DEFAULT_SYSTEM
    instruction: str = "Write a product description."
    min_chars: int = attrs.field(default=40, validator=at_least(1))
    max_features: int = attrs.field(default=8, validator=at_least(0))
    max_feature_chars: int = attrs.field(default=200, validator=at_least(10))
    title_field: str = "title"
    brand_field: str = "brand"
    description_field: str = "description"
    features_field: str = "features"
    error_key: str | None = "error_code"
    name: str = "product_description"

    def _prompt(self, title: str, brand: str | None, features: list[str]) -> str:
        lines = [self.instruction.strip(), "", f"Product: {title}"]
        if brand:
            lines.append(f"Brand: {brand}")
        if features:
            lines.append("Key features:")
            lines.extend(f"- {feature}" for feature in features)
        return "\n".join(lines).strip()

    def _missing(self, document: Document, field: str, role: str) -> Rejection:
        value = lookup_field(document, field)
        state = "missing" if value is None else "empty"
        return refuse(
            self.name,
            document,
            "missing_field",
            f"the product's {role} ({field!r}) is {state}",
            {"field": field},
        )

    def _product(self, document: Document) -> Example | Rejection:
        data = document.data
        if data is None:
            return refuse(
                self.name,
                document,
                "missing_field",
                "the document has no structured data; read products with a JSON or scraper source",
                {"field": "data"},
            )
        code = data.get(self.error_key) if self.error_key else None
        if code not in (None, ""):
            return refuse(
                self.name,
                document,
                "scrape_error",
                f"the scraper failed on this record ({self.error_key}={code!r}): "
                f"{str(data.get('error'))[:300]}",
                {"error_code": code, "error": data.get("error")},
            )
        title = _text_value(lookup_field(document, self.title_field))
        if not title:
            return self._missing(document, self.title_field, "name")
        raw = lookup_field(document, self.description_field)
        description = _text_value(raw)
        if raw is not None and description is None:
            return refuse(
                self.name,
                document,
                "data_type",
                f"the description ({self.description_field!r}) is a {type(raw).__name__}, not text",
                {"field": self.description_field},
            )
        if not description:
            return self._missing(document, self.description_field, "description")
        if len(description) < self.min_chars:
            return refuse(
                self.name,
                document,
                "too_short",
                f"the description ({self.description_field!r}) has {len(description)} "
                f"characters, fewer than min_chars={self.min_chars}: {description[:80]!r}",
                {"field": self.description_field, "chars": len(description)},
            )
        brand = _text_value(lookup_field(document, self.brand_field))
        features = product_features(
            lookup_field(document, self.features_field),
            limit=self.max_features,
            max_chars=self.max_feature_chars,
        )
        url = data.get("url")
        return Example(
            messages=chat_messages(self.system, self._prompt(title, brand, features), description),
            id=document.id,
            parent_id=document.id,
            metadata={**document.metadata, **({"url": url} if isinstance(url, str) else {})},
            location=document.location,
        )

    def transform(self, records: Iterable[Record]) -> Iterator[Example | Rejection]:
        """Yield one example per product, or a rejection saying which field is wrong."""
        for record in records:
            if isinstance(record, Document):
                yield self._product(record)
            else:
                yield not_a_document(self.name, record)
