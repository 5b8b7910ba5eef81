"""The fast training forward: per-example attention and logits only at trained positions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune_web.records import Pack
from tests.backends.local.conftest import PEFT_WARNING, SHORT, TRAIN, random_lora

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from finetune_web.backends.local import (  # noqa: E402 -- after the skip guards
    collate,
    forward_packed,
    token_stats,
)
from finetune_web.backends.local._attention import (  # noqa: E402
    PACKED_ATTENTION,
    packed_attention_forward,
    use_packed_attention,
)
from finetune_web.backends.local._batches import (  # noqa: E402
    supports_trained_logits,
    trained_token_stats,
)


def _plain(tiny_model: Path) -> Any:
    auto = transformers.AutoModelForCausalLM
    model = auto.from_pretrained(tiny_model, attn_implementation="sdpa")
    model.eval()
    return model


def _gqa_model() -> Any:
    """A random Llama with grouped-query attention: 4 query heads share 2 key/value heads."""
    config = transformers.LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attn_implementation="sdpa",
    )
    torch.manual_seed(5)
    model = transformers.LlamaForCausalLM(config)
    model.eval()
    return model


def _alone(ids: Any) -> Pack:
    return Pack(input_ids=ids, labels=ids, position_ids=range(len(ids)), example_ids=("x",))


@pytest.mark.parametrize("kind", ["tiny", "gqa"])
def test_per_example_attention_matches_each_example_alone_and_sdpa(
    tiny_model: Path, rows: list[Pack], kind: str
) -> None:
    """Per-example attention gives, within 1e-5, the logits of today's SDPA path on packed rows
    (several rows of different lengths, padding included) and of each example run alone; with
    and without grouped-query attention."""
    model = _plain(tiny_model) if kind == "tiny" else _gqa_model()
    batch = collate(rows, pad_token_id=0)
    with torch.no_grad():
        expected = forward_packed(model, batch)
        alone = []
        for row in rows:
            for start, end in _spans(row):
                single = collate([_alone(row.input_ids[start:end])], pad_token_id=0)
                alone.append(forward_packed(model, single)[0])
        switch = use_packed_attention(model)
        assert switch.active
        assert model.config._attn_implementation == PACKED_ATTENTION
        got = forward_packed(model, batch)
    switch.restore()
    assert model.config._attn_implementation == "sdpa"
    assert (got - expected).abs().max().item() <= 1e-5
    pieces = [got[index, start:end] for index, row in enumerate(rows) for start, end in _spans(row)]
    worst = max((piece - one).abs().max().item() for piece, one in zip(pieces, alone, strict=True))
    assert worst <= 1e-5


def _spans(row: Pack) -> list[tuple[int, int]]:
    starts = [i for i, position in enumerate(row.position_ids) if position == 0]
    return list(zip(starts, [*starts[1:], len(row.input_ids)], strict=True))


class _Layer(torch.nn.Module):  # type: ignore[misc]
    num_key_value_groups = 1
    is_causal = True


def test_per_example_attention_honours_scaling_and_dropout() -> None:
    """The scale is applied as given; dropout applies only when the layer is training."""
    torch.manual_seed(3)
    query, key, value = (torch.randn(1, 2, 6, 8) for _ in range(3))
    positions = torch.tensor([[0, 1, 2, 0, 1, 2]])
    layer = _Layer().eval()
    out, _ = packed_attention_forward(
        layer, query, key, value, None, scaling=0.3, position_ids=positions
    )
    for start in (0, 3):
        part = slice(start, start + 3)
        scores = (query[:, :, part] @ key[:, :, part].transpose(-1, -2)) * 0.3
        scores = scores.masked_fill(torch.triu(torch.ones(3, 3, dtype=torch.bool), 1), -1e9)
        manual = (scores.softmax(-1) @ value[:, :, part]).transpose(1, 2)
        assert (out[:, part] - manual).abs().max().item() <= 1e-6
    still, _ = packed_attention_forward(
        layer, query, key, value, None, dropout=0.5, scaling=0.3, position_ids=positions
    )
    assert torch.equal(still, out)  # eval mode: no dropout, whatever the argument
    layer.train()
    dropped, _ = packed_attention_forward(
        layer, query, key, value, None, dropout=0.5, scaling=0.3, position_ids=positions
    )
    assert not torch.allclose(dropped, out)


def test_per_segment_kernels_give_the_outputs_and_gradients_of_sdpa_on_each_segment() -> None:
    """On the CPU one autograd node runs every segment (its grad_fn says so), and its output and
    the gradients of queries, keys and values (inputs laid out as transformers lays them out,
    not contiguous) equal, within 1e-6, those of causal SDPA run segment by segment."""
    torch.manual_seed(4)
    # [B, T, heads, dim] seen as [B, heads, T, dim], as the attention layers hand them over
    query, key, value = (torch.randn(2, 9, 3, 8).transpose(1, 2).requires_grad_() for _ in range(3))
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 0, 1]])
    spans = [[(0, 4), (4, 6), (6, 9)], [(0, 7), (7, 9)]]
    out, _ = packed_attention_forward(
        _Layer().train(), query, key, value, None, scaling=0.4, position_ids=positions
    )
    assert "SegmentAttention" in type(out.grad_fn).__name__
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), (query, key, value))
    pieces = []
    for row, pairs in enumerate(spans):
        for start, end in pairs:
            part = slice(start, end)
            pieces.append(
                torch.nn.functional.scaled_dot_product_attention(
                    query[row : row + 1, :, part],
                    key[row : row + 1, :, part],
                    value[row : row + 1, :, part],
                    is_causal=True,
                    scale=0.4,
                ).transpose(1, 2)
            )
    rows = [torch.cat(pieces[:3], dim=1), torch.cat(pieces[3:], dim=1)]
    expected = torch.cat(rows, dim=0)
    expected_grads = torch.autograd.grad((expected * weights).sum(), (query, key, value))
    assert (out - expected).abs().max().item() <= 1e-6
    for got, want in zip(grads, expected_grads, strict=True):
        assert want.abs().max().item() > 1e-3  # not vacuous
        assert (got - want).abs().max().item() <= 1e-6


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_trained_token_stats_equal_token_stats_on_full_logits(
    tiny_model: Path, rows: list[Pack]
) -> None:
    """Loss (within 1e-5 relative), argmax hits and token count equal token_stats' on full
    logits, and a batch with nothing to train gives zeros."""
    model = random_lora(tiny_model)
    model.eval()
    assert supports_trained_logits(model)
    batch = collate(rows, pad_token_id=0)
    with torch.no_grad():
        loss, correct, count = token_stats(forward_packed(model, batch), batch["labels"])
        fast_loss, fast_correct, fast_count = trained_token_stats(model, batch)
        empty = dict(batch, labels=torch.full_like(batch["labels"], -100))
        nothing = trained_token_stats(model, empty)
    assert fast_count == count > 0
    assert fast_correct == correct
    assert fast_loss.item() == pytest.approx(loss.item(), rel=1e-5)
    assert (nothing[0].item(), nothing[1], nothing[2]) == (0.0, 0, 0)


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_lora_gradients_match_between_the_fast_and_the_current_path(
    tiny_model: Path, rows: list[Pack]
) -> None:
    """One batch's LoRA gradients from per-example attention plus trained-position logits equal
    (within 1e-5) those from SDPA on full logits."""
    model = random_lora(tiny_model)
    batch = collate(rows, pad_token_id=0)

    def gradients(fast: bool) -> dict[str, Any]:
        model.zero_grad(set_to_none=True)
        if fast:
            loss, _, count = trained_token_stats(model, batch)
        else:
            loss, _, count = token_stats(forward_packed(model, batch), batch["labels"])
        (loss / count).backward()
        return {
            name: parameter.grad.clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }

    current = gradients(fast=False)
    switch = use_packed_attention(model)
    assert switch.active
    fast = gradients(fast=True)
    switch.restore()
    assert current.keys() == fast.keys()
    assert any("lora_A" in name for name in current)
    assert max(current[name].abs().max().item() for name in current) > 1e-4  # not vacuous
    worst = max((current[name] - fast[name]).abs().max().item() for name in current)
    assert worst <= 1e-5


def test_a_run_trains_on_the_fast_path_and_keeps_no_trace_of_it(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single-process LoRA run computes its loss by trained positions under per-example
    attention, with the last layer trimmed to those positions; afterwards the model is back on
    SDPA and neither the saved adapter, its config nor any checkpoint mentions the custom
    attention name."""
    from finetune_web.backends.local import _train
    from finetune_web.backends.local.backend import LocalPEFTBackend

    seen: list[str] = []
    trims: list[bool] = []
    real = _train.trained_token_stats

    def spy(model: Any, batch: Any, **options: Any) -> Any:
        seen.append(model.config._attn_implementation)
        trims.append(options.get("trim", False))
        return real(model, batch, **options)

    monkeypatch.setattr(_train, "trained_token_stats", spy)
    backend = LocalPEFTBackend(
        model=str(tiny_model), output_dir=tmp_path / "run", max_steps=2, **SHORT
    )
    run = backend.train_model(TRAIN[:8], TRAIN[8:10])
    assert seen and set(seen) == {PACKED_ATTENTION}
    assert set(trims) == {True}
    assert run.model.config._attn_implementation == "sdpa"
    files = [path for path in (tmp_path / "run").rglob("*") if path.suffix in {".json", ".md"}]
    assert any(path.name == "adapter_config.json" for path in files)
    for path in files:
        assert PACKED_ATTENTION not in path.read_text(encoding="utf-8"), path


def test_a_switched_model_saves_a_config_without_the_custom_name(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Saving a fully fine-tuned model while switched (suspended or not) writes a config.json
    naming no attention implementation of ours."""
    model = _plain(tiny_model)
    switch = use_packed_attention(model)
    assert switch.active
    with switch.suspended():
        assert model.config._attn_implementation == "sdpa"
        model.save_pretrained(tmp_path / "suspended")
    assert model.config._attn_implementation == PACKED_ATTENTION
    model.save_pretrained(tmp_path / "switched")
    switch.restore()
    for folder in ("suspended", "switched"):
        assert PACKED_ATTENTION not in (tmp_path / folder / "config.json").read_text("utf-8")


def test_other_attention_implementations_keep_the_current_path(tiny_model: Path) -> None:
    """A config naming another implementation (flex attention) or a sliding window is left as
    it is; the switch is inactive and restoring it changes nothing."""
    model = _plain(tiny_model)
    model.config._attn_implementation = "flex_attention"
    switch = use_packed_attention(model)
    assert not switch.active
    switch.restore()
    assert model.config._attn_implementation == "flex_attention"
    windowed = _plain(tiny_model)
    windowed.config.sliding_window = 16
    assert not use_packed_attention(windowed).active
    assert windowed.config._attn_implementation == "sdpa"


def test_a_model_that_hides_position_ids_from_attention_keeps_the_current_path(
    tiny_model: Path,
) -> None:
    """When the attention layers do not receive position_ids, the probing pass notices and the
    model stays on SDPA (whose mask keeps packed examples apart)."""
    model = _plain(tiny_model)

    def drop_positions(_: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        return args, {name: value for name, value in kwargs.items() if name != "position_ids"}

    for layer in model.model.layers:
        layer.self_attn.register_forward_pre_hook(drop_positions, with_kwargs=True)
    switch = use_packed_attention(model)
    assert not switch.active
    assert model.config._attn_implementation == "sdpa"
    assert not model.training  # the probe left the mode as it found it
