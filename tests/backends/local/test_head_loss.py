"""The output head and loss computed a block of positions at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.local.conftest import PEFT_WARNING, random_lora

torch = pytest.importorskip("torch")

from finetune_web.backends.local import _head_loss  # noqa: E402 -- after the skip guard
from finetune_web.backends.local._batches import _decoder_and_head  # noqa: E402
from finetune_web.backends.local._head_loss import (  # noqa: E402
    block_rows,
    head_loss,
    plain_head,
)


def _head(vocab: int, width: int, *, bias: bool) -> torch.nn.Linear:
    torch.manual_seed(11)
    head = torch.nn.Linear(width, vocab, bias=bias)
    head.requires_grad_(False)
    return head


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_loss_hits_and_gradient_equal_cross_entropy_on_full_logits(
    monkeypatch: pytest.MonkeyPatch, rows: int, bias: bool
) -> None:
    """For blocks of 1, 7 (the last one short) and more rows than there are positions, with and
    without a bias: the summed loss equals cross_entropy's within 1e-5 relative, the argmax hits
    are the same count, and the gradient reaching the hidden states equals autograd's through
    full logits within 1e-6."""
    monkeypatch.setattr(_head_loss, "block_rows", lambda _vocab: rows)
    head = _head(97, 16, bias=bias)
    hidden = torch.randn(40, 16, requires_grad=True)
    targets = torch.randint(0, 97, (40,))
    targets[:5] = head(hidden[:5]).argmax(-1)  # some hits for sure
    logits = head(hidden).float()
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    expected_hits = int((logits.argmax(-1) == targets).sum())
    (expected_grad,) = torch.autograd.grad(expected / 40, hidden)
    loss, hits = head_loss(hidden, head, targets)
    (grad,) = torch.autograd.grad(loss / 40, hidden)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(hits) == expected_hits >= 5
    assert expected_grad.abs().max().item() > 1e-3
    assert (grad - expected_grad).abs().max().item() <= 1e-6


def test_tied_maxima_count_as_argmax_counts_them() -> None:
    """When two vocabulary rows of the head are equal, their logits tie exactly at the top:
    a target at the first of them is a hit and at the second a miss, as argmax decides, and
    untied rows are counted as usual."""
    head = _head(20, 6, bias=False)
    hidden = torch.randn(9, 6)
    hidden[:6] = torch.rand(6, 1) + 1.0  # six rows along (1, ..., 1)
    with torch.no_grad():
        head.weight[3] = 10.0  # so rows 3 and 7 give the largest logit of those six rows
        head.weight[7] = head.weight[3]
    targets = torch.tensor([3, 7, 3, 7, 3, 7, 0, 1, 2])
    targets[6:] = head(hidden[6:]).argmax(-1)  # untied rows: certain hits
    logits = head(hidden)
    assert bool((logits[:6, 3] == logits[:6].amax(-1)).all())  # the tie is real
    expected = int((logits.argmax(-1) == targets).sum())
    with torch.no_grad():
        _, hits = head_loss(hidden, head, targets)
    assert int(hits) == expected == 6


def test_without_gradients_it_keeps_no_graph_and_gives_the_same_loss() -> None:
    """Under no_grad (evaluation) the loss is the same and has no graph; hits are never
    differentiable."""
    head = _head(50, 8, bias=False)
    hidden = torch.randn(12, 8, requires_grad=True)
    targets = torch.randint(0, 50, (12,))
    with_graph, hits = head_loss(hidden, head, targets)
    with torch.no_grad():
        without, _ = head_loss(hidden, head, targets)
    assert with_graph.requires_grad and not hits.requires_grad
    assert not without.requires_grad
    assert without.item() == pytest.approx(with_graph.item(), rel=1e-6)


def test_bf16_autocast_follows_the_usual_head_within_bf16_precision() -> None:
    """Under CPU bf16 autocast the loss matches cross_entropy of the autocast head's logits
    (made float) within 1e-2 relative, and the gradient is finite and of the right size."""
    head = _head(64, 32, bias=False)
    hidden = torch.randn(20, 32, requires_grad=True)
    targets = torch.randint(0, 64, (20,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="sum")
        loss, _ = head_loss(hidden, head, targets)
    (grad,) = torch.autograd.grad(loss, hidden)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-2)
    assert grad.shape == hidden.shape and bool(torch.isfinite(grad).all())


def test_block_size_shrinks_with_the_vocabulary() -> None:
    """A block holds about 8 MiB of float32 logits, and never fewer than 16 positions."""
    assert block_rows(4096) == 512
    assert block_rows(128_256) == 16
    assert block_rows(1) >= 16


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_only_a_plain_frozen_head_takes_the_blockwise_path(tiny_model: Path) -> None:
    """A LoRA model's frozen output head qualifies; a trainable head (full fine-tuning) or a
    bias being trained does not, so its weight still gets its gradient the usual way."""
    model = random_lora(tiny_model)
    _, head = _decoder_and_head(model)
    assert plain_head(head)
    trainable = _head(10, 4, bias=True)
    trainable.weight.requires_grad_(True)
    assert not plain_head(trainable)
    biased = _head(10, 4, bias=True)
    biased.bias.requires_grad_(True)
    assert not plain_head(biased)
