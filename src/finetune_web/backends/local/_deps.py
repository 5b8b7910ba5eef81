"""Check that the ``local`` extra (torch, transformers, peft) is installed."""

from __future__ import annotations

import importlib.util

from finetune_web.errors import MissingDependencyError

__all__ = ["LOCAL_PIP_HINT", "require_local"]

#: How to install what local training needs: torch first, so pip keeps the wheel already chosen.
LOCAL_PIP_HINT = 'pip install torch && pip install "finetune-web[local]"'

_MODULES = ("torch", "transformers", "peft", "accelerate")


def require_local(what: str = "local training") -> None:
    """Raise a helpful error unless torch, transformers and peft can be imported.

    Args:
        what: the feature that needs them, named in the message.

    Raises:
        MissingDependencyError: one of the packages is missing.
    """
    missing = [name for name in _MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"{what} needs {', '.join(missing)}: {LOCAL_PIP_HINT} "
            "(install torch first, choosing the CPU or CUDA wheel you want)"
        )
