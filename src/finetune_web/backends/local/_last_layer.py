"""The last decoder layer's position-wise parts, run only at the positions that are scored.

A decoder layer mixes positions only in attention, through the keys and
values: its query projection, output projection and MLP work on each
position alone.  In the last layer a position's final hidden state depends
on the other positions only through their keys and values, so when the loss
reads the final hidden states only at trained positions
(:func:`~._batches.trained_token_stats`), the last layer's query
projection, output projection and MLP need to run only there:
:func:`only_at` gathers those rows before each part and scatters the part's
result back into zeros, so the layer keeps its shapes.  The trained
positions get the same values (to rounding); the other positions hold values
nothing reads, and get no gradient.

:func:`supports_trimming` decides once per model, by comparing the two on a
tiny packed batch, whether this holds: a model whose last layer does
something else (a router over all tokens, a part that is not called with the
hidden states first) keeps the full computation.  The hooks sit on the
model's own modules while the decoder runs, so another thread must not run
the same model at that time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from finetune_web.backends.local._encode import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

__all__ = ["only_at", "position_wise_tail", "scored_rows", "supports_trimming"]

#: Flat positions of the two probe rows (two examples of 4 tokens each) that
#: :func:`supports_trimming` checks: some in each example of each row.
_PROBE_ROWS = (1, 2, 5, 6, 8, 11, 13, 14)


def position_wise_tail(decoder: Any) -> tuple[Any, ...]:
    """Return the last layer's query and output projections and its MLP, those it has."""
    import torch

    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        return ()
    last = layers[-1]
    attention = getattr(last, "self_attn", None)
    parts = (
        getattr(attention, "q_proj", None),
        getattr(attention, "o_proj", None),
        getattr(last, "mlp", None),
    )
    return tuple(part for part in parts if isinstance(part, torch.nn.Module))


def scored_rows(labels: torch.Tensor) -> torch.Tensor:
    """Return the flat indices of the positions ``t`` of ``labels`` ``[B, T]`` whose ``t + 1`` is
    trained (the positions whose hidden states the loss reads)."""
    import torch

    scored = torch.zeros_like(labels, dtype=torch.bool)
    scored[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return scored.reshape(-1).nonzero().squeeze(1)


@contextlib.contextmanager
def only_at(modules: Sequence[Any], rows: torch.Tensor) -> Iterator[None]:
    """Within the block, run each of ``modules`` on the flat positions ``rows`` only.

    Each module's first argument ``[..., hidden]`` is cut to ``[1, len(rows),
    hidden]`` before it runs, and its output is scattered back into zeros of
    the full shape.  The hooks are removed when the block ends.
    """
    shapes: dict[int, tuple[int, ...]] = {}

    def gather(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        states = args[0]
        shapes[id(module)] = tuple(states.shape[:-1])
        picked = states.reshape(-1, states.shape[-1]).index_select(0, rows)
        return (picked.unsqueeze(0), *args[1:])

    def scatter(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        lead = shapes.pop(id(module))
        full = output.new_zeros((math.prod(lead), output.shape[-1]))
        return full.index_copy(0, rows, output[0]).view(*lead, output.shape[-1])

    handles = []
    try:
        for module in modules:
            handles.append(module.register_forward_pre_hook(gather))
            handles.append(module.register_forward_hook(scatter))
        yield
    finally:
        for handle in handles:
            handle.remove()


def supports_trimming(
    model: Any,
    decoder: Any,
    *,
    autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> bool:
    """Return whether :func:`only_at` on the last layer keeps ``decoder``'s scored states.

    It holds when the last layer has a part to trim, none of those parts
    holds a dropout at work (dropout on fewer rows would draw other random
    numbers than the full layer does), gradient checkpointing is off
    (recomputing the layer in the backward pass would run it untrimmed) and,
    on two tiny packed rows in eval mode without gradients, the final hidden
    states at the probed positions equal those of the full layer (1e-5
    relative, 1e-6 absolute).

    Args:
        model: the (unwrapped) model to train, whose mode is saved and restored.
        decoder: its decoder stack (called with ``input_ids`` and ``position_ids``).
        autocast: a context for the checking forward passes (mixed precision).
    """
    import torch

    from finetune_web.backends.local._attention import probe_input

    tail = position_wise_tail(decoder)
    # transformers marks each module that recomputes its layers with ``gradient_checkpointing``
    checkpointing = any(getattr(m, "gradient_checkpointing", 0) is True for m in model.modules())
    dropout = any(
        isinstance(module, torch.nn.Dropout) and module.p > 0
        for part in tail
        for module in part.modules()
    )
    if not tail or checkpointing or dropout:
        return False
    training = model.training
    model.eval()
    try:
        one = probe_input(model)
        # two different rows, so that flat positions are checked across the batch too
        batch = {name: torch.cat([value, value.flip(-1)]) for name, value in one.items()}
        batch["position_ids"] = torch.cat([one["position_ids"]] * 2)
        rows = torch.tensor(_PROBE_ROWS, device=one["input_ids"].device)
        with torch.no_grad(), autocast():
            full = decoder(**batch, use_cache=False).last_hidden_state
            with only_at(tail, rows):
                trimmed = decoder(**batch, use_cache=False).last_hidden_state
    except (AttributeError, IndexError, RuntimeError, TypeError, ValueError):
        return False
    finally:
        model.train(training)
    if full.shape != trimmed.shape:
        return False
    want = full.reshape(-1, full.shape[-1])[rows].float()
    got = trimmed.reshape(-1, trimmed.shape[-1])[rows].float()
    return bool(torch.allclose(got, want, rtol=1e-5, atol=1e-6))
