"""LoRA linear layers computed through one merged weight: the same result with fewer passes.

peft computes a LoRA layer as ``base(x) + lora_B(lora_A(dropout(x))) * s``:
the base matrix product, two thin products, then a scale and an add over
the whole ``[tokens, out]`` output, and as many passes again backward.
When dropout is off (``p = 0`` or eval mode) the same function is
``x @ (W + s * B @ A).T``, whose merged weight costs one ``out x r x in``
product per call, so :func:`lora_linear_function` computes:

* forward: ``y = x @ W'.T + bias`` with ``W' = W + s * B @ A``, and the
  thin ``A @ x.T`` that the adapters' gradients need;
* backward: ``dx = dy @ W'`` (``W'`` recomputed, not kept, so no extra
  copy of the weights stays in memory), ``dB = s * ((A @ x.T) @ dy).T`` and
  ``dA = s * (dy @ B).T @ x``, with the thin products laid out the way CPU
  kernels run them fastest.

The base weight and bias get no gradient (they are frozen in LoRA).
:func:`fuse_lora` points every eligible peft ``Linear`` of a model at it for
training; each call checks again that it applies (one active plain adapter
without dropout at work, no DoRA or adapter bias, no extra arguments, a
frozen ``torch.nn.Linear`` base) and otherwise runs peft's own forward.
Under autocast it computes in the autocast dtype, as peft's layers would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune_web.backends.local._switch import Switch

if TYPE_CHECKING:
    import torch

__all__ = ["FusedLora", "fuse_lora", "fused_lora_forward", "lora_linear_function"]


def _autograd_function() -> type[Any]:
    """Return the ``torch.autograd.Function`` subclass (built on first use: torch is lazy)."""
    import torch

    class LoraLinear(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            x: torch.Tensor,
            weight: torch.Tensor,
            bias: torch.Tensor | None,
            lora_a: torch.Tensor,
            lora_b: torch.Tensor,
            scaling: float,
            dtype: torch.dtype,
        ) -> torch.Tensor:
            merged = _merged(weight, lora_a, lora_b, scaling, dtype)
            x = x.to(dtype)
            flat = x.reshape(-1, x.shape[-1])
            down = lora_a.to(dtype) @ flat.t()  # [r, tokens]: see the backward's products
            ctx.save_for_backward(flat, down, weight, lora_a, lora_b)
            ctx.scaling, ctx.dtype, ctx.shape = scaling, dtype, x.shape
            return torch.nn.functional.linear(x, merged, None if bias is None else bias.to(dtype))

        @staticmethod
        def backward(
            ctx: Any, grad: torch.Tensor
        ) -> tuple[
            torch.Tensor | None, None, None, torch.Tensor | None, torch.Tensor | None, None, None
        ]:
            flat, down, weight, lora_a, lora_b = ctx.saved_tensors
            scaling, dtype = ctx.scaling, ctx.dtype
            grad = grad.to(dtype)
            rows = grad.reshape(-1, grad.shape[-1])
            grad_x = None
            if ctx.needs_input_grad[0]:
                merged = _merged(weight, lora_a, lora_b, scaling, dtype)
                grad_x = (rows @ merged).reshape(ctx.shape)
            # thin products as [r, tokens] @ [tokens, n]: on CPU much faster than the transpose
            grad_a = grad_b = None
            if ctx.needs_input_grad[3]:
                through_b = lora_b.to(dtype).t() @ rows.t()
                grad_a = (through_b @ flat).mul_(scaling).to(lora_a.dtype)
            if ctx.needs_input_grad[4]:
                grad_b = (down @ rows).t().mul(scaling).to(lora_b.dtype)
            return grad_x, None, None, grad_a, grad_b, None, None

    return LoraLinear


def _merged(
    weight: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float, dtype: Any
) -> torch.Tensor:
    """Return ``W + scaling * B @ A`` in ``dtype`` (summed in the adapters' precision)."""
    import torch

    wide = torch.promote_types(weight.dtype, lora_a.dtype)
    summed = torch.addmm(weight.to(wide), lora_b.to(wide), lora_a.to(wide), alpha=scaling)
    return summed.to(dtype)


_FUNCTION: type[Any] | None = None


def lora_linear_function() -> type[Any]:
    """Return the autograd ``Function`` of a merged-weight LoRA linear layer.

    ``lora_linear_function().apply(x, weight, bias, lora_a, lora_b, scaling, dtype)``
    computes ``x @ (weight + scaling * lora_b @ lora_a).T + bias`` in ``dtype``
    and gives gradients to ``x``, ``lora_a`` and ``lora_b`` only.
    """
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _autograd_function()
    return _FUNCTION


def _plain_adapter(layer: Any) -> str | None:
    """Return the one active adapter of a peft LoRA ``layer`` when the merged form is exact."""
    import torch

    if layer.disable_adapters or layer.merged:
        return None
    active = list(layer.active_adapters)
    if len(active) != 1 or active[0] not in layer.lora_A:
        return None
    name: str = active[0]
    if (
        name in getattr(layer, "lora_variant", {})
        or getattr(layer.lora_B[name], "bias", None) is not None
    ):
        return None
    dropout = layer.lora_dropout[name]
    if not isinstance(dropout, torch.nn.Identity) and dropout.training and dropout.p > 0:
        return None
    base = layer.base_layer
    if type(base) is not torch.nn.Linear or base.weight.requires_grad:
        return None
    if base.bias is not None and base.bias.requires_grad:
        return None
    return name


def fused_lora_forward(layer: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    """Return a ``forward`` for the peft LoRA ``layer`` that uses the merged weight when exact.

    Args:
        layer: a peft ``lora.Linear``.
        original: its own ``forward``, run whenever the merged form does not apply.
    """
    import torch

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        name = None if args or kwargs else _plain_adapter(layer)
        if name is None:
            return original(x, *args, **kwargs)
        lora_a = layer.lora_A[name].weight
        lora_b = layer.lora_B[name].weight
        base = layer.base_layer
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
        elif x.dtype == base.weight.dtype == lora_a.dtype == lora_b.dtype:
            dtype = x.dtype
        else:
            return original(x, *args, **kwargs)
        with torch.autocast(x.device.type, enabled=False):
            result: torch.Tensor = lora_linear_function().apply(
                x, base.weight, base.bias, lora_a, lora_b, float(layer.scaling[name]), dtype
            )
        return result

    return forward


class FusedLora(Switch):
    """The peft LoRA layers of a model switched to the merged-weight forward."""

    def _give_back(self, item: Any) -> None:
        item.__dict__.pop("forward", None)


def fuse_lora(model: Any) -> FusedLora:
    """Switch each peft LoRA ``Linear`` over a plain ``torch.nn.Linear`` to the merged form.

    Layers of other kinds (quantized bases, embeddings, convolutions) are left
    as they are.  Each switched layer still runs peft's own forward whenever a
    call is not one the merged form computes exactly (see the module notes).

    Returns:
        The switch; :meth:`FusedLora.restore` undoes it.
    """
    import torch

    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:  # pragma: no cover -- peft is part of the local extra
        return FusedLora()
    switched = []
    for module in model.modules():
        if "forward" in vars(module):  # switched already (or patched by someone else)
            continue
        if type(module) is Linear and type(module.base_layer) is torch.nn.Linear:
            module.forward = fused_lora_forward(module, module.forward)  # type: ignore[method-assign]
            switched.append(module)
    return FusedLora(switched=switched)
