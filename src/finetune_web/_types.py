"""Type aliases shared across the package."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

#: A decoded JSON object (what ``json.loads`` returns for ``{...}``).
JSONObject: TypeAlias = Mapping[str, Any]

#: Anything accepted where a filesystem path is expected.
StrPath: TypeAlias = "str | os.PathLike[str]"

#: Chat roles accepted by OpenAI's fine-tuning chat format.
Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool", "function"]

ROLES: frozenset[str] = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
