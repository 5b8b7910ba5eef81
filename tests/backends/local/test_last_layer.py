"""The last layer's query and output projections and MLP, run only where the loss reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune_web.records import Pack
from tests.backends.local.conftest import PEFT_WARNING, random_lora

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from finetune_web.backends.local import collate  # noqa: E402
from finetune_web.backends.local._batches import (  # noqa: E402
    supports_trimmed_tail,
    trained_token_stats,
)
from finetune_web.backends.local._last_layer import (  # noqa: E402
    only_at,
    position_wise_tail,
    scored_rows,
)
from finetune_web.backends.local._model import _checkpoint_activations  # noqa: E402


def _decoder(model: Any) -> Any:
    return model.get_base_model().model


def test_scored_rows_are_the_flat_positions_whose_next_label_is_trained() -> None:
    """Position t of a row is scored when label t + 1 is trained; indices run over B * T."""
    labels = torch.tensor([[-100, 5, 6, -100], [7, -100, -100, 8]])
    assert scored_rows(labels).tolist() == [0, 1, 6]


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_trimmed_tail_gives_the_loss_hits_and_gradients_of_the_full_layer(
    tiny_model: Path, rows: list[Pack]
) -> None:
    """With the last layer trimmed (its MLP then sees one row per scored position, not the whole
    batch), the summed loss (1e-5 relative), the argmax hits, the count and every LoRA gradient
    (1e-5) equal those of the full layer on a packed batch."""
    model = random_lora(tiny_model)
    model.train()
    assert supports_trimmed_tail(model)
    batch = collate(rows, pad_token_id=0)
    mlp_rows: dict[bool, int] = {}
    results = {}
    for trim in (False, True):
        model.zero_grad()
        probe = (
            _decoder(model)
            .layers[-1]
            .mlp.register_forward_hook(
                lambda _m, args, _out, trim=trim: mlp_rows.__setitem__(
                    trim, args[0].shape[:-1].numel()
                )
            )
        )
        loss, correct, count = trained_token_stats(model, batch, trim=trim)
        probe.remove()
        loss.backward()
        grads = {
            name: parameter.grad.clone()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }
        results[trim] = (loss.item(), correct, count, grads)
    full, trimmed = results[False], results[True]
    assert 0 < full[2] < batch["labels"].numel()  # prompts and padding are not scored
    assert mlp_rows == {False: batch["labels"].numel(), True: full[2]}
    assert trimmed[2] == full[2] and trimmed[1] == full[1]
    assert trimmed[0] == pytest.approx(full[0], rel=1e-5)
    tail_names = (".layers.1.mlp.", ".layers.1.self_attn.o_proj.", ".layers.1.self_attn.q_proj.")
    trimmed_parts = [name for name in full[3] if any(part in name for part in tail_names)]
    assert trimmed_parts  # the trimmed parts' own adapters are among those compared
    for name, want in full[3].items():
        assert want.abs().max().item() > 0, name
        assert (trimmed[3][name] - want).abs().max().item() <= 1e-5, name


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_only_at_runs_the_parts_on_the_scored_rows_and_then_removes_its_hooks(
    tiny_model: Path, rows: list[Pack]
) -> None:
    """Inside the block the query projection, output projection and MLP see one row per scored
    position and return the full shape; afterwards no hook is left on any."""
    model = random_lora(tiny_model)
    decoder = _decoder(model)
    tail = position_wise_tail(decoder)
    assert [type(part).__name__ for part in tail] == ["Linear", "Linear", "LlamaMLP"]
    batch = collate(rows, pad_token_id=0)
    wanted = scored_rows(batch["labels"])
    seen: list[tuple[int, ...]] = []
    probes = [
        part.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
        for part in tail
    ]
    with torch.no_grad(), only_at(tail, wanted):
        hidden = decoder(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state
    for probe in probes:
        probe.remove()
    width = hidden.shape[-1]
    assert seen == [(1, wanted.numel(), width)] * 3  # each part reads hidden-wide rows here
    assert hidden.shape[:2] == batch["input_ids"].shape
    assert all(not part._forward_hooks and not part._forward_pre_hooks for part in tail)


class _Cumulative(torch.nn.Module):
    """An MLP stand-in that mixes positions (a running sum), so trimming it changes results."""

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return states.cumsum(dim=-2)


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_trimming_is_refused_where_it_would_not_be_exact(tiny_model: Path) -> None:
    """A last layer whose MLP mixes positions, or a model that recomputes its layers
    (gradient checkpointing), keeps the full last layer."""
    model = random_lora(tiny_model)
    assert supports_trimmed_tail(model)
    original = _decoder(model).layers[-1].mlp
    _decoder(model).layers[-1].mlp = _Cumulative()
    assert not supports_trimmed_tail(model)
    _decoder(model).layers[-1].mlp = original
    _checkpoint_activations(model.get_base_model(), {"use_reentrant": False})
    assert not supports_trimmed_tail(model)


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_rows_with_nothing_trained_and_a_failing_forward_are_handled(
    tiny_model: Path, rows: list[Pack]
) -> None:
    """A batch whose second row trains nothing still gives the full layer's loss when trimmed;
    a batch that trains nothing at all gives zeros; an error inside the block leaves no hook
    behind."""
    model = random_lora(tiny_model)
    batch = collate(rows[:2], pad_token_id=0)
    batch["labels"][1] = -100
    with torch.no_grad():
        full = trained_token_stats(model, batch)
        trimmed = trained_token_stats(model, batch, trim=True)
        empty = dict(batch, labels=torch.full_like(batch["labels"], -100))
        nothing = trained_token_stats(model, empty, trim=True)
    assert trimmed[2] == full[2] > 0 and trimmed[1] == full[1]
    assert trimmed[0].item() == pytest.approx(full[0].item(), rel=1e-5)
    assert (nothing[0].item(), nothing[1], nothing[2]) == (0.0, 0, 0)
    tail = position_wise_tail(_decoder(model))
    with (
        pytest.raises(RuntimeError, match="on purpose"),
        only_at(tail, scored_rows(batch["labels"])),
    ):
        raise RuntimeError("failed on purpose")
    assert all(not part._forward_hooks and not part._forward_pre_hooks for part in tail)


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_trimming_is_refused_while_adapter_dropout_is_at_work(tiny_model: Path) -> None:
    """With LoRA dropout on the last layer's parts, trimming would draw other random numbers
    than the full layer, so it is refused."""
    assert not supports_trimmed_tail(random_lora(tiny_model, dropout=0.1))
