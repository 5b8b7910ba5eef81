"""Run every ```python snippet of the formats and validation docs, as a user would."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = ("docs/formats.md", "docs/validation.md")
_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _snippets() -> list[tuple[str, int, str]]:
    found = []
    for name in DOCS:
        text = (REPO_ROOT / name).read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append((name, line, match.group(1)))
    return found


@pytest.mark.parametrize(("doc", "line", "code"), _snippets(), ids=lambda v: str(v)[:30])
def test_doc_snippet_runs(doc: str, line: int, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snippet at doc:line runs as-is from the repository root without raising."""
    monkeypatch.chdir(REPO_ROOT)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"{doc}:{line}", "exec"), {"__name__": "__main__"})


def test_every_doc_has_snippets() -> None:
    """Both pages hold runnable snippets, so the test above cannot pass vacuously."""
    assert {doc for doc, _, _ in _snippets()} == set(DOCS)
