"""Shared fixtures: paths to the repository and to the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The "ci" profile (.ci/run) draws the same examples on every run, so a CI result never
# depends on chance; other runs keep drawing new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = REPO_ROOT / ".." / "shared" / "realdata"


@pytest.fixture
def realdata() -> Path:
    """The shared real-data folder, or a skip when it is absent (a user's clone)."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is absent (a user's clone): no real data to check")
    return REALDATA


@pytest.fixture
def demo_products() -> Path:
    """The demo's bundled scraped-products file."""
    return REPO_ROOT / "examples" / "demo" / "products.json"
