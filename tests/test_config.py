"""TOML pipeline configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_web import ConfigError, load_config
from tests.conftest import REPO_ROOT


def test_demo_config_builds_the_documented_pipeline() -> None:
    """The demo config names a JSON source, its steps, an output dir and two models."""
    config = load_config(REPO_ROOT / "examples" / "demo" / "demo.toml")
    assert config.pipeline.step_names() == (
        "JsonSource",
        "template",
        "clean",
        "redact_pii",
        "exact_dedup",
        "near_dedup",
        "split",
    )
    assert config.pipeline.seed == 7
    assert config.models == ("gpt-4o-mini", "gpt-4.1-mini")
    assert config.output_dir == REPO_ROOT / "examples" / "demo" / "out"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = 1\n", "a \\[source\\] table is required"),
        ('[source]\ntype = "jsn"\npath = "x"\n', "did you mean json"),
        (
            '[source]\ntype = "json"\npath = "x"\n'
            '[[steps]]\ntype = "template"\nusr = "a"\nassistant = "b"\n',
            "\\[\\[steps\\]\\] #1 \\(template\\): unknown option",
        ),
        ('[source]\ntype = "json"\npath = "x"\ncolour = 1\n', "unknown option"),
        ('sead = 1\n[source]\ntype = "json"\npath = "x"\n', "unknown top-level key"),
        ("[source\n", "invalid TOML"),
        (
            '[source]\ntype = "json"\npath = "x"\n[output]\nmodel = "a"\n',
            "\\[output\\]: unknown key",
        ),
    ],
)
def test_config_errors_name_the_file_and_table(tmp_path: Path, text: str, message: str) -> None:
    """Each config mistake is a ConfigError naming the file and what is wrong."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """A relative source path is read from the config file's folder, not the working dir."""
    path = _write(tmp_path, '[source]\ntype = "jsonl"\npath = "data.jsonl"\n')
    config = load_config(path)
    assert config.pipeline.describe()["source"]["path"] == str(tmp_path / "data.jsonl")
