"""Write the main-text tree that trafilatura extracts as light markdown or plain text.

trafilatura describes a page's main text as an XML tree (``head`` with a
``rend`` of ``h1``..``h6``, ``p``, ``list``/``item``, ``table``/``row``/``cell``,
``quote``, ``code``, ``lb`` line breaks, ``ref`` links, ``hi`` emphasis,
``div`` containers).  This module turns that tree into blocks: headings as
``#`` lines, list items as ``- `` lines (nested lists indented by two
spaces), tables as pipe rows, code as fenced blocks, everything else as
paragraphs; blocks are separated by one blank line.  Emphasis is dropped, and
no character of the text is escaped, so the words stay exactly as on the page.

The element is only read through ``tag``, ``text``, ``tail``, ``get`` and
iteration over its children, so any lxml element works.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["render_blocks"]

_SPACES = re.compile(r"[^\S\n]+")
_AROUND_NEWLINE = re.compile(r" *\n *")
_BLANK_LINES = re.compile(r"\n{2,}")
_HEADING_LEVEL = re.compile(r"h([1-6])$")

#: Elements that start a block of their own.
_BLOCKS = frozenset({"head", "p", "list", "table", "quote", "code", "div", "body", "main", "doc"})
#: Elements that only hold other blocks.
_CONTAINERS = frozenset({"div", "quote", "body", "main", "doc"})
#: Elements whose text is left out entirely (images, their captions are ``p``).
_SKIPPED = frozenset({"graphic"})


def _tag(element: Any) -> str:
    tag = element.tag
    return tag if isinstance(tag, str) else ""  # comments and processing instructions


def _squeeze(text: str) -> str:
    """Collapse runs of spaces (keeping line breaks) and strip the ends."""
    text = _AROUND_NEWLINE.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n", text).strip()


def _inline(element: Any, links: bool, breaks: str = "\n") -> str:
    """Return the text inside ``element`` (not its tail) as one inline run."""
    parts: list[str] = [element.text or ""]
    for child in element:
        tag = _tag(child)
        if tag == "lb":
            parts.append(breaks)
        elif tag and tag not in _SKIPPED:
            inner = _inline(child, links, breaks)
            target = child.get("target") if tag == "ref" else None
            if links and target and inner.strip():
                inner = f"[{inner.strip()}]({target})"
            # a nested block (a heading in a list item, a paragraph in a cell) is a separate run
            parts.append(f" {inner} " if tag in _BLOCKS or tag == "item" else inner)
        parts.append(child.tail or "")
    return "".join(parts)


class _Writer:
    """Collect the blocks of one tree."""

    def __init__(self, *, markdown: bool, links: bool) -> None:
        self.markdown = markdown
        self.links = links
        self.blocks: list[str] = []

    def add(self, text: str) -> None:
        if text.strip():
            self.blocks.append(text.strip("\n"))

    def container(self, element: Any) -> None:
        """Write the blocks inside ``element``; loose text becomes paragraphs."""
        loose: list[str] = [element.text or ""]
        for child in element:
            tag = _tag(child)
            if tag in _BLOCKS or tag == "item":
                self.add(_squeeze("".join(loose)))
                loose = []
                self.block(child)
            elif tag == "lb":
                loose.append("\n")
            elif tag and tag not in _SKIPPED:
                loose.append(_inline(child, self.links))
            loose.append(child.tail or "")
        self.add(_squeeze("".join(loose)))

    def block(self, element: Any) -> None:
        tag = _tag(element)
        if tag in _CONTAINERS:
            self.container(element)
        elif tag == "head":
            self.heading(element)
        elif tag == "list":
            self.add("\n".join(self.items(element, depth=0)))
        elif tag == "item":  # an item outside a list
            self.add("\n".join(self.item(element, depth=0)))
        elif tag == "table":
            self.add("\n".join(self.table(element)))
        elif tag == "code":
            self.code(element)
        else:
            self.add(_squeeze(_inline(element, self.links)))

    def heading(self, element: Any) -> None:
        text = _squeeze(_inline(element, self.links, breaks=" "))
        if not text:
            return
        level = _HEADING_LEVEL.match(element.get("rend") or "")
        marks = "#" * int(level.group(1)) if level else "##"
        self.add(f"{marks} {text}" if self.markdown else text)

    def items(self, element: Any, depth: int) -> list[str]:
        lines: list[str] = []
        for child in element:
            if _tag(child) == "item":
                lines += self.item(child, depth)
            elif _tag(child) == "list":
                lines += self.items(child, depth + 1)
        return lines

    def item(self, element: Any, depth: int) -> list[str]:
        """Return the lines of one list item: its own text, then its nested lists."""
        own: list[str] = [element.text or ""]
        nested: list[str] = []
        for child in element:
            tag = _tag(child)
            if tag == "list":
                nested += self.items(child, depth + 1)
            elif tag == "lb":
                own.append(" ")
            elif tag and tag not in _SKIPPED:
                inner = _inline(child, self.links, breaks=" ")
                target = child.get("target") if tag == "ref" else None
                if self.links and target and inner.strip():
                    inner = f"[{inner.strip()}]({target})"
                own.append(f" {inner} " if tag in _BLOCKS else inner)
            own.append(child.tail or "")
        text = _squeeze("".join(own).replace("\n", " "))
        indent = "  " * depth
        lines = [f"{indent}- {text}" if self.markdown else f"{indent}{text}"] if text else []
        return lines + nested

    def table(self, element: Any) -> list[str]:
        rows: list[list[str]] = []
        pipe = "\\|" if self.markdown else "|"
        for row in element.iter("row"):
            cells = [
                _squeeze(_inline(cell, self.links, breaks=" ")).replace("|", pipe)
                for cell in row
                if _tag(cell) == "cell"
            ]
            if any(cells):
                rows.append(cells)
        if not rows:
            return []
        if not self.markdown:
            return [" | ".join(cells) for cells in rows]
        width = max(len(cells) for cells in rows)
        lines = []
        for number, cells in enumerate(rows):
            cells = cells + [""] * (width - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            if number == 0:
                lines.append("|" + " --- |" * width)
        return lines

    def code(self, element: Any) -> None:
        text = "".join(element.itertext()).strip("\n")
        if not text.strip():
            return
        self.add(f"```\n{text}\n```" if self.markdown else text)


def render_blocks(body: Any, *, markdown: bool = True, links: bool = False) -> str:
    """Return the text of trafilatura's main-text tree.

    Args:
        body: the root element of the tree (``Document.body`` of
            ``trafilatura.bare_extraction``).
        markdown: write headings, list items, tables and code as markdown;
            otherwise plain lines with no markers.
        links: write links as ``[text](target)`` (the tree holds targets only
            when trafilatura ran with ``include_links=True``).

    Returns:
        The blocks separated by blank lines, or ``""`` when the tree holds no text.
    """
    writer = _Writer(markdown=markdown, links=links)
    writer.container(body)
    return "\n\n".join(writer.blocks)
