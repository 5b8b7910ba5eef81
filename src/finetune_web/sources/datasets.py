"""Sources over existing fine-tuning datasets (chat or DPO JSONL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from finetune_web.formats import read_chat_jsonl, read_dpo_jsonl
from finetune_web.records import Record, Rejection

__all__ = ["ChatJsonlSource", "DpoJsonlSource"]


@attrs.frozen
class ChatJsonlSource:
    """Read an OpenAI chat JSONL file as :class:`~finetune_web.records.Example` records.

    Invalid lines become rejections naming the file and line, so an existing
    dataset can be re-validated, deduplicated and re-split by a pipeline.
    """

    path: Path = attrs.field(converter=Path)
    encoding: str | None = attrs.field(default=None, kw_only=True)
    name: str = attrs.field(default="chat_jsonl", kw_only=True)

    def read(self) -> Iterator[Record | Rejection]:
        """Yield the file's examples and rejections in order."""
        yield from read_chat_jsonl(self.path, encoding=self.encoding)

    def input_files(self) -> Sequence[Path]:
        """Return the file read."""
        return (self.path,)


@attrs.frozen
class DpoJsonlSource:
    """Read a DPO preference JSONL file as :class:`~finetune_web.records.Preference` records."""

    path: Path = attrs.field(converter=Path)
    encoding: str | None = attrs.field(default=None, kw_only=True)
    name: str = attrs.field(default="dpo_jsonl", kw_only=True)

    def read(self) -> Iterator[Record | Rejection]:
        """Yield the file's preference pairs and rejections in order."""
        yield from read_dpo_jsonl(self.path, encoding=self.encoding)

    def input_files(self) -> Sequence[Path]:
        """Return the file read."""
        return (self.path,)
