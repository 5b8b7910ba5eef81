"""Packed rows to tensors, the packed forward pass, and token-level loss and accuracy.

A packed row holds several examples back to back, with ``position_ids``
restarting at 0 at each example.  On transformers 5.x the SDPA and eager
attention paths keep the examples apart (block-diagonal causal attention)
**only** when the model gets ``position_ids``, no attention mask and
``use_cache=False``: :func:`forward_packed` is the one place that calls the
model that way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from finetune_web.backends.local._encode import IGNORE_INDEX
from finetune_web.packing import BestFitPacker
from finetune_web.records import Pack, Tokenized

if TYPE_CHECKING:
    import torch

__all__ = ["collate", "forward_packed", "pack_examples", "real_tokens", "token_stats"]


def pack_examples(tokenized: Iterable[Tokenized], seq_len: int) -> list[Pack]:
    """Pack ``tokenized`` into rows of at most ``seq_len`` tokens (best-fit decreasing).

    Examples longer than ``seq_len`` are split into pieces, each packed as an
    example of its own, so no token is lost.
    """
    return list(BestFitPacker(seq_len).pack(tokenized))


def collate(rows: Sequence[Pack], *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Return the rows as a batch: ``input_ids``, ``labels`` and ``position_ids``, ``[B, T]``.

    ``T`` is the longest row.  A shorter row is padded at its end with
    ``pad_token_id`` (label -100); its padding gets position ids ``0..k``
    as if it were one more example, so it never changes the real examples'
    attention.  There is deliberately no ``attention_mask``.
    """
    import torch

    width = max((len(row.input_ids) for row in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        length = len(row.input_ids)
        input_ids[index, :length] = torch.tensor(row.input_ids, dtype=torch.long)
        labels[index, :length] = torch.tensor(row.labels, dtype=torch.long)
        position_ids[index, :length] = torch.tensor(row.position_ids, dtype=torch.long)
        position_ids[index, length:] = torch.arange(width - length, dtype=torch.long)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def real_tokens(rows: Sequence[Pack]) -> int:
    """Return the number of non-padding tokens in ``rows``."""
    return sum(len(row.input_ids) for row in rows)


def forward_packed(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run ``model`` on a packed batch and return its logits ``[B, T, V]``.

    The model gets ``position_ids``, no attention mask and ``use_cache=False``,
    the combination under which examples in one row do not attend to each other.
    """
    output = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        use_cache=False,
    )
    logits: torch.Tensor = output.logits
    return logits


def token_stats(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Return the summed next-token loss, correct predictions and trained tokens.

    The logits at position ``t`` predict the label at ``t + 1``; positions
    whose next label is -100 are left out.  The loss is computed in float32.

    Returns:
        ``(loss_sum, correct, count)``: ``loss_sum`` is a scalar tensor that
        keeps its graph (divide it by the step's total ``count`` before
        ``backward``), ``correct`` the argmax hits and ``count`` the tokens scored.
    """
    import torch

    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    count = int(mask.sum().item())
    if count == 0:
        return shifted_logits.sum() * 0.0, 0, 0
    loss_sum = torch.nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    predictions = shifted_logits.argmax(dim=-1)
    correct = int(((predictions == shifted_labels) & mask).sum().item())
    return loss_sum, correct, count
