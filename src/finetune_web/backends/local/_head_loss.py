"""The output head and the loss together, a block of positions at a time.

The usual way applies the output head to every trained position at once,
keeps the ``[N, vocab]`` logits for the backward pass, and runs
``log_softmax`` over them twice more (forward and backward).  For a
128k-token vocabulary and 2,048 trained positions those logits alone are
1 GiB in float32.

:func:`head_loss` computes the same summed cross-entropy and argmax hits
block by block: each block's logits are made, reduced to its loss and hits
and, when a gradient is wanted, turned at once into the block's gradient
with respect to the hidden states (``(softmax - one_hot) @ W``).  Only
that ``[N, hidden]`` gradient is kept; the backward pass scales it.  The
exponentials are computed once per logit, and a block's logits stay small
enough to stay in cache.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["block_rows", "head_loss", "plain_head"]

#: Bytes of float32 logits one block holds (fewer rows for a larger vocabulary).
_BLOCK_BYTES = 8 * 1024 * 1024


def block_rows(vocab: int) -> int:
    """Return the positions per block for a vocabulary of ``vocab`` tokens (at least 16)."""
    return max(16, _BLOCK_BYTES // (4 * max(vocab, 1)))


def plain_head(head: Any) -> bool:
    """Return whether ``head`` is a plain ``torch.nn.Linear`` with frozen weight and bias."""
    import torch

    return (
        type(head) is torch.nn.Linear
        and not head.weight.requires_grad
        and (head.bias is None or not head.bias.requires_grad)
    )


@functools.cache
def _function() -> type[Any]:
    import torch

    class HeadLoss(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            hidden: torch.Tensor,
            weight: torch.Tensor,
            bias: torch.Tensor | None,
            targets: torch.Tensor,
            rows: int,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            wanted = bool(ctx.needs_input_grad[0])
            gradient = torch.empty_like(hidden) if wanted else None
            loss = hidden.new_zeros((), dtype=torch.float32)
            hits = torch.zeros((), dtype=torch.long, device=hidden.device)
            for start in range(0, hidden.shape[0], rows):
                block = slice(start, start + rows)
                chosen = targets[block]
                logits = torch.nn.functional.linear(hidden[block], weight, bias)
                compute = logits.dtype
                logits = logits.float()
                picked = logits.gather(1, chosen[:, None]).squeeze(1)
                top, best = logits.max(dim=-1)
                hits += (best == chosen).sum()
                probabilities = logits.sub_(top[:, None]).exp_()
                total = probabilities.sum(dim=-1)
                loss += (total.log() + top - picked).sum()
                if gradient is not None:
                    probabilities.div_(total[:, None])
                    index = torch.arange(chosen.shape[0], device=chosen.device)
                    probabilities[index, chosen] -= 1.0
                    gradient[block] = probabilities.to(compute) @ weight.to(compute)
            ctx.save_for_backward(gradient)
            ctx.mark_non_differentiable(hits)
            return loss, hits

        @staticmethod
        def backward(
            ctx: Any, grad_loss: torch.Tensor, _grad_hits: Any
        ) -> tuple[torch.Tensor | None, None, None, None, None]:
            (gradient,) = ctx.saved_tensors
            if gradient is None:
                return None, None, None, None, None
            return gradient * grad_loss.to(gradient.dtype), None, None, None, None

    return HeadLoss


def head_loss(
    hidden: torch.Tensor, head: Any, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the summed cross-entropy and argmax hits of ``head(hidden)`` against ``targets``.

    The same values as ``cross_entropy(head(hidden).float(), targets,
    reduction="sum")`` and ``(head(hidden).argmax(-1) == targets).sum()``,
    computed a block at a time (see the module's text).  The loss keeps its
    graph back to ``hidden``; the hits are an integer tensor without one.

    Args:
        hidden: ``[N, hidden]`` hidden states at the trained positions.
        head: the output head, a plain frozen ``torch.nn.Linear`` (see :func:`plain_head`).
        targets: ``[N]`` the token each position should predict.
    """
    rows = block_rows(int(head.weight.shape[0]))
    loss, hits = _function().apply(hidden, head.weight, head.bias, targets, rows)
    return loss, hits
