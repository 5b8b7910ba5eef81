"""Build a pipeline and its run options from a TOML file.

The file names components by their registered names::

    seed = 7

    [source]
    type = "json"
    path = "products.json"          # relative paths are relative to this file

    [[steps]]
    type = "template"
    user = "Write a description of {title}"
    assistant = "{description}"

    [[steps]]
    type = "split"
    validation = 0.2

    [output]
    dir = "out"                      # relative to this file too
    models = ["gpt-4o-mini", "gpt-4.1-mini"]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.pipeline import ErrorPolicy, Pipeline
from finetune_web.plugins import Family, Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["RunConfig", "load_config"]

_PATH_KEYS = frozenset(("path", "paths", "dir", "cache_dir"))
_TOP_KEYS = frozenset(("seed", "on_error", "source", "steps", "output"))
_OUTPUT_KEYS = frozenset(("dir", "models"))


@attrs.frozen(kw_only=True)
class RunConfig:
    """A pipeline and where and how to write its outputs."""

    pipeline: Pipeline
    output_dir: Path
    models: tuple[str, ...]


def _resolve(key: str, value: Any, base: Path) -> Any:
    if key not in _PATH_KEYS:
        return value
    if isinstance(value, str):
        return str(base / value)
    if isinstance(value, list):
        return [str(base / v) if isinstance(v, str) else v for v in value]
    return value


def _component(registry: Registry, family: Family, table: Any, where: str, base: Path) -> object:
    if not isinstance(table, Mapping) or not isinstance(table.get("type"), str):
        raise ConfigError(f"{where} must be a table with a string 'type' key")
    options = {k: _resolve(k, v, base) for k, v in table.items() if k != "type"}
    try:
        return registry.create(family, table["type"], options)
    except ConfigError as exc:
        raise ConfigError(f"{where} ({table['type']}): {exc.message}") from exc


def load_config(path: str | Path, *, registry: Registry | None = None) -> RunConfig:
    """Read a TOML pipeline config.

    Args:
        path: the TOML file.
        registry: where component names are looked up (default: built-ins and
            installed plugins).

    Raises:
        ConfigError: the file is missing, is not valid TOML, or names an
            unknown component or option (the message names the table).
    """
    path = Path(path)
    context = ErrorContext(path=str(path))
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("config file not found", context) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", context) from exc
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {unknown}; expected {sorted(_TOP_KEYS)}", context
        )
    registry = registry if registry is not None else Registry.discover()
    base = path.parent
    try:
        if "source" not in data:
            raise ConfigError("a [source] table is required")
        source = _component(registry, Family.SOURCES, data["source"], "[source]", base)
        steps = [
            _component(registry, Family.TRANSFORMS, table, f"[[steps]] #{n}", base)
            for n, table in enumerate(data.get("steps", []), start=1)
        ]
        output = data.get("output", {})
        bad_output = sorted(set(output) - _OUTPUT_KEYS)
        if bad_output:
            raise ConfigError(f"[output]: unknown key(s) {bad_output}; expected dir, models")
        seed = data.get("seed", 0)
        if not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, not {seed!r}")
        pipeline = Pipeline.from_source(source, seed=seed).then(*steps)  # type: ignore[arg-type]
        pipeline = pipeline.on_error(ErrorPolicy(data.get("on_error", "reject")))
        models = output.get("models", ["gpt-4o-mini"])
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError("[output] models must be a list of model names")
    except ConfigError as exc:
        raise exc.with_context(context) from None
    except ValueError as exc:
        raise ConfigError(str(exc), context) from exc
    return RunConfig(
        pipeline=pipeline,
        output_dir=base / output.get("dir", "out"),
        models=tuple(models),
    )
