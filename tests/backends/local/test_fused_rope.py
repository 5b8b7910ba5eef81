"""Rotary embeddings in four passes: the same values and gradients as transformers' function."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.backends.local.conftest import PEFT_WARNING, TRAIN, random_lora

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers.models.llama import modeling_llama  # noqa: E402 -- after the skip guards

from finetune_web.backends.local import collate, forward_packed  # noqa: E402
from finetune_web.backends.local._fused_rope import (  # noqa: E402
    FusedRope,
    fuse_rope,
    fused_rotary,
    rope_function,
)
from finetune_web.records import Pack  # noqa: E402

pytestmark = pytest.mark.filterwarnings(PEFT_WARNING)


def _small_llama() -> Any:
    """A one-layer random Llama, for checks that need only its modules."""
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


def _embeddings(batch: int, length: int, width: int, dtype: Any = None) -> tuple[Any, Any]:
    """Cos and sin as Llama builds them: one frequency per pair, the two halves repeated."""
    frequencies = 1.0 / 10000 ** (torch.arange(0, width, 2, dtype=torch.float64) / width)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * frequencies
    angles = torch.cat([angles, angles], dim=-1).expand(batch, -1, -1)
    return angles.cos().to(dtype or torch.float32), angles.sin().to(dtype or torch.float32)


def test_fused_rotation_gives_the_values_and_gradients_of_transformers() -> None:
    """On transposed (non-contiguous) queries and grouped keys, the fused function's outputs and
    input gradients equal transformers' apply_rotary_pos_emb within 1e-6."""
    generator = torch.Generator().manual_seed(0)
    q_flat = torch.randn(2, 7, 4 * 16, generator=generator, requires_grad=True)
    k_flat = torch.randn(2, 7, 2 * 16, generator=generator, requires_grad=True)
    cos, sin = _embeddings(2, 7, 16)
    weights = [torch.randn(2, heads, 7, 16, generator=generator) for heads in (4, 2)]
    results = []
    for function in (modeling_llama.apply_rotary_pos_emb, fused_rotary(lambda *a: None)):
        q = q_flat.view(2, 7, 4, 16).transpose(1, 2)
        k = k_flat.view(2, 7, 2, 16).transpose(1, 2)
        rotated = function(q, k, cos, sin)
        loss = sum((r * w).sum() for r, w in zip(rotated, weights, strict=True))
        grads = torch.autograd.grad(loss, (q_flat, k_flat))
        results.append((rotated, grads))
    (want, want_grads), (got, got_grads) = results
    for left, right in zip((*want, *want_grads), (*got, *got_grads), strict=True):
        assert left.shape == right.shape
        assert right.abs().max().item() > 0.1  # not vacuous
        assert (left - right).abs().max().item() <= 1e-6


def test_fused_rotation_backward_is_the_derivative_of_its_forward() -> None:
    """torch.autograd.gradcheck in float64 on random (not rotary-shaped) cos and sin: the
    hand-written backward is the exact derivative of the forward."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 3, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    cos = torch.randn(1, 1, 3, 6, dtype=torch.float64, generator=generator)
    sin = torch.randn(1, 1, 3, 6, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(rope_function().apply, (x, cos, sin))


def test_calls_the_fused_form_does_not_cover_go_to_the_original() -> None:
    """Extra arguments, an odd width or embeddings that need gradients run the module's own
    function (seen by a spy), not the fused one."""
    calls: list[str] = []

    def original(q: Any, k: Any, cos: Any, sin: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append("original")
        return modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)

    fused = fused_rotary(original)
    q, k = torch.randn(1, 2, 3, 8), torch.randn(1, 1, 3, 8)
    cos, sin = _embeddings(1, 3, 8)
    fused(q, k, cos, sin)
    assert calls == []
    fused(q, k, cos, sin, None)
    fused(q, k, cos, sin, position_ids=None)
    fused(q, k, cos.requires_grad_(), sin)
    odd = torch.randn(1, 2, 3, 7)
    fused(odd, odd, torch.ones(1, 3, 7), torch.zeros(1, 3, 7))
    assert calls == ["original"] * 4


def test_a_model_runs_through_the_fused_rotation_and_gets_its_own_back(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fuse_rope switches the Llama modelling module (and only once); every layer's queries and
    keys then go through the fused function, and the model's logits on a padded batch of packed
    rows stay within 1e-5 of the unswitched ones; restore() puts transformers' own function
    back."""
    from finetune_web.backends.local import _fused_rope

    applied: list[tuple[int, ...]] = []
    real = _fused_rope.rope_function()

    class Counting(real):  # type: ignore[misc,valid-type]
        @staticmethod
        def forward(ctx: Any, x: Any, cos: Any, sin: Any) -> Any:
            applied.append(tuple(x.shape))
            return real.forward(ctx, x, cos, sin)

    monkeypatch.setattr(_fused_rope, "rope_function", lambda: Counting)
    model = random_lora(tiny_model)
    model.eval()
    rows = [  # two rows of packed examples, the second one padded in the batch
        Pack(
            input_ids=range(5, 45),
            labels=range(5, 45),
            position_ids=[*range(25), *range(15)],
            example_ids=("a", "b"),
        ),
        Pack(
            input_ids=range(50, 70),
            labels=range(50, 70),
            position_ids=range(20),
            example_ids=("c",),
        ),
    ]
    batch = collate(rows, pad_token_id=0)
    original = modeling_llama.apply_rotary_pos_emb
    with torch.no_grad():
        want = forward_packed(model, batch)
    switch = fuse_rope(model)
    try:
        assert switch.active and modeling_llama in switch.switched
        assert modeling_llama.apply_rotary_pos_emb is not original
        assert not fuse_rope(model).active  # switched already: left alone
        with torch.no_grad():
            got = forward_packed(model, batch)
    finally:
        switch.restore()
    assert modeling_llama.apply_rotary_pos_emb is original
    # queries and keys of both layers (the check on random inputs adds its own, smaller ones)
    assert [shape for shape in applied if shape[2] == 40] == [(2, 4, 40, 16)] * 4
    assert (got - want).abs().max().item() <= 1e-5


def test_a_rotation_of_another_kind_is_not_switched(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modelling module whose rotary function rotates interleaved pairs (not halves) keeps it."""

    def interleaved(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1) -> Any:
        def rotate(x: Any) -> Any:
            pairs = x.unflatten(-1, (-1, 2))
            return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)

        cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
        return q * cos + rotate(q) * sin, k * cos + rotate(k) * sin

    monkeypatch.setattr(modeling_llama, "apply_rotary_pos_emb", interleaved)
    switch = fuse_rope(_small_llama())
    assert modeling_llama not in switch.switched
    assert modeling_llama.apply_rotary_pos_emb is interleaved


def test_training_switches_the_rotation_and_learns_the_same(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fine_tune trains through the fused rotation and gives transformers' function back at the
    end; its step losses and accuracies equal, within 1e-5, those of the same run without it."""
    from finetune_web.backends.local import LocalPEFTBackend, _train
    from tests.backends.local.conftest import REFERENCE

    original = modeling_llama.apply_rotary_pos_emb
    seen: list[bool] = []

    def recording(model: Any) -> FusedRope:
        switch = fuse_rope(model)
        seen.append(modeling_llama in switch.switched)
        return switch

    options = {**REFERENCE, "max_steps": 3, "eval_every": None}

    def run(name: str) -> Any:
        backend = LocalPEFTBackend(model=str(tiny_model), output_dir=tmp_path / name, **options)
        return backend.fine_tune(TRAIN)

    monkeypatch.setattr(_train, "fuse_rope", recording)
    fused = run("fused")
    assert seen == [True]
    assert modeling_llama.apply_rotary_pos_emb is original
    monkeypatch.setattr(_train, "fuse_rope", lambda _model: FusedRope())
    plain = run("plain")
    assert len(fused.metrics) == len(plain.metrics) == 3
    for mine, theirs in zip(fused.metrics, plain.metrics, strict=True):
        assert mine.train_loss == pytest.approx(theirs.train_loss, abs=1e-5)
        assert mine.train_mean_token_accuracy == pytest.approx(
            theirs.train_mean_token_accuracy, abs=1e-5
        )


def test_a_failing_check_puts_back_what_was_already_switched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When checking one modelling module raises something unexpected, fuse_rope gives every
    module it had already switched its own function back before the error goes on."""
    from finetune_web.backends.local import _fused_rope

    this_module = sys.modules[__name__]
    originals = (this_module.apply_rotary_pos_emb, modeling_llama.apply_rotary_pos_emb)
    real = _fused_rope._is_standard
    checked: list[Any] = []

    def failing_second(function: Any) -> bool:
        checked.append(function)
        if len(checked) == 2:
            raise KeyboardInterrupt
        return real(function)

    model = torch.nn.Sequential(_small_llama(), _OtherFamily())
    monkeypatch.setattr(_fused_rope, "_is_standard", failing_second)
    with pytest.raises(KeyboardInterrupt):
        fuse_rope(model)
    # modules are checked in name order: this file's ("tests...") first, switched, then Llama's
    assert checked == [originals[0], originals[1]]
    assert real(originals[0])  # so the first one had been switched
    assert (this_module.apply_rotary_pos_emb, modeling_llama.apply_rotary_pos_emb) == originals


class _OtherFamily(torch.nn.Module):
    """A module whose modelling module (this test file) has a rotary function of its own."""


def apply_rotary_pos_emb(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1) -> Any:
    """This file's stand-in rotary function, the half-split rotation (checked before Llama's)."""
    return modeling_llama.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)
