"""Per-example attention for packed rows: each example attends only to its own causal block.

With no attention mask, transformers' SDPA path keeps the examples of a
packed row apart by building a dense block-diagonal mask over the whole
row, so attention still costs ``T x T`` per row however short the examples
are.  The ``finetune_web_packed`` attention implementation registered here
finds each example from the ``position_ids`` the model hands its attention
layers (a segment starts wherever a position does not follow the one before,
as transformers itself decides) and runs causal
``scaled_dot_product_attention`` on each segment alone: the same result,
for the cost of the examples' own blocks.  On the CPU, without dropout, one
autograd node calls torch's flash-attention kernels segment by segment and
writes outputs and gradients in place, with no splitting or concatenating.

It is used for training and evaluation forwards only, and only where it is
exact: :func:`use_packed_attention` switches a model whose attention goes
through transformers' ``AttentionInterface`` with ``sdpa`` or ``eager``,
checks with one tiny forward pass that its attention layers receive
``position_ids``, and hands back an :class:`AttentionSwitch` that puts the
original implementation back (for saving, for generation, at the end).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

__all__ = [
    "PACKED_ATTENTION",
    "AttentionSwitch",
    "PackedAttentionUnsupported",
    "packed_attention_forward",
    "probe_input",
    "register_packed_attention",
    "use_packed_attention",
]

#: The name the per-example attention is registered under in transformers.
PACKED_ATTENTION = "finetune_web_packed"
#: The implementations whose packed results per-example attention reproduces exactly.
_SWITCHABLE = ("sdpa", "eager")
#: Attention arguments that change the computation in ways per-segment SDPA does not do.
_UNSUPPORTED = ("sliding_window", "softcap", "s_aux", "sinks", "position_bias")


class PackedAttentionUnsupported(RuntimeError):
    """The model called per-example attention without what it needs (seen while probing)."""


def _segments(position_ids: torch.Tensor, batch: int, length: int) -> list[list[tuple[int, int]]]:
    """Return each row's segments ``(start, end)``: a new one where a position does not follow."""
    import torch

    positions = position_ids.expand(batch, -1) if position_ids.shape[0] != batch else position_ids
    if positions.shape != (batch, length):
        raise PackedAttentionUnsupported(
            f"position_ids of shape {tuple(position_ids.shape)} for {batch} rows of {length}"
        )
    breaks = (torch.diff(positions, dim=-1) != 1).nonzero().tolist()
    starts: list[list[int]] = [[0] for _ in range(batch)]
    for row, before in breaks:
        starts[row].append(before + 1)
    return [list(zip(row, [*row[1:], length], strict=True)) for row in starts]


def packed_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each packed example (an ``AttentionInterface`` function).

    Args:
        module: the attention layer (its ``training`` flag gates dropout;
            ``num_key_value_groups`` > 1 means grouped-query attention).
        query: ``[B, heads, T, head_dim]``.
        key: ``[B, kv_heads, T, head_dim]``.
        value: ``[B, kv_heads, T, head_dim]``.
        attention_mask: a mask built by the model; when there is one (a
            padding mask, a cache), plain SDPA with that mask runs instead.
        dropout: the attention dropout probability (applied in training only).
        scaling: the softmax scale (``None``: ``1/sqrt(head_dim)``).
        is_causal: must not be ``False`` (bidirectional layers are not packed).
        **kwargs: the layer's other arguments; ``position_ids`` ``[B, T]`` is required.

    Returns:
        ``(output, None)``, the output ``[B, T, heads, head_dim]``.

    Raises:
        PackedAttentionUnsupported: no ``position_ids``, a cache, a
            non-causal layer or an argument (sliding window, softcap,
            sinks, position bias) this function does not apply.
    """
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if attention_mask is not None:
        output: tuple[torch.Tensor, None] = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
        return output
    position_ids = kwargs.get("position_ids")
    unsupported = [name for name in _UNSUPPORTED if kwargs.get(name) is not None]
    if position_ids is None or unsupported:
        raise PackedAttentionUnsupported(
            "no position_ids reach the attention layers"
            if position_ids is None
            else f"attention arguments {unsupported} are not supported"
        )
    if is_causal is False or not getattr(module, "is_causal", True):
        raise PackedAttentionUnsupported("the attention layer is not causal")
    batch, _, length, _ = query.shape
    if key.shape[2] != length:
        raise PackedAttentionUnsupported("queries and keys differ in length (a cache)")
    groups = int(getattr(module, "num_key_value_groups", 1))
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    dropout_p = dropout if module.training else 0.0
    segments = _segments(position_ids, batch, length)
    function = _cpu_segments_function()
    if (
        function is not None
        and dropout_p == 0.0
        and query.device.type == "cpu"
        and query.dtype == key.dtype == value.dtype
    ):
        spans = [(row, start, end) for row, pairs in enumerate(segments) for start, end in pairs]
        attended: torch.Tensor = function.apply(query, key, value, spans, scaling)
        return attended, None
    rows = []
    # unbind and split (not slicing) so that the backward pass joins the gradients in one
    # concatenation instead of adding one zero-padded full-size tensor per segment
    parts = zip(query.unbind(0), key.unbind(0), value.unbind(0), strict=True)
    for (queries, keys, values), pairs in zip(parts, segments, strict=True):
        sizes = [end - start for start, end in pairs]
        pieces = [
            torch.nn.functional.scaled_dot_product_attention(
                q[None], k[None], v[None], dropout_p=dropout_p, is_causal=True, scale=scaling
            )
            for q, k, v in zip(
                torch.split(queries, sizes, dim=1),
                torch.split(keys, sizes, dim=1),
                torch.split(values, sizes, dim=1),
                strict=True,
            )
        ]
        rows.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2))
    joined = rows[0] if batch == 1 else torch.cat(rows, dim=0)
    return joined.transpose(1, 2).contiguous(), None


@functools.cache
def _cpu_segments_function() -> type[Any] | None:
    """Return the autograd function that runs torch's CPU flash kernels segment by segment.

    One node for the whole batch: each segment's output is written straight
    into the ``[B, T, heads, head_dim]`` result and each segment's gradients
    straight into full-size gradient tensors, so neither pass splits,
    concatenates or transposes.  ``None`` when this torch has no such
    kernels (then the generic per-segment SDPA path runs).
    """
    import torch

    names = (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention_for_cpu_backward",
    )
    if not all(hasattr(torch.ops.aten, name) for name in names):
        return None
    return _build_cpu_function()


def _build_cpu_function() -> type[Any]:
    import torch

    forward_kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    backward_kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward

    class SegmentAttention(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            query: torch.Tensor,
            key: torch.Tensor,
            value: torch.Tensor,
            spans: list[tuple[int, int, int]],
            scale: float | None,
        ) -> torch.Tensor:
            batch, heads, length, width = query.shape
            out = query.new_empty((batch, length, heads, width))
            logsumexp: torch.Tensor | None = None
            for row, start, end in spans:
                piece, lse = forward_kernel(
                    query[row : row + 1, :, start:end],
                    key[row : row + 1, :, start:end],
                    value[row : row + 1, :, start:end],
                    0.0,
                    True,
                    scale=scale,
                )
                if logsumexp is None:
                    logsumexp = lse.new_empty((batch, heads, length))
                out[row, start:end] = piece[0].transpose(0, 1)
                logsumexp[row, :, start:end] = lse[0]
            ctx.save_for_backward(query, key, value, out, logsumexp)
            ctx.spans, ctx.scale = spans, scale
            return out

        @staticmethod
        def backward(
            ctx: Any, grad: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None]:
            query, key, value, out, logsumexp = ctx.saved_tensors
            grads = (torch.empty_like(query), torch.empty_like(key), torch.empty_like(value))
            for row, start, end in ctx.spans:
                parts = backward_kernel(
                    grad[row : row + 1, start:end].transpose(1, 2),
                    query[row : row + 1, :, start:end],
                    key[row : row + 1, :, start:end],
                    value[row : row + 1, :, start:end],
                    out[row : row + 1, start:end].transpose(1, 2),
                    logsumexp[row : row + 1, :, start:end],
                    0.0,
                    True,
                    scale=ctx.scale,
                )
                for full, part in zip(grads, parts, strict=True):
                    full[row : row + 1, :, start:end] = part
            return (*grads, None, None)

    return SegmentAttention


def _packed_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """Build no mask for a packed forward pass; defer to SDPA's mask otherwise."""
    from transformers.masking_utils import sdpa_mask

    offsets = (kwargs.get("q_offset", 0), kwargs.get("kv_offset", 0))
    if (
        not args
        and kwargs.get("attention_mask") is None
        and all(isinstance(offset, int) and offset == 0 for offset in offsets)
        and kwargs.get("q_length") == kwargs.get("kv_length")
    ):
        return None
    mask: torch.Tensor | None = sdpa_mask(*args, **kwargs)
    return mask


def register_packed_attention() -> str:
    """Register per-example attention with transformers (once); return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    if PACKED_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED_ATTENTION, packed_attention_forward)
    if PACKED_ATTENTION not in AttentionMaskInterface._global_mapping:
        AttentionMaskInterface.register(PACKED_ATTENTION, _packed_mask)
    return PACKED_ATTENTION


def probe_input(model: Any) -> dict[str, torch.Tensor]:
    """Return a tiny packed row for checks: two examples of 4 tokens, on the model's device."""
    import torch

    vocab = max(int(getattr(model.config, "vocab_size", 8) or 8), 1)
    device = model.get_input_embeddings().weight.device
    ids = (torch.tensor([[3, 5, 7, 11, 3, 5, 7, 11]]) % vocab).to(device)
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]], device=device)
    return {"input_ids": ids, "position_ids": positions}


@attrs.define
class AttentionSwitch:
    """A model's attention implementation, switched to per-example attention or left alone.

    Attributes:
        config: the model's config (its ``_attn_implementation`` is switched).
        original: the implementation the model had.
        active: whether per-example attention is in use now.
    """

    config: Any = attrs.field(repr=False)
    original: str | None
    active: bool = False

    def restore(self) -> None:
        """Put the original implementation back (for good)."""
        if self.active:
            self.config._attn_implementation = self.original
            self.active = False

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Run the block (saving, generating) with the original implementation."""
        if not self.active:
            yield
            return
        self.config._attn_implementation = self.original
        try:
            yield
        finally:
            self.config._attn_implementation = PACKED_ATTENTION


def _switchable(config: Any) -> bool:
    if config is None or getattr(config, "_attn_implementation", None) not in _SWITCHABLE:
        return False
    if getattr(config, "sub_configs", None) or not getattr(config, "is_causal", True):
        return False
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return False
    if getattr(config, "sliding_window", None) is not None and getattr(
        config, "use_sliding_window", True
    ):
        return False
    layer_types = getattr(config, "layer_types", None) or ()
    return all(kind == "full_attention" for kind in layer_types)


def use_packed_attention(
    model: Any, *, autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext
) -> AttentionSwitch:
    """Switch ``model`` (unwrapped) to per-example attention where that is exact.

    The switch happens only when the model's attention layers go through
    transformers' ``AttentionInterface``, its config names ``sdpa`` or
    ``eager`` attention, it has full causal attention in every layer (no
    sliding window, no softcap, no sub-models), and a forward pass on a tiny
    packed row (eval mode, no gradients, so no random numbers are drawn)
    shows its attention layers receive ``position_ids``.  Otherwise the
    model keeps its implementation and the returned switch is inactive.

    Args:
        model: the model to train (a ``PeftModel`` or a transformers model).
        autocast: a context for the probing forward pass (mixed precision).

    Returns:
        The switch; call :meth:`AttentionSwitch.restore` when training ends.
    """
    import torch

    config: Any = getattr(model, "config", None)
    switch = AttentionSwitch(config=config, original=getattr(config, "_attn_implementation", None))
    base = model.get_base_model() if hasattr(model, "peft_config") else model
    uses_interface = getattr(base, "_can_set_attn_implementation", None)
    if not _switchable(config) or uses_interface is None or not uses_interface():
        return switch
    register_packed_attention()
    config._attn_implementation = PACKED_ATTENTION
    switch.active = True
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast():
            model(**probe_input(model), use_cache=False)
    except PackedAttentionUnsupported:
        switch.restore()
    except BaseException:
        switch.restore()
        raise
    finally:
        model.train(training)
    return switch
