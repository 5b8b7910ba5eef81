"""Exact deduplication on normalised content."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Example, Preference, Record, Rejection, messages_of

__all__ = ["ExactDedup", "normalize_for_dedup"]

_SPACE = re.compile(r"\s+")
_ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))


def normalize_for_dedup(text: str) -> str:
    """Return ``text`` in NFKC, case-folded, with runs of whitespace collapsed.

    Two texts that differ only in case, Unicode compatibility forms or
    spacing normalise to the same string; any other difference is kept.
    """
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _roles(value: Iterable[str]) -> tuple[str, ...]:
    roles = tuple(value)
    unknown = sorted(set(roles) - _ROLES)
    if unknown or not roles:
        raise ConfigError(f"roles must be chat roles, got {list(roles)!r}")
    return roles


@attrs.frozen(kw_only=True)
class ExactDedup:
    """Keep the first of records whose chosen content is identical after normalisation.

    Later copies are rejected with reason ``duplicate`` and
    ``details["duplicate_of"]`` naming the kept record.

    Attributes:
        roles: for examples, the roles whose messages form the key
            (default: user and assistant, so a changed system prompt does not
            hide a duplicate).
        normalize: compare normalised text (see :func:`normalize_for_dedup`)
            rather than raw text.
        name: the step's name in reports.
    """

    roles: tuple[str, ...] = attrs.field(default=("user", "assistant"), converter=_roles)
    normalize: bool = True
    name: str = "exact_dedup"

    def key(self, record: Record) -> bytes:
        """Return the 16-byte digest two duplicates share."""
        parts: list[str]
        if isinstance(record, Document):
            body = record.text if record.text is not None else record.data
            parts = [json.dumps(body, ensure_ascii=False, sort_keys=True)]
        elif isinstance(record, Example | Preference):
            parts = [f"{m.role}\x1f{m.text}" for m in messages_of(record) if m.role in self.roles]
        if self.normalize:
            parts = [normalize_for_dedup(part) for part in parts]
        return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).digest()

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection]:
        """Yield first occurrences; reject later copies, pointing at the kept record."""
        kept: dict[bytes, str] = {}
        for record in records:
            digest = self.key(record)
            first = kept.get(digest)
            if first is None:
                kept[digest] = record.id
                yield record
                continue
            yield Rejection(
                record_id=record.id,
                step=self.name,
                reason="duplicate",
                message=f"{record.id} duplicates {first}",
                location=record.location,
                details={"duplicate_of": first},
            )
