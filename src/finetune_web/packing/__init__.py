"""Packers: put tokenized examples side by side in fixed-length training rows."""

from finetune_web.packing.best_fit import (
    IGNORE_INDEX,
    BestFitPacker,
    Overflow,
    chunk_id,
    pack_bound,
    piece_lengths,
    plan_rows,
)

__all__ = [
    "IGNORE_INDEX",
    "BestFitPacker",
    "Overflow",
    "chunk_id",
    "pack_bound",
    "piece_lengths",
    "plan_rows",
]
