"""What a run leaves behind: the adapter, the merged model, the metrics file, a registry entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune_web.backends import read_result_csv
from finetune_web.backends.local.backend import LocalPEFTBackend
from finetune_web.registry import ModelRegistry
from tests.backends.local.conftest import PEFT_WARNING, REFERENCE, TRAIN

torch = pytest.importorskip("torch")


def _logits(model: Any, ids: list[int]) -> Any:
    model.eval()
    with torch.no_grad():
        tensor = torch.tensor([ids])
        return model(input_ids=tensor, use_cache=False).logits


def _sample_ids(run: Any) -> list[int]:
    ids: list[int] = run.tokenizer("Describe product 3. Product 3 is a warm lamp.")["input_ids"]
    return ids


def test_the_adapter_is_saved_in_peft_format_with_the_tokenizer(reference_run: Any) -> None:
    """output_dir/adapter holds adapter_config.json, the safetensors weights and the tokenizer."""
    adapter = Path(reference_run.result.model_id)
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer_config.json").is_file()
    assert str(adapter) in reference_run.result.result_files


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_the_reloaded_adapter_gives_the_trained_models_logits(
    reference_run: Any, tiny_model: Path
) -> None:
    """The adapter loaded on the base model computes exactly the in-memory model's logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    reloaded = PeftModel.from_pretrained(base, reference_run.result.model_id)
    ids = _sample_ids(reference_run)
    trained = _logits(reference_run.model, ids)
    assert torch.equal(_logits(reloaded, ids), trained)
    untrained = _logits(AutoModelForCausalLM.from_pretrained(tiny_model), ids)
    assert not torch.equal(untrained, trained)  # the adapter does change the model


def test_the_merged_model_matches_the_adapter(reference_run: Any) -> None:
    """merged/ is a plain model whose logits are within 1e-5 of base + adapter."""
    from transformers import AutoModelForCausalLM

    merged_dir = Path(reference_run.result.metadata["output_dir"]) / "merged"
    assert str(merged_dir) in reference_run.result.result_files
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    ids = _sample_ids(reference_run)
    difference = (_logits(merged, ids) - _logits(reference_run.model, ids)).abs().max()
    assert float(difference) < 1e-5


def test_metrics_csv_reads_back_as_the_runs_events(reference_run: Any) -> None:
    """metrics.csv is a result CSV: read_result_csv gives back the run's metric events."""
    path = Path(reference_run.result.metadata["output_dir"]) / "metrics.csv"
    assert read_result_csv(path) == reference_run.result.metrics


def test_the_result_goes_into_the_model_registry(reference_run: Any, tmp_path: Path) -> None:
    """The FineTunedModel is stored in the SQLite registry and read back unchanged."""
    registry = ModelRegistry(tmp_path / "models.sqlite")
    registry.register(reference_run.result, dataset_hash="sha256:data")
    entry = registry.get(reference_run.result.model_id)
    assert entry.model == reference_run.result
    assert entry.dataset_hash == "sha256:data"
    assert [m.model_id for m in registry.models(backend="local-peft")] == [entry.model_id]


def test_full_fine_tuning_saves_the_whole_model(tiny_model: Path, tmp_path: Path) -> None:
    """method="full" trains every weight, checkpoints them, and saves a reloadable model."""
    from transformers import AutoModelForCausalLM

    backend = LocalPEFTBackend(
        model=str(tiny_model),
        output_dir=tmp_path,
        method="full",
        **{**REFERENCE, "max_steps": 2, "learning_rate": 1e-3},
    )
    run = backend.train_model(TRAIN)
    saved = Path(run.result.model_id)
    assert saved == tmp_path.resolve() / "model"
    assert (saved / "config.json").is_file() and not (saved / "adapter_config.json").exists()
    assert (tmp_path / "checkpoints" / "step-2" / "weights.safetensors").is_file()
    ids = _sample_ids(run)
    reloaded = AutoModelForCausalLM.from_pretrained(saved)
    assert torch.equal(_logits(reloaded, ids), _logits(run.model, ids))
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not torch.equal(_logits(base, ids), _logits(run.model, ids))
