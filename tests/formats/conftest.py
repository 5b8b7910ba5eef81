"""Fixtures for the format tests: the shared real data and small file writers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REALDATA = REPO_ROOT / ".." / "shared" / "realdata"


@pytest.fixture
def toy_chat() -> Path:
    """The cookbook's 5-example chat file, or a skip when ../shared/realdata is absent."""
    path = REALDATA / "toy_chat_fine_tuning.jsonl"
    if not path.is_file():
        pytest.skip("../shared/realdata is absent (a user's clone): no cookbook toy file")
    return path


@pytest.fixture
def write_lines(tmp_path: Path) -> Callable[..., Path]:
    """Return a helper writing JSON values (or raw str/bytes lines) to a JSONL file."""

    def write(items: list[Any], name: str = "data.jsonl") -> Path:
        chunks = []
        for item in items:
            if isinstance(item, bytes):
                chunks.append(item)
            elif isinstance(item, str):
                chunks.append(item.encode("utf-8"))
            else:
                chunks.append(json.dumps(item, ensure_ascii=False).encode("utf-8"))
        path = tmp_path / name
        path.write_bytes(b"\n".join(chunks) + b"\n")
        return path

    return write
