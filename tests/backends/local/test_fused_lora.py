"""LoRA layers through one merged weight: the same logits and gradients as peft's own forward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune_web.records import Pack
from tests.backends.local.conftest import PEFT_WARNING, TRAIN, random_lora

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from finetune_web.backends.local import (  # noqa: E402 -- after the skip guards
    ChatEncoder,
    collate,
    forward_packed,
    pack_examples,
    token_stats,
)
from finetune_web.backends.local._fused_lora import (  # noqa: E402
    fuse_lora,
    lora_linear_function,
)

pytestmark = pytest.mark.filterwarnings(PEFT_WARNING)


@pytest.fixture(scope="module")
def batch(tiny_model: Path) -> dict[str, Any]:
    """Three packed rows of different lengths (so one is padded)."""
    encoder = ChatEncoder(transformers.AutoTokenizer.from_pretrained(tiny_model))
    rows: list[Pack] = pack_examples([encoder.encode(e) for e in TRAIN[:14]], seq_len=96)
    return collate(rows, pad_token_id=0)


def _run(model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Return the logits of one training forward and the gradients of its mean loss."""
    model.zero_grad(set_to_none=True)
    logits = forward_packed(model, batch)
    loss, _, count = token_stats(logits, batch["labels"])
    (loss / count).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach(), grads


def _worst(left: dict[str, Any], right: dict[str, Any]) -> float:
    """Largest gradient difference relative to that gradient's own largest entry."""
    assert left.keys() == right.keys() and left
    return max(
        ((left[k] - right[k]).abs().max() / right[k].abs().max().clamp_min(1e-12)).item()
        for k in left
    )


def test_merged_forward_gives_peft_logits_and_gradients(tiny_model: Path, batch: Any) -> None:
    """Every LoRA layer of the model is switched; its logits (within 1e-5) and every adapter
    gradient (within 1e-5 of its scale) equal peft's own layers'; restoring puts peft's forward
    back, and switching twice does not wrap twice."""
    model = random_lora(tiny_model)
    model.train()
    expected_logits, expected = _run(model, batch)
    fused = fuse_lora(model)
    lora_layers = [m for m in model.modules() if hasattr(m, "lora_A")]
    assert fused.active and len(fused.switched) == len(lora_layers) == 7 * 2  # 2 layers
    assert fuse_lora(model).switched == []  # already switched: left alone
    seen: list[str] = []
    hook = fused.switched[-1].register_forward_hook(
        lambda _m, _i, out: seen.append(type(out.grad_fn).__name__)
    )
    logits, got = _run(model, batch)
    hook.remove()
    assert seen == ["LoraLinearBackward"]
    assert (logits - expected_logits).abs().max().item() <= 1e-5
    assert _worst(got, expected) <= 1e-5
    fused.restore()
    assert all("forward" not in vars(layer) for layer in lora_layers)
    again, _ = _run(model, batch)
    assert torch.equal(again, expected_logits)


def test_layers_it_cannot_compute_run_peft_forward(tiny_model: Path, batch: Any) -> None:
    """With dropout active in training a switched layer runs peft's own forward (the same
    random draws give identical logits); in eval mode dropout is off and the merged form runs,
    within 1e-5 of peft; with the adapters disabled the result is exactly the base model's."""
    model = random_lora(tiny_model, dropout=0.3)
    model.train()
    torch.manual_seed(11)
    expected = forward_packed(model, batch).detach()
    fused = fuse_lora(model)
    seen: list[str] = []
    hook = fused.switched[0].register_forward_hook(
        lambda _m, _i, out: seen.append(type(out.grad_fn).__name__)
    )
    torch.manual_seed(11)
    got = forward_packed(model, batch).detach()
    assert torch.equal(got, expected)
    model.eval()
    eval_fused = forward_packed(model, batch).detach()
    hook.remove()
    assert seen[0] != "LoraLinearBackward" and seen[1] == "LoraLinearBackward"
    with torch.no_grad(), model.disable_adapter():
        plain = forward_packed(model, batch)
    fused.restore()
    with torch.no_grad():
        eval_peft = forward_packed(model, batch)
    assert (eval_fused - eval_peft).abs().max().item() <= 1e-5
    with torch.no_grad(), model.disable_adapter():
        base = forward_packed(model, batch)
    assert torch.equal(plain, base)


def test_gradients_flow_only_to_the_input_and_the_adapters() -> None:
    """The function computes x @ (W + s B A).T + bias with gradients for x, A and B equal to
    autograd's on that formula (within 1e-5), none for the frozen weight and bias, and no input
    gradient when the input needs none."""
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 16, generator=generator, requires_grad=True)
    weight, bias = torch.randn(24, 16, generator=generator), torch.randn(24, generator=generator)
    a = torch.randn(4, 16, generator=generator, requires_grad=True)
    b = torch.randn(24, 4, generator=generator, requires_grad=True)
    upstream = torch.randn(3, 5, 24, generator=generator)

    reference = x @ weight.t() + bias + 0.5 * (x @ a.t()) @ b.t()
    reference.backward(upstream)
    expected = [t.grad.clone() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    out = lora_linear_function().apply(x, weight, bias, a, b, 0.5, torch.float32)
    assert (out - reference).abs().max().item() <= 1e-5
    out.backward(upstream)
    for got, want in zip((x.grad, a.grad, b.grad), expected, strict=True):
        assert (got - want).abs().max().item() <= 1e-5
    frozen = x.detach()
    out = lora_linear_function().apply(frozen, weight, None, a, b, 0.5, torch.float32)
    b.requires_grad_(False)
    a.grad = b.grad = None
    out.sum().backward()
    assert frozen.grad is None and a.grad is not None and b.grad is None


def test_under_autocast_it_computes_in_the_autocast_dtype(tiny_model: Path, batch: Any) -> None:
    """Under CPU bfloat16 autocast the switched layers return bfloat16 like peft's layers, the
    logits agree with peft's within bfloat16 rounding, and the adapter gradients stay float32."""
    model = random_lora(tiny_model)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected_logits, expected = _run(model, batch)
    fused = fuse_lora(model)
    layer = fused.switched[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(2, 4, layer.base_layer.in_features))
        logits, got = _run(model, batch)
    fused.restore()
    assert out.dtype == torch.bfloat16
    assert type(out.grad_fn).__name__ == "LoraLinearBackward"  # the merged form ran
    assert all(g.dtype == torch.float32 for g in got.values())
    scale = expected_logits.abs().max().item()
    assert (logits.float() - expected_logits.float()).abs().max().item() <= 0.05 * scale
    assert _worst(got, expected) <= 0.1


def test_training_uses_merged_layers_and_learns_the_same(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fine_tune switches every LoRA layer to the merged form while it trains and gives it back
    at the end; its step losses and accuracies equal, within 1e-5, those of the same run with
    peft's own layers."""
    from finetune_web.backends.local import LocalPEFTBackend, _train
    from finetune_web.backends.local._fused_lora import FusedLora
    from tests.backends.local.conftest import REFERENCE

    switched: list[list[Any]] = []

    def recording(model: Any) -> FusedLora:
        switch = fuse_lora(model)
        switched.append(list(switch.switched))
        return switch

    options = {**REFERENCE, "max_steps": 3, "eval_every": None, "lora": {"dropout": 0.0}}

    def run(name: str) -> Any:
        backend = LocalPEFTBackend(model=str(tiny_model), output_dir=tmp_path / name, **options)
        return backend.fine_tune(TRAIN)

    monkeypatch.setattr(_train, "fuse_lora", recording)
    merged = run("merged")
    assert [len(layers) for layers in switched] == [7 * 2]
    assert all("forward" not in vars(layer) for layer in switched[0])
    monkeypatch.setattr(_train, "fuse_lora", lambda _model: FusedLora())
    plain = run("plain")
    for mine, theirs in zip(merged.metrics, plain.metrics, strict=True):
        assert mine.train_loss == pytest.approx(theirs.train_loss, abs=1e-5)
        assert mine.train_mean_token_accuracy == pytest.approx(
            theirs.train_mean_token_accuracy, abs=1e-5
        )
