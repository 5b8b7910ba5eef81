"""The curated public API of finetune_web."""

from __future__ import annotations

import importlib

import pytest

import finetune_web

MODULES = (
    "finetune_web",
    "finetune_web.backends",
    "finetune_web.evaluation",
    "finetune_web.formats",
    "finetune_web.packing",
    "finetune_web.registry",
    "finetune_web.sources",
    "finetune_web.transforms",
)


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then CamelCase classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_importable(name: str) -> None:
    """Each public package's __all__ is sorted, has no duplicates, and every name exists."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_key)
    assert len(set(exported)) == len(exported)
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == []


def test_importing_does_not_load_heavy_optional_modules() -> None:
    """Importing the package loads no optional heavy dependency (torch, transformers...)."""
    import subprocess
    import sys

    code = (
        "import sys, finetune_web; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trafilatura') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_is_exposed() -> None:
    """The package reports its installed version."""
    assert finetune_web.__version__.count(".") >= 2
