"""The registry: built-ins, entry-point plugins, and the example plugin package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finetune_web import (
    ConfigError,
    Document,
    Example,
    Family,
    Message,
    Pipeline,
    PluginError,
    Registry,
    Rejection,
)
from finetune_web.testing import ListSource, check_transformer
from tests.conftest import REPO_ROOT


def test_builtins_are_registered_by_name() -> None:
    """The built-in sources and transforms are available under their config names."""
    registry = Registry.builtins()
    assert {"json", "jsonl", "csv", "chat_jsonl"} <= set(registry.names(Family.SOURCES))
    assert {"template", "split", "exact_dedup"} <= set(registry.names(Family.TRANSFORMS))


def test_unknown_names_suggest_close_ones() -> None:
    """A misspelt component name is a PluginError suggesting the right one."""
    with pytest.raises(PluginError, match="did you mean template"):
        Registry.builtins().create(Family.TRANSFORMS, "tempalte", {})


def test_with_plugin_returns_a_new_registry() -> None:
    """with_plugin adds a factory without changing the original registry."""
    base = Registry.builtins()
    extended = base.with_plugin(Family.SOURCES, "mine", lambda: ListSource([]))
    assert "mine" in extended.names(Family.SOURCES)
    assert "mine" not in base.names(Family.SOURCES)


def test_a_factory_building_the_wrong_thing_is_refused() -> None:
    """A component that does not implement its family's interface is a PluginError."""
    registry = Registry.builtins().with_plugin(Family.TRANSFORMS, "nothing", object)
    with pytest.raises(PluginError, match="does not implement Transformer"):
        registry.create(Family.TRANSFORMS, "nothing", {})


def test_broken_plugin_import_names_the_plugin() -> None:
    """A plugin whose module cannot be imported gives a PluginError naming it."""
    registry = Registry.builtins().with_plugin(Family.TRANSFORMS, "ghost", "no_such_module:Thing")
    with pytest.raises(PluginError, match="ghost"):
        registry.create(Family.TRANSFORMS, "ghost", {})


def test_bad_option_values_are_config_errors() -> None:
    """A bad option value (e.g. a fraction of 2) is a ConfigError, not a crash."""
    with pytest.raises(ConfigError):
        Registry.builtins().create(Family.TRANSFORMS, "split", {"validation": 2.0})


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin package, installed with pip into a private directory."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(REPO_ROOT / "examples" / "plugin"),
        ],
        check=True,
    )
    return target


def test_example_plugin_is_discovered_and_used(
    installed_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed example plugin is found through its entry point, passes the contract
    checks, and runs in a pipeline by name."""
    monkeypatch.syspath_prepend(str(installed_plugin))
    registry = Registry.discover(path=[str(installed_plugin)])
    info = registry.info(Family.TRANSFORMS, "min_words")
    assert info.distribution == "finetune-web-minwords"
    step = registry.create(Family.TRANSFORMS, "min_words", {"min_words": 3})

    def example(i: int, answer: str) -> Example:
        return Example(
            id=f"e{i}",
            messages=[Message(role="user", content="q"), Message(role="assistant", content=answer)],
        )

    records = [example(0, "one two three"), example(1, "too short"), Document(id="d", text="x")]
    outputs = check_transformer(step, records)  # type: ignore[arg-type]
    assert [o.reason if isinstance(o, Rejection) else o.id for o in outputs] == [
        "e0",
        "answer_too_short",
        "d",
    ]
    kept = list(Pipeline.from_source(ListSource(records)).then(step).stream())  # type: ignore[arg-type]
    assert [r.id for r in kept] == ["e0", "d"]
