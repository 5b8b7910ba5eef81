"""Fixtures for the source tests: the shared real data and a small file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"


@pytest.fixture
def brightdata() -> Path:
    """The Bright Data Amazon folder, or a skip when ../shared/realdata is absent."""
    folder = REALDATA / "brightdata_amazon"
    if not folder.is_dir():
        pytest.skip("../shared/realdata is absent (a user's clone): no Bright Data output")
    return folder


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Return a helper writing text (as UTF-8) or bytes to a file in tmp_path."""

    def write_file(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write_file
