"""Rotary position embeddings in four element-wise passes instead of about a dozen.

transformers applies rotary embeddings as ``q * cos + rotate_half(q) * sin``,
where ``rotate_half`` splits the head in two halves and concatenates
``(-x2, x1)``: a negation, a concatenation, two products and a sum forward,
and as many passes again backward, for the queries and the keys of every
layer.  On short CPU steps that is several percent of the time.  Written
half by half, the same function is::

    out1 = x1 * cos1 - x2 * sin1        out2 = x2 * cos2 + x1 * sin2

one product and one fused multiply-add per half, straight into the output
(:func:`rope_function`); the backward pass is the transposed rotation, as
cheap (it is not differentiable again).  The result equals transformers' to
rounding: the fused multiply-add rounds once where transformers rounds twice,
which in bfloat16 can move a value by one rounding step.

:func:`fuse_rope` points the ``apply_rotary_pos_emb`` of each modelling
module a model's layers come from at that function while training runs,
after checking on random inputs that the module's own function is this
rotation (models with interleaved or partial rotary embeddings keep
theirs).  Each call still runs the module's own function whenever it is not
one the fused form computes exactly: extra arguments, embeddings that need
gradients, or dtypes, widths or shapes that differ.  :meth:`FusedRope.restore`
puts every original back.  The function is the module's, so while training
runs every model of that family in the process (in any thread) goes through
the fused form.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune_web.backends.local._switch import Switch

if TYPE_CHECKING:
    import torch

__all__ = ["FusedRope", "fuse_rope", "fused_rotary", "rope_function"]

#: The name transformers' modelling modules give their rotary function.
_NAME = "apply_rotary_pos_emb"
#: Marks a fused function, and keeps the module's own one.
_ORIGINAL = "__finetune_web_original__"

_FUNCTION: type[Any] | None = None


def _autograd_function() -> type[Any]:
    import torch
    from torch.autograd.function import once_differentiable

    class RotaryEmbedding(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> Any:
            half = x.shape[-1] // 2
            # contiguous, as transformers' result is: the attention kernels read it fastest so
            out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
            torch.mul(x[..., :half], cos[..., :half], out=out[..., :half])
            out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1.0)
            torch.mul(x[..., half:], cos[..., half:], out=out[..., half:])
            out[..., half:].addcmul_(x[..., :half], sin[..., half:])
            ctx.save_for_backward(cos, sin)
            return out

        @staticmethod
        @once_differentiable
        def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
            cos, sin = ctx.saved_tensors
            half = grad.shape[-1] // 2
            result = torch.empty(grad.shape, dtype=grad.dtype, device=grad.device)
            # the transpose of the rotation: the same halves with the sine's role reversed
            torch.mul(grad[..., :half], cos[..., :half], out=result[..., :half])
            result[..., :half].addcmul_(grad[..., half:], sin[..., half:])
            torch.mul(grad[..., half:], cos[..., half:], out=result[..., half:])
            result[..., half:].addcmul_(grad[..., :half], sin[..., :half], value=-1.0)
            return result, None, None

    return RotaryEmbedding


def rope_function() -> type[Any]:
    """Return the autograd ``Function`` of the rotary embedding.

    ``rope_function().apply(x, cos, sin)`` computes ``x * cos +
    rotate_half(x) * sin`` for ``cos`` and ``sin`` that broadcast to ``x``
    (an even last dimension) and gives a gradient to ``x`` only.
    """
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _autograd_function()
    return _FUNCTION


def _fits(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> bool:
    width = q.shape[-1]
    return (
        width % 2 == 0
        and k.shape[-1] == cos.shape[-1] == width
        and cos.shape == sin.shape
        and q.dtype == k.dtype == cos.dtype == sin.dtype
        and q.dtype.is_floating_point
        and not (cos.requires_grad or sin.requires_grad)
    )


def _broadcast(embedding: torch.Tensor, x: torch.Tensor) -> Any:
    """Return the shape ``embedding`` and ``x`` broadcast to (``None`` where they do not)."""
    import torch

    try:
        return torch.broadcast_shapes(embedding.shape, x.shape)  # type: ignore[no-untyped-call]
    except RuntimeError:
        return None


def fused_rotary(original: Callable[..., Any]) -> Callable[..., Any]:
    """Return an ``apply_rotary_pos_emb`` that uses :func:`rope_function` when exact."""

    def apply_rotary_pos_emb(
        q: torch.Tensor,
        k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        unsqueeze = kwargs.get("unsqueeze_dim", 1)
        if args or set(kwargs) - {"unsqueeze_dim"} or not isinstance(unsqueeze, int):
            return original(q, k, cos, sin, *args, **kwargs)
        if not _fits(q, k, cos, sin):
            return original(q, k, cos, sin, **kwargs)
        wide_cos, wide_sin = cos.unsqueeze(unsqueeze), sin.unsqueeze(unsqueeze)
        if any(_broadcast(wide_cos, x) != x.shape for x in (q, k)):
            return original(q, k, cos, sin, **kwargs)
        function = rope_function()
        return function.apply(q, wide_cos, wide_sin), function.apply(k, wide_cos, wide_sin)

    setattr(apply_rotary_pos_emb, _ORIGINAL, original)
    return apply_rotary_pos_emb


def _is_standard(function: Callable[..., Any]) -> bool:
    """Whether ``function(q, k, cos, sin)`` is transformers' half-split rotation (checked)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, heads, 3, 8, generator=generator) for heads in (2, 1))
    cos, sin = (torch.randn(1, 3, 8, generator=generator) for _ in range(2))
    try:
        with torch.no_grad():
            want = function(q, k, cos, sin)
    except Exception:  # any failure of a function we do not know means: not this rotation
        return False
    if not (isinstance(want, tuple) and len(want) == 2):
        return False
    got = fused_rotary(function)(q, k, cos, sin)
    return all(
        isinstance(w, torch.Tensor) and w.shape == g.shape and torch.allclose(w, g, atol=1e-6)
        for w, g in zip(want, got, strict=True)
    )


class FusedRope(Switch):
    """The modelling modules whose rotary function is switched to the fused one."""

    def _give_back(self, item: Any) -> None:
        fused = getattr(item, _NAME, None)
        if hasattr(fused, _ORIGINAL):
            setattr(item, _NAME, getattr(fused, _ORIGINAL))


def fuse_rope(model: Any) -> FusedRope:
    """Switch the rotary function of the modules ``model``'s layers come from to the fused one.

    A module is switched when it defines ``apply_rotary_pos_emb``, that
    function is not switched already, and it computes the half-split rotation
    (checked on random inputs).

    Returns:
        The switch; :meth:`FusedRope.restore` undoes it.
    """
    switch = FusedRope()
    names = {type(module).__module__ for module in model.modules()}
    try:
        for name in sorted(names):
            module = sys.modules.get(name)
            function = getattr(module, _NAME, None)
            if module is None or not callable(function) or hasattr(function, _ORIGINAL):
                continue
            if _is_standard(function):
                setattr(module, _NAME, fused_rotary(function))
                switch.switched.append(module)
    except BaseException:
        switch.restore()
        raise
    return switch
