"""Packed rows to tensors, the packed forward pass, and token-level loss and accuracy.

A packed row holds several examples back to back, with ``position_ids``
restarting at 0 at each example.  On transformers 5.x the SDPA and eager
attention paths keep the examples apart (block-diagonal causal attention)
**only** when the model gets ``position_ids``, no attention mask and
``use_cache=False``: :func:`forward_packed` is the one place that calls the
model that way.

Only the assistant's tokens are trained, so :func:`trained_token_stats`
runs the decoder alone and applies the output head only at the positions
whose next label is trained: the same loss and accuracy as
:func:`token_stats` on full logits, without the ``[B, T, V]`` logits.  A
plain frozen head runs with the loss a block of positions at a time
(:mod:`._head_loss`), so not even the trained positions' logits are kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from finetune_web.backends.local._checkpoint import is_peft_model
from finetune_web.backends.local._encode import IGNORE_INDEX
from finetune_web.backends.local._head_loss import head_loss, plain_head
from finetune_web.backends.local._last_layer import (
    only_at,
    position_wise_tail,
    scored_rows,
    supports_trimming,
)
from finetune_web.packing import BestFitPacker
from finetune_web.records import Pack, Tokenized

if TYPE_CHECKING:
    import torch

__all__ = [
    "collate",
    "forward_packed",
    "pack_examples",
    "real_tokens",
    "supports_trained_logits",
    "supports_trimmed_tail",
    "token_stats",
    "trained_token_stats",
]
#: Config fields of models whose logits are not just the output head of the last hidden states.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


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


def _decoder_and_head(model: Any) -> tuple[Any, Any]:
    """Return the decoder stack and the output head of ``model`` (a peft or transformers model)."""
    base = model.get_base_model() if is_peft_model(model) else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else base.model
    return decoder, base.get_output_embeddings()


def trained_token_stats(
    model: Any, batch: dict[str, torch.Tensor], *, trim: bool = False
) -> tuple[torch.Tensor, int, int]:
    """Return :func:`token_stats` of a packed batch, computing logits only where they are scored.

    The decoder runs as :func:`forward_packed` runs the model (position ids,
    no mask, no cache); the output head is applied only to the hidden states
    at positions ``t`` whose label at ``t + 1`` is trained, and the loss
    and argmax hits are computed there in float32.

    Call it only on a model that is not wrapped for data parallelism (it
    calls the model's parts, bypassing the wrapper's ``forward``) and for
    which :func:`supports_trained_logits` holds.  With ``trim`` (only where
    :func:`supports_trimmed_tail` holds) the last layer's query and output
    projections and MLP run at those positions only (:mod:`._last_layer`).

    Returns:
        ``(loss_sum, correct, count)`` as :func:`token_stats` returns them.
    """
    import torch

    decoder, head = _decoder_and_head(model)
    rows = scored_rows(batch["labels"])
    tail = position_wise_tail(decoder) if trim and rows.numel() else ()
    with only_at(tail, rows) if tail else contextlib.nullcontext():
        hidden = decoder(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    trained = hidden[:, :-1][mask]
    chosen = targets[mask]
    count = int(chosen.shape[0])
    if count > 0 and plain_head(head):
        loss_sum, hits = head_loss(trained, head, chosen)
        return loss_sum, int(hits.item()), count
    logits = head(trained).float()
    if count == 0:
        return logits.sum() * 0.0, 0, 0
    loss_sum = torch.nn.functional.cross_entropy(logits, chosen, reduction="sum")
    correct = int((logits.argmax(dim=-1) == chosen).sum().item())
    return loss_sum, correct, count


def supports_trained_logits(
    model: Any, *, autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext
) -> bool:
    """Return whether :func:`trained_token_stats` reproduces the logits of ``model`` exactly.

    It holds when the model's logits are its output head applied to its
    decoder's last hidden states, with nothing after (no softcapping or
    scaling): checked on the config and by comparing both on a tiny packed
    row in eval mode, without gradients (no random numbers are drawn).

    Args:
        model: the (unwrapped) model to train.
        autocast: a context for the checking forward passes (mixed precision).
    """
    import torch

    from finetune_web.backends.local._attention import probe_input

    config = getattr(model, "config", None)
    if any(getattr(config, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS):
        return False
    training = model.training
    model.eval()
    try:
        decoder, head = _decoder_and_head(model)
        batch = probe_input(model)
        with torch.no_grad(), autocast():
            full = model(**batch, use_cache=False).logits.float()
            hidden = decoder(**batch, use_cache=False).last_hidden_state
            mine = head(hidden).float()
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        return False
    finally:
        model.train(training)
    return bool(full.shape == mine.shape and torch.allclose(full, mine, rtol=1e-6, atol=1e-6))


def supports_trimmed_tail(
    model: Any, *, autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext
) -> bool:
    """Return whether ``trained_token_stats(..., trim=True)`` is exact for ``model``.

    See :func:`._last_layer.supports_trimming`; call it after
    :func:`supports_trained_logits` holds, with the attention the training uses.
    """
    decoder, _ = _decoder_and_head(model)
    return supports_trimming(model, decoder, autocast=autocast)
