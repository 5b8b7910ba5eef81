"""Turn an extracted article into one question-and-answer example per section.

The article is a :class:`~finetune_web.records.Document` whose ``text`` is
light markdown (``#``/``##``/``###`` heading lines, paragraphs, ``- `` list
items), as the main-text extraction step writes it, with ``title``, ``url``
and ``language`` in its metadata.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Example, Record, Rejection, StepMetric
from finetune_web.transforms._examples import (
    at_least,
    chat_messages,
    check_prompt,
    not_a_document,
    refuse,
)

__all__ = ["ArticleSection", "ArticleToQA", "article_sections"]

# An ATX heading: up to 3 spaces, 1-6 '#', then a space and the text; an optional closing run
# of '#' preceded by a space is not part of the text ("## C#" keeps its '#', "## A ##" does not).
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

_SKIPS = ("empty", "too_short", "too_long", "untitled")


@attrs.frozen(kw_only=True)
class ArticleSection:
    """One section of a light-markdown article.

    Attributes:
        heading: the heading's text (``""`` for the lead, the text before the first heading).
        level: 1 for ``#``, 2 for ``##``...; 0 for the lead.
        text: the section's text, stripped of surrounding blank lines.
        position: 0-based position among the article's sections (the lead, when
            there is text before the first heading, is number 0).
    """

    heading: str
    level: int
    text: str
    position: int


def _heading(line: str) -> tuple[int, str] | None:
    match = _HEADING.match(line)
    if match is None:
        return None
    return len(match.group(1)), (match.group(2) or "").strip()


def article_sections(text: str, *, subsections: bool = False) -> list[ArticleSection]:
    """Split light markdown into its sections, in order.

    A heading line starts a section.  Lines inside fenced code blocks (```` ``` ````
    or ``~~~``) are never headings.  Text before the first heading is the lead
    (level 0), returned only when it is not blank.

    Args:
        text: the article.
        subsections: when true, a section runs until the next heading of the same
            or a higher level, so it holds its sub-sections (their heading lines
            included); when false, it stops at the next heading of any level.

    Returns:
        The sections, lead first.
    """
    lines = text.splitlines()
    starts: list[tuple[int, int, str]] = []  # (line index, level, heading)
    fence: str | None = None
    for index, line in enumerate(lines):
        opener = _FENCE.match(line)
        if opener is not None:
            marker = opener.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None and (found := _heading(line)) is not None:
            starts.append((index, *found))
    sections: list[ArticleSection] = []
    lead_end = starts[0][0] if starts else len(lines)
    lead = "\n".join(lines[:lead_end]).strip()
    if lead:
        sections.append(ArticleSection(heading="", level=0, text=lead, position=0))
    for number, (index, level, heading) in enumerate(starts):
        end = len(lines)
        for later_index, later_level, _ in starts[number + 1 :]:
            if not subsections or later_level <= level:
                end = later_index
                break
        body = "\n".join(lines[index + 1 : end]).strip()
        sections.append(
            ArticleSection(heading=heading, level=level, text=body, position=len(sections))
        )
    return sections


def _optional_text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


@attrs.frozen(kw_only=True)
class ArticleToQA:
    """Make one question-and-answer example from each section of an article.

    Each section with a heading becomes an :class:`Example`: the user asks
    ``question`` about the heading (``"What is {heading}?"``), the assistant
    answers with the section's text.  By default a section stops at the next
    heading of any level, so every sentence of the article is used once; with
    ``subsections=True`` it runs until the next heading of the same or a higher
    level and includes its sub-sections (their heading lines too), so text of
    a sub-section appears in its parent's answer as well.  The text before the
    first heading (the lead) is answered under the article's title, when the
    document has one.

    Examples get the id ``"<document id>#qa<n>"``, ``n`` the section's position
    in the article (skipped sections count, so ids stay put when options
    change), ``parent_id`` the document's id, and metadata ``url``, ``title``,
    ``language``, ``heading`` and ``level``.

    Sections are skipped when empty, shorter than ``min_chars``, longer than
    ``max_chars``, or without a heading; the counts are reported as the step
    figures ``article_qa.sections``, ``article_qa.examples`` and
    ``article_qa.skipped_<why>`` (``empty``, ``too_short``, ``too_long``,
    ``untitled``).

    Rejection reasons: ``no_sections`` (no section gave an example; ``details``
    has the counts), ``missing_field`` (no text, or the article lacks the
    ``title``/``url`` a prompt uses), ``wrong_record_type`` (not a document).

    Attributes:
        question: the user message, a template with ``{heading}`` and optionally
            ``{title}`` and ``{url}`` (the article's); ``{{``/``}}`` are braces.
        system: the system message (may use ``{title}`` and ``{url}``), or
            ``None``/``""`` for none.
        min_chars: the shortest answer kept, in characters.
        max_chars: the longest answer kept (``None``: no limit).  Longer sections
            are skipped rather than cut, so no answer stops mid-thought.
        subsections: include sub-sections in a section's answer (see above).
        lead: answer the text before the first heading under the article's title.
        question_headings: a heading that already asks a question (ends with
            ``?``) is used as the question itself.
        name: the step's name in reports.
    """

    question: str = "What is {heading}?"
    system: str | None = None
    min_chars: int = attrs.field(default=40, validator=at_least(1))
    max_chars: int | None = attrs.field(default=None, validator=at_least(1))
    subsections: bool = False
    lead: bool = True
    question_headings: bool = True
    name: str = "article_qa"

    def __attrs_post_init__(self) -> None:
        self._placeholders()
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ConfigError(
                f"max_chars ({self.max_chars}) must be at least min_chars ({self.min_chars})"
            )

    def _placeholders(self) -> set[str]:
        used = set(
            check_prompt(
                "question",
                self.question,
                allowed=("heading", "title", "url"),
                required=("heading",),
            )
        )
        if self.system:
            used.update(check_prompt("system", self.system, allowed=("title", "url")))
        return used

    def _why_skipped(self, section: ArticleSection, title: str | None) -> str | None:
        if not (section.heading or (section.level == 0 and self.lead and title)):
            return "untitled"
        if not section.text:
            return "empty"
        if len(section.text) < self.min_chars:
            return "too_short"
        if self.max_chars is not None and len(section.text) > self.max_chars:
            return "too_long"
        return None

    def _ask(self, heading: str, fields: dict[str, str]) -> str:
        if self.question_headings and heading.endswith("?"):
            return heading
        return self.question.format(heading=heading.rstrip(":").strip(), **fields)

    def _article(
        self, document: Document, needed: set[str]
    ) -> Iterator[Example | Rejection | StepMetric]:
        metadata = document.metadata
        title = _optional_text(metadata.get("title"))
        url = _optional_text(metadata.get("url"))
        fields = {"title": title or "", "url": url or ""}
        absent = sorted(key for key in ("title", "url") if key in needed and not fields[key])
        if absent:
            yield refuse(
                self.name,
                document,
                "missing_field",
                f"the prompts use {{{absent[0]}}} but the article's metadata has no {absent[0]}",
                {"fields": absent},
            )
            return
        system = self.system.format(**fields) if self.system else None
        sections = article_sections(document.text or "", subsections=self.subsections)
        skipped: Counter[str] = Counter()
        made = 0
        for section in sections:
            why = self._why_skipped(section, title)
            if why is not None:
                skipped[why] += 1
                continue
            heading = section.heading or title or ""
            made += 1
            yield Example(
                messages=chat_messages(system, self._ask(heading, fields), section.text),
                id=f"{document.id}#qa{section.position}",
                parent_id=document.id,
                metadata={
                    "url": url,
                    "title": title,
                    "language": metadata.get("language"),
                    "heading": heading,
                    "level": section.level,
                },
                location=document.location,
            )
        yield StepMetric(name="article_qa.sections", value=len(sections))
        yield StepMetric(name="article_qa.examples", value=made)
        for why in _SKIPS:
            yield StepMetric(name=f"article_qa.skipped_{why}", value=skipped[why])
        if not made:
            yield self._no_sections(document, len(sections), skipped)

    def _no_sections(self, document: Document, count: int, skipped: Counter[str]) -> Rejection:
        if not count:
            why = "the text is blank"
        else:
            parts = [f"{skipped[w]} {w.replace('_', ' ')}" for w in _SKIPS if skipped[w]]
            why = f"{count} section(s), none usable: {', '.join(parts)}"
        limits = f"min_chars={self.min_chars}" + (
            f", max_chars={self.max_chars}" if self.max_chars is not None else ""
        )
        return refuse(
            self.name,
            document,
            "no_sections",
            f"{why} ({limits}); check that the text has '#' heading lines, or change the limits",
            {"sections": count, "skipped": {w: skipped[w] for w in _SKIPS if skipped[w]}},
        )

    def transform(self, records: Iterable[Record]) -> Iterator[Example | Rejection | StepMetric]:
        """Yield the examples of each article, or one rejection for an article that gives none."""
        needed = self._placeholders()
        for record in records:
            if not isinstance(record, Document):
                yield not_a_document(self.name, record)
            elif record.text is None:
                yield refuse(
                    self.name,
                    record,
                    "missing_field",
                    "the document has no text; extract the article's main text first",
                    {"fields": ["text"]},
                )
            else:
                yield from self._article(record, needed)
