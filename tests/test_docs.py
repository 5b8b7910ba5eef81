"""Run every ```python snippet in docs/, in order, one namespace per page, as a reader would."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted((REPO_ROOT / "docs").glob("*.md"))


def _snippets(page: Path) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1)) for match in _FENCE.finditer(text)
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_snippets_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every snippet of the page runs as-is from the repository root, in page order.

    The snippets share one module namespace (registered in sys.modules, so
    classes a page defines can be pickled by the contract checks).
    """
    monkeypatch.chdir(REPO_ROOT)
    module = types.ModuleType(f"docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for line, code in _snippets(page):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"{page.name}:{line}", "exec"), module.__dict__)


def test_concept_pages_exist_and_hold_snippets() -> None:
    """The pages the foundation promises exist, and most hold runnable snippets."""
    names = {page.stem for page in PAGES}
    assert {"pipeline", "sources", "formats", "validation", "cli", "plugins", "errors"} <= names
    with_code = {page.stem for page in PAGES if _snippets(page)}
    assert {"pipeline", "sources", "formats", "validation", "plugins", "errors"} <= with_code
    web = {"web_sources", "http", "extraction", "transcripts", "brightdata", "web_examples"}
    assert web | {"local_training", "evaluation"} <= with_code
