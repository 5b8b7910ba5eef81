"""Deterministic train/validation split by content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Example, Preference, Record, Rejection, Split, canonical_content

__all__ = ["HashSplit"]

_SCALE = float(1 << 64)


def _fraction_in_range(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), not {value!r}")


@attrs.frozen(kw_only=True)
class HashSplit:
    """Assign each example to train or validation by a seeded hash of its content.

    A record's side depends only on its own content (or on its ``group_key``
    metadata value) and the seed, never on the other records: adding records
    never moves an existing one, re-running gives the same split, and
    identical examples always land on the same side.

    Attributes:
        validation: the expected fraction of examples sent to validation.
        seed: changes the assignment while keeping it deterministic.
        group_key: a metadata key; records sharing its value land on the same
            side (e.g. near-duplicate groups, so none leaks across the split).
        name: the step's name in reports.
    """

    validation: float = attrs.field(default=0.1, validator=_fraction_in_range)
    seed: int = 0
    group_key: str | None = None
    name: str = "split"

    def side(self, record: Example | Preference) -> Split:
        """Return the side ``record`` belongs to."""
        group = record.metadata.get(self.group_key) if self.group_key else None
        key = str(group).encode() if group is not None else canonical_content(record)
        digest = hashlib.blake2b(key, digest_size=8, key=str(self.seed).encode()).digest()
        point = int.from_bytes(digest, "big") / _SCALE
        return Split.VALIDATION if point < self.validation else Split.TRAIN

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection]:
        """Yield every example with its ``split`` set; other records are rejected."""
        for record in records:
            if isinstance(record, Example | Preference):
                yield attrs.evolve(record, split=self.side(record))
            else:
                yield Rejection(
                    record_id=record.id,
                    step=self.name,
                    reason="wrong_record_type",
                    message=f"document {record.id} reached the split step: "
                    "turn documents into examples first (e.g. with a template step)",
                    location=record.location,
                )
