"""Adapters that turn plain functions into pipeline steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import attrs

from finetune_web.records import Record, Rejection

__all__ = ["KeepIf", "MapRecords", "keep_if", "map_records"]


def _callable_name(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


@attrs.frozen(kw_only=True)
class MapRecords:
    """Apply a function to every record; the function returns the new record.

    To stay picklable (for other executors), pass a module-level function.
    """

    fn: Callable[[Record], Record]
    name: str = "map"

    def transform(self, records: Iterable[Record]) -> Iterator[Record]:
        """Yield ``fn(record)`` for every record."""
        for record in records:
            yield self.fn(record)

    def describe(self) -> dict[str, str]:
        """Name the wrapped function, for pipeline descriptions and manifests."""
        return {"fn": _callable_name(self.fn)}


@attrs.frozen(kw_only=True)
class KeepIf:
    """Keep records for which a predicate is true; reject the others with ``reason``."""

    predicate: Callable[[Record], bool]
    reason: str = "filtered"
    name: str = "keep_if"

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection]:
        """Yield kept records and a rejection for each other one."""
        for record in records:
            if self.predicate(record):
                yield record
            else:
                yield Rejection(
                    record_id=record.id,
                    step=self.name,
                    reason=self.reason,
                    message=f"{record.id} failed {_callable_name(self.predicate)}",
                    location=record.location,
                )

    def describe(self) -> dict[str, str]:
        """Name the predicate, for pipeline descriptions and manifests."""
        return {"predicate": _callable_name(self.predicate), "reason": self.reason}


def map_records(fn: Callable[[Record], Record], *, name: str = "map") -> MapRecords:
    """Wrap ``fn`` (record -> record) as a pipeline step."""
    return MapRecords(fn=fn, name=name)


def keep_if(
    predicate: Callable[[Record], bool], *, reason: str = "filtered", name: str = "keep_if"
) -> KeepIf:
    """Wrap ``predicate`` (record -> bool) as a filtering step that rejects with ``reason``."""
    return KeepIf(predicate=predicate, reason=reason, name=name)
