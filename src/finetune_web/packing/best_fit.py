"""Best-fit-decreasing packing of tokenized examples into rows of at most ``seq_len`` tokens.

The packer sorts every piece by length (longest first, ties by input order)
and puts each into the open row whose free space is the smallest that still
holds it, opening a new row when none does.  Free space is an integer in
``0..seq_len``, so open rows are kept in one bucket per free-space value
and the smallest sufficient value is found by bisection over the sorted
list of non-empty buckets: ``O(n log n)`` for ``n`` pieces, whatever the
row length.

Rows are not padded: a row holds at most ``seq_len`` tokens, and a collator
pads a batch later.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate

import attrs

from finetune_web.errors import ConfigError, ErrorContext, RecordError
from finetune_web.records import Pack, Tokenized

__all__ = [
    "IGNORE_INDEX",
    "BestFitPacker",
    "Overflow",
    "chunk_id",
    "pack_bound",
    "piece_lengths",
    "plan_rows",
]

#: The label of a token that is not trained on (the loss ignores it).
IGNORE_INDEX = -100


class Overflow(enum.Enum):
    """What :class:`BestFitPacker` does with an example longer than its ``seq_len``."""

    #: Cut it into pieces of ``seq_len`` tokens (the last one shorter), each
    #: packed as if it were an example of its own; no token is lost.
    SPLIT = "split"
    #: Raise :class:`~finetune_web.errors.RecordError` naming the example.
    RAISE = "raise"


def chunk_id(example_id: str, number: int, count: int) -> str:
    """Return the id a row gives to one piece of a split example.

    Args:
        example_id: the id of the example that was split.
        number: the piece's number, from 1.
        count: how many pieces the example was split into.

    Returns:
        ``"<example_id>#chunk<number>of<count>"``, e.g. ``"doc-7#chunk2of3"``.
    """
    return f"{example_id}#chunk{number}of{count}"


def piece_lengths(lengths: Iterable[int], seq_len: int) -> list[int]:
    """Return the lengths of the pieces that splitting over-long examples gives.

    An example of ``n <= seq_len`` tokens is one piece of ``n``; a longer one
    becomes ``n // seq_len`` pieces of ``seq_len`` and, when ``n`` is not a
    multiple of ``seq_len``, one last piece of ``n % seq_len``.

    Args:
        lengths: the examples' token counts, each ``>= 0``.
        seq_len: the row length.

    Returns:
        The piece lengths, example by example and piece by piece in order.
    """
    pieces: list[int] = []
    for length in lengths:
        if length <= seq_len:
            pieces.append(length)
            continue
        full, rest = divmod(length, seq_len)
        pieces.extend([seq_len] * full)
        if rest:
            pieces.append(rest)
    return pieces


def pack_bound(lengths: Iterable[int], seq_len: int) -> int:
    """Return a lower bound on the number of rows any packing of ``lengths`` needs.

    The bound is Martello and Toth's L2 for bin packing.  It is never below
    either of the two simple bounds: ``ceil(sum(lengths) / seq_len)`` (the
    tokens must fit) and the number of pieces longer than ``seq_len / 2``
    (no two of them share a row).  Examples longer than ``seq_len`` count as
    the pieces :func:`piece_lengths` cuts them into, as the default
    ``overflow="split"`` packs them.

    Args:
        lengths: the examples' token counts, each ``>= 0``.
        seq_len: the row length.

    Returns:
        The bound; 0 when there is no token at all.

    Raises:
        ConfigError: ``seq_len`` is not positive.
    """
    if seq_len < 1:
        raise ConfigError(f"seq_len must be a positive number of tokens, not {seq_len!r}")
    sizes = sorted(size for size in piece_lengths(lengths, seq_len) if size > 0)
    if not sizes:
        return 0
    prefix = [0, *accumulate(sizes)]
    big = bisect_right(sizes, seq_len // 2)  # first piece longer than seq_len / 2
    best = 0
    candidates = {0, *sizes[:big]}  # every alpha <= seq_len / 2 that changes the sets
    for alpha in candidates:
        edge = bisect_right(sizes, seq_len - alpha)  # pieces above edge fit with no alpha-piece
        over = len(sizes) - edge
        middle, middle_sum = edge - big, prefix[edge] - prefix[big]
        small_sum = prefix[big] - prefix[bisect_left(sizes, alpha)]
        spill = small_sum - (middle * seq_len - middle_sum)
        best = max(best, over + middle + max(0, -(-spill // seq_len)))
    return best


def plan_rows(lengths: Sequence[int], seq_len: int) -> list[list[int]]:
    """Assign items to rows by best-fit decreasing.

    Items are taken longest first (ties in input order); each goes to the
    open row with the least free space that holds it, or to a new row.
    Among rows with the same free space the most recently filled one is
    chosen.  Empty items go to a full row when there is one.

    Args:
        lengths: each item's length, ``0 <= length <= seq_len``.
        seq_len: the row length.

    Returns:
        The rows in the order they were opened, each the list of its items'
        indices in the order they were placed (longest first).

    Raises:
        ConfigError: ``seq_len`` is not positive or an item does not fit in a row.
    """
    if seq_len < 1:
        raise ConfigError(f"seq_len must be a positive number of tokens, not {seq_len!r}")
    if lengths and not 0 <= min(lengths) <= max(lengths) <= seq_len:
        raise ConfigError(f"every item must hold 0 to {seq_len} tokens to be planned in rows")
    by_length: list[list[int]] = [[] for _ in range(seq_len + 1)]  # a counting sort
    for item, length in enumerate(lengths):
        by_length[length].append(item)
    rows: list[list[int]] = []
    free_values: list[int] = []  # sorted free-space values that have at least one row
    rows_with: list[list[list[int]]] = [[] for _ in range(seq_len + 1)]  # free space -> rows
    for length in range(seq_len, -1, -1):
        for item in by_length[length]:  # longest first, ties in input order
            at = bisect_left(free_values, length)
            if at < len(free_values):
                free = free_values[at]
                bucket = rows_with[free]
                row = bucket.pop()
                if not bucket:
                    del free_values[at]
            else:
                free = seq_len
                row = []
                rows.append(row)
            row.append(item)
            bucket = rows_with[free - length]
            if not bucket:
                insort(free_values, free - length)
            bucket.append(row)
    return rows


def _overflow(value: Overflow | str) -> Overflow:
    try:
        return Overflow(value)
    except ValueError:
        choices = ", ".join(repr(o.value) for o in Overflow)
        raise ConfigError(f"overflow must be one of {choices}, not {value!r}") from None


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be a positive number of tokens, not {value!r}")


@attrs.frozen
class BestFitPacker:
    """Packs tokenized examples into as few rows as it can, by best-fit decreasing.

    Each row is the concatenation of whole examples (or pieces of split
    ones), at most ``seq_len`` tokens long and not padded.  In a row:

    - ``input_ids`` are the examples' tokens, one example after the other;
    - ``labels`` are the examples' labels, except the first label of each
      example, which is -100 so no example is trained to follow another;
    - ``position_ids`` restart at 0 at each example's first token;
    - ``example_ids`` name the examples in row order; a piece of a split
      example is named by :func:`chunk_id`.

    Every token of every input lands in exactly one row, once, and each
    example (each piece) stays contiguous.  The result depends only on the
    input: ties are broken by input order.  Packing is over the whole
    dataset, so ``pack`` reads every example before it yields the first row
    and holds them all in memory.

    Attributes:
        seq_len: the most tokens a row may hold.
        overflow: what to do with an example longer than ``seq_len``:
            ``"split"`` (the default) packs its pieces of ``seq_len`` tokens
            as separate examples, each with its own labels and with
            position ids restarting at 0; ``"raise"`` raises
            :class:`~finetune_web.errors.RecordError`.
        name: the packer's name in reports.
    """

    seq_len: int = attrs.field(validator=_positive)
    overflow: Overflow = attrs.field(default=Overflow.SPLIT, converter=_overflow, kw_only=True)
    name: str = attrs.field(default="best_fit", kw_only=True)

    def pack(self, examples: Iterable[Tokenized]) -> Iterator[Pack]:
        """Yield the packed rows, in the order they were opened (longest first).

        Raises:
            RecordError: an example is longer than ``seq_len`` under ``overflow="raise"``.
        """
        items = list(examples)
        seq_len = self.seq_len
        lengths = [len(item.input_ids) for item in items]
        pieces = _Pieces.of(lengths, seq_len)
        if pieces.owners and self.overflow is Overflow.RAISE:
            index = next(i for i, length in enumerate(lengths) if length > seq_len)
            raise RecordError(
                f"example {items[index].id} has {lengths[index]} tokens, more than "
                f'seq_len={seq_len}; truncate it first, raise seq_len, or use overflow="split"',
                ErrorContext(record_id=items[index].id, index=index, step=self.name),
                reason="too_long",
            )
        prefixes = _Prefixes(tuple(range(seq_len)))
        for row in plan_rows(pieces.sizes, seq_len):
            yield pieces.build(items, row, prefixes.get)


def _masked(labels: tuple[int, ...]) -> tuple[int, ...]:
    """Return ``labels`` with its first label set to -100 (the same tuple when it already is)."""
    if not labels or labels[0] == IGNORE_INDEX:
        return labels
    return (IGNORE_INDEX,) + labels[1:]  # noqa: RUF005 -- unpacking would copy twice more


class _Prefixes:
    """Position-id runs ``(0, 1, ..., n - 1)``, cached up to a budget of cached ids.

    Reusing one tuple per length saves building and freeing a slice for each
    piece; the budget bounds the memory it holds (32 MB of pointers).
    """

    __slots__ = ("_budget", "_cache", "_positions")

    def __init__(self, positions: tuple[int, ...], budget: int = 1 << 22) -> None:
        self._positions = positions
        self._cache: dict[int, tuple[int, ...]] = {}
        self._budget = budget

    def get(self, size: int) -> tuple[int, ...]:
        """Return ``(0, 1, ..., size - 1)``."""
        run = self._cache.get(size)
        if run is None:
            run = self._positions[:size]
            if size <= self._budget:
                self._budget -= size
                self._cache[size] = run
        return run


@attrs.frozen
class _Pieces:
    """The pieces to pack: whole examples, or their chunks when some are too long.

    When no example is longer than ``seq_len``, piece ``i`` is example ``i``
    and ``owners`` and ``starts`` are empty.
    """

    sizes: list[int]
    owners: list[int]
    starts: list[int]
    seq_len: int

    @classmethod
    def of(cls, lengths: list[int], seq_len: int) -> _Pieces:
        """Cut the examples of ``lengths`` into pieces of at most ``seq_len``."""
        if not lengths or max(lengths) <= seq_len:
            return cls(lengths, [], [], seq_len)
        sizes: list[int] = []
        owners: list[int] = []
        starts: list[int] = []
        for index, length in enumerate(lengths):
            for start in range(0, max(length, 1), seq_len):
                sizes.append(min(seq_len, length - start))
                owners.append(index)
                starts.append(start)
        return cls(sizes, owners, starts, seq_len)

    def build(
        self,
        items: Sequence[Tokenized],
        row: list[int],
        prefix: Callable[[int], tuple[int, ...]],
    ) -> Pack:
        """Build the :class:`Pack` of one planned row of piece indices."""
        sizes, owners, starts, seq_len = self.sizes, self.owners, self.starts, self.seq_len
        tokens: list[tuple[int, ...]] = []
        labels: list[tuple[int, ...]] = []
        names: list[str] = []
        for piece in row:
            size = sizes[piece]
            item = items[owners[piece] if owners else piece]
            total = len(item.input_ids)
            if size == total:
                tokens.append(item.input_ids)
                labels.append(_masked(item.labels))
                names.append(item.id)
            else:
                start = starts[piece]
                tokens.append(item.input_ids[start : start + size])
                labels.append(_masked(item.labels[start : start + size]))
                names.append(chunk_id(item.id, start // seq_len + 1, -(-total // seq_len)))
        return Pack(
            input_ids=_join(tokens),
            labels=_join(labels),
            position_ids=_join([prefix(len(part)) for part in tokens]),
            example_ids=names,
        )


def _join(parts: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Concatenate tuples with as few copies of each item as pure Python allows.

    One part is returned as is and two are added (one copy).  Longer rows
    are gathered with ``list.extend`` (a pointer copy per part, far faster
    than ``itertools.chain``) and made a tuple; when the first part is the
    bigger share it is left out of the list and added at the end, so its
    items are copied once rather than three times.
    """
    if len(parts) <= 2:
        return parts[0] + parts[1] if len(parts) == 2 else parts[0] if parts else ()
    head = parts[0]
    rest = len(head) * 2 >= sum(map(len, parts)) - len(head)
    gathered: list[int] = []
    for part in parts[1:] if rest else parts:
        gathered.extend(part)
    return head + tuple(gathered) if rest else tuple(gathered)
