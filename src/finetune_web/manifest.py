"""Run manifests: what was run, on what, producing what, with which libraries."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from finetune_web.report import OutputFile

__all__ = ["FileDigest", "Manifest", "file_digest", "library_versions"]

#: Libraries whose versions can change outputs; recorded in every manifest.
TRACKED_LIBRARIES: tuple[str, ...] = (
    "finetune-web",
    "attrs",
    "charset-normalizer",
    "httpx",
    "openai",
    "tenacity",
    "tiktoken",
)

_CHUNK = 1 << 20


@attrs.frozen(kw_only=True)
class FileDigest:
    """A file's path (as given), size and sha256."""

    path: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return attrs.asdict(self)


def file_digest(path: str | Path, *, label: str | None = None) -> FileDigest:
    """Hash a file in chunks (never loading it whole).

    Args:
        path: the file.
        label: the path to record (defaults to ``str(path)``).
    """
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(path=label or str(path), bytes=size, sha256=digest.hexdigest())


def library_versions(names: Iterable[str] = TRACKED_LIBRARIES) -> dict[str, str]:
    """Return the installed version of each library (``"not installed"`` if absent)."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _inputs(value: Sequence[FileDigest]) -> tuple[FileDigest, ...]:
    return tuple(value)


def _outputs(value: Sequence[OutputFile]) -> tuple[OutputFile, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Manifest:
    """Everything needed to tell whether two runs should give the same outputs.

    It holds no timestamps and no absolute paths of outputs, so the same
    inputs, pipeline and seed give a byte-identical manifest.
    """

    pipeline: dict[str, Any]
    pipeline_sha256: str
    seed: int
    inputs: tuple[FileDigest, ...] = attrs.field(converter=_inputs)
    outputs: tuple[OutputFile, ...] = attrs.field(converter=_outputs)
    libraries: dict[str, str] = attrs.field(factory=library_versions)
    python: str = attrs.field(factory=platform.python_version)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "pipeline_sha256": self.pipeline_sha256,
            "seed": self.seed,
            "pipeline": self.pipeline,
            "inputs": [item.to_json() for item in self.inputs],
            "outputs": [item.to_json() for item in self.outputs],
            "libraries": self.libraries,
            "python": self.python,
        }

    def write(self, path: str | Path) -> None:
        """Write the manifest as indented, key-sorted JSON."""
        text = json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
        Path(path).write_text(text + "\n", encoding="utf-8")
