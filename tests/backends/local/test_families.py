"""The training shortcuts across model families: each applies where exact and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from finetune_web.backends.local._attention import use_packed_attention  # noqa: E402
from finetune_web.backends.local._batches import (  # noqa: E402
    supports_trained_logits,
    supports_trimmed_tail,
    token_stats,
    trained_token_stats,
)
from finetune_web.backends.local._fused_rope import fuse_rope  # noqa: E402

#: Config class, and whether its rotary function is transformers' half-split rotation.
FAMILIES = [
    ("LlamaConfig", True),
    ("MistralConfig", True),
    ("Qwen2Config", True),
    ("Qwen3Config", True),
    ("GemmaConfig", True),
    ("Phi3Config", True),
    ("StableLmConfig", True),  # partial rotary: the model rotates a slice, the function is standard
    ("GlmConfig", False),  # interleaved pairs: keeps its own rotation
]


def _model(config_name: str) -> Any:
    config_class = getattr(transformers, config_name, None)
    if config_class is None:
        pytest.skip(f"this transformers has no {config_name}")
    config = config_class(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if hasattr(config, "sliding_window"):
        config.sliding_window = None
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    return model.eval()


def _batch() -> dict[str, Any]:
    """Two rows of two packed examples each, with untrained prompts."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 128, (2, 40), generator=generator)
    labels = ids.clone()
    labels[:, :10] = -100
    labels[:, 25:30] = -100
    positions = torch.tensor([[*range(25), *range(15)]] * 2)
    return {"input_ids": ids, "position_ids": positions, "labels": labels}


@pytest.mark.parametrize(("config_name", "standard_rotary"), FAMILIES)
def test_every_shortcut_gives_the_loss_of_the_plain_forward(
    config_name: str, standard_rotary: bool
) -> None:
    """For a tiny random model of each family: per-example attention, trained-position logits,
    the trimmed last layer and the four-pass rotary embeddings all apply (the rotary one only
    where the family's rotation is the half-split one) and together give the summed loss and
    argmax hits of the model's own forward on the full logits with a block-diagonal mask built
    from the packing (within 1e-5 relative)."""
    model = _model(config_name)
    batch = _batch()
    with torch.no_grad():
        mask = torch.zeros(2, 1, 40, 40, dtype=torch.bool)
        for start, end in ((0, 25), (25, 40)):
            mask[:, :, start:end, start:end] = torch.ones(end - start, end - start).tril().bool()
        logits = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=mask,
            use_cache=False,
        ).logits
        want_loss, want_hits, want_count = token_stats(logits, batch["labels"])
    attention = use_packed_attention(model)
    rope = fuse_rope(model)
    try:
        assert attention.active
        assert supports_trained_logits(model) and supports_trimmed_tail(model)
        assert rope.active is standard_rotary
        with torch.no_grad():
            loss, hits, count = trained_token_stats(model, batch, trim=True)
    finally:
        rope.restore()
        attention.restore()
    assert count == want_count > 0
    assert hits == want_hits
    assert loss.item() == pytest.approx(want_loss.item(), rel=1e-5)
