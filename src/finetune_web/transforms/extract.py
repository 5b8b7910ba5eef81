"""Extract the main text of HTML pages (the article, without menus, ads and footers).

The extraction itself is trafilatura's; this step renders what it finds as
light markdown, adds the page's title, date, language and URL to the
metadata, and turns every page it cannot use into a rejection with a reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any, Literal

import attrs

from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.records import Document, Record, Rejection, StepMetric
from finetune_web.transforms._extract_checks import (
    binary_kind,
    declared_language,
    has_visible_text,
    iso_date,
    looks_like_html,
)
from finetune_web.transforms._extract_render import render_blocks
from finetune_web.transforms._text import reject

__all__ = ["EXTRACT_REASONS", "ExtractMainText"]

_PIP_HINT = 'pip install "finetune-web[web]"  (or: pip install trafilatura lxml_html_clean)'

#: The rejection reasons of :class:`ExtractMainText`.
EXTRACT_REASONS = ("binary_content", "empty_page", "extraction_failed", "no_main_text", "not_html")

Output = Literal["markdown", "text"]


def _load_trafilatura() -> tuple[ModuleType, str]:
    """Import trafilatura; return the module and ``"trafilatura <version>"``.

    Raises:
        MissingDependencyError: trafilatura (or lxml_html_clean, which it needs) is missing.
    """
    try:
        module = importlib.import_module("trafilatura")
    except ImportError as exc:
        raise MissingDependencyError(
            f"ExtractMainText needs trafilatura and lxml_html_clean ({exc}): {_PIP_HINT}"
        ) from exc
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        version = importlib.metadata.version("trafilatura")
    return module, f"trafilatura {version}"


def _check_output(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value not in ("markdown", "text"):
        raise ConfigError(f"output must be 'markdown' or 'text', not {value!r}")


def _check_min_chars(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"min_chars must be a whole number >= 0, not {value!r}")


def _page(record: Document) -> str:
    """Name the page for messages: its URL when known."""
    url = record.metadata.get("url")
    return f"page {url}" if isinstance(url, str) and url else "page"


@attrs.frozen(kw_only=True)
class ExtractMainText:
    """Replace each HTML page by its main text, as light markdown, with its metadata.

    Takes :class:`~finetune_web.records.Document` records whose ``text`` is a
    page's HTML (as ``HttpSource`` and ``HtmlFileSource`` read them) and
    yields a document with the same ``id`` whose ``text`` is the main text:
    ``#``/``##``/``###`` heading lines, ``- `` list items, tables as pipe
    rows, paragraphs separated by blank lines.  Its metadata is the input's
    plus ``title``, ``date`` (ISO ``YYYY-MM-DD``), ``language`` (the primary
    subtag, e.g. ``"en"``, from trafilatura or the page's ``<html lang>``),
    ``url`` (the input's ``url``, else the page's canonical URL) and
    ``extractor`` (``"trafilatura <version>"``); unknown values are ``None``.

    trafilatura (``pip install "finetune-web[web]"``) is imported when the
    step starts running.  The step reports ``extract.pages``,
    ``extract.html_chars`` and ``extract.text_chars`` figures.

    Rejection reasons: ``empty_page`` (blank HTML, or HTML with no visible
    text), ``not_html`` (no ``text``, not a document, JSON or plain text),
    ``binary_content`` (bytes of an image, a PDF...), ``no_main_text``
    (nothing found, or less than ``min_chars``), ``extraction_failed``
    (trafilatura raised; the message gives its error).

    Attributes:
        favor_precision: keep less text, only what is surely the main text.
        favor_recall: keep more text when unsure (cannot be combined with
            ``favor_precision``).
        include_tables: keep the text of tables.
        include_links: write links as ``[text](url)``.
        include_comments: keep readers' comments found below the article.
        fast: skip trafilatura's fallback extractors (faster, a little less accurate).
        with_metadata: read title, date and canonical URL from the page; without
            it (about a quarter less time) they are ``None``, the language comes
            from ``<html lang>`` only and the URL from the input only.
        min_chars: reject pages whose main text has fewer characters.
        output: ``"markdown"``, or ``"text"`` for the same blocks without markers.
        name: the step's name in reports.
    """

    favor_precision: bool = False
    favor_recall: bool = False
    include_tables: bool = True
    include_links: bool = False
    include_comments: bool = False
    fast: bool = False
    with_metadata: bool = True
    min_chars: int = attrs.field(default=200, validator=_check_min_chars)
    output: Output = attrs.field(default="markdown", validator=_check_output)
    name: str = "extract"

    def __attrs_post_init__(self) -> None:
        if self.favor_precision and self.favor_recall:
            raise ConfigError("favor_precision and favor_recall exclude each other; pick one")

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield each page's main text as a document with the same id, or its rejection.

        Raises:
            MissingDependencyError: trafilatura is not installed.
        """
        trafilatura, extractor = _load_trafilatura()
        for name in ("extract.pages", "extract.html_chars", "extract.text_chars"):
            yield StepMetric(name=name, value=0)
        for record in records:
            if isinstance(record, Rejection | StepMetric):  # a source's rejection passes through
                yield record
                continue
            result = self._extract(trafilatura, extractor, record)
            if isinstance(result, Document) and isinstance(record, Document):
                yield StepMetric(name="extract.pages", value=1)
                yield StepMetric(name="extract.html_chars", value=len(record.text or ""))
                yield StepMetric(name="extract.text_chars", value=len(result.text or ""))
            yield result

    def _extract(
        self, trafilatura: ModuleType, extractor: str, record: Record
    ) -> Record | Rejection:
        """Return the extracted document or the rejection of one record."""
        if not isinstance(record, Document):
            return reject(
                self.name,
                record,
                "not_html",
                f"is a {type(record).__name__}, not a Document holding an HTML page; "
                "put ExtractMainText right after a source of HTML pages",
            )
        html = record.text
        if html is None:
            held = "structured data" if record.data is not None else "nothing"
            return reject(
                self.name,
                record,
                "not_html",
                f"has no HTML text (text is None; it holds {held}); read pages with "
                "HttpSource or HtmlFileSource",
            )
        page = _page(record)
        if not html.strip():
            return reject(self.name, record, "empty_page", f"{page} is blank: nothing to extract")
        kind = binary_kind(html)
        if kind is not None:
            details = {"content_type": record.metadata.get("content_type"), "looks_like": kind}
            return reject(
                self.name,
                record,
                "binary_content",
                f"{page} holds {kind}, not HTML text; keep only text/html responses",
                details,
            )
        why = looks_like_html(html)
        if why is not None:
            return reject(self.name, record, "not_html", f"{page} cannot be extracted: {why}")
        url = record.metadata.get("url")
        url = url if isinstance(url, str) and url else None
        try:
            found = trafilatura.bare_extraction(
                html,
                url=url,
                fast=self.fast,
                favor_precision=self.favor_precision,
                favor_recall=self.favor_recall,
                include_comments=self.include_comments,
                include_tables=self.include_tables,
                include_links=self.include_links,
                include_formatting=False,
                include_images=False,
                output_format="xml",
                with_metadata=self.with_metadata,
            )
        except Exception as exc:  # any failure of the extractor is this page's problem
            return reject(
                self.name,
                record,
                "extraction_failed",
                f"trafilatura failed on {page}: {type(exc).__name__}: {exc}",
                {"error": f"{type(exc).__name__}: {exc}"},
            )
        text = self._render(found)
        if len(text) < max(self.min_chars, 1):
            if found is None and not has_visible_text(html):
                return reject(self.name, record, "empty_page", f"{page} shows no text at all")
            found_text = (
                f"has {len(text)} characters of main text, fewer than min_chars={self.min_chars}"
                if text
                else "has no main text that trafilatura could find"
            )
            return reject(
                self.name,
                record,
                "no_main_text",
                f"{page} {found_text} (a menu, a login wall, an index page or broken markup?); "
                "lower min_chars or try favor_recall=True to keep it",
                {"chars": len(text), "min_chars": self.min_chars},
            )
        metadata = {
            **record.metadata,
            "title": _text_or_none(getattr(found, "title", None)),
            "date": iso_date(getattr(found, "date", None)),
            "language": _language(getattr(found, "language", None)) or declared_language(html),
            "url": url or _text_or_none(getattr(found, "url", None)),
            "extractor": extractor,
        }
        return attrs.evolve(record, text=text, metadata=metadata)

    def _render(self, found: Any) -> str:
        """Render the main text (and the comments, when asked) of trafilatura's result."""
        if found is None:
            return ""
        markdown = self.output == "markdown"
        parts = [
            render_blocks(body, markdown=markdown, links=self.include_links)
            for body in (found.body, found.commentsbody if self.include_comments else None)
            if body is not None
        ]
        return "\n\n".join(part for part in parts if part)


def _text_or_none(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _language(value: object) -> str | None:
    text = _text_or_none(value)
    return text.replace("_", "-").split("-")[0].lower() if text else None
