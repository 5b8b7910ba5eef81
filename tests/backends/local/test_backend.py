"""LocalPEFTBackend: its options, its data checks, and the metric events of a run."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from finetune_web.backends.local.backend import LocalPEFTBackend, LoraOptions
from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.interfaces import Backend
from finetune_web.records import MetricEvent, Preference
from tests.backends.local.conftest import REFERENCE, SHORT, TRAIN, chat


def test_options_are_a_picklable_record_that_describes_itself(tmp_path: Path) -> None:
    """The backend pickles, satisfies Backend, and describes its settings as JSON."""
    backend = LocalPEFTBackend(
        model="some/model", output_dir=tmp_path, lora={"r": 16, "target_modules": ["q_proj"]}
    )
    assert isinstance(backend, Backend)
    assert pickle.loads(pickle.dumps(backend)) == backend
    assert backend.lora == LoraOptions(r=16, target_modules=("q_proj",))
    described = json.loads(json.dumps(backend.describe()))
    assert described["lora"] == {
        "r": 16,
        "alpha": 8,
        "dropout": 0.0,
        "target_modules": ["q_proj"],
    }
    assert described["learning_rate"] == 2e-4
    assert attrs.evolve(backend, method="full").peak_learning_rate == 2e-5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "dpo"}, "method must be one of"),
        ({"lora": {"rank": 8}}, "unknown lora option"),
        ({"lora": {"r": 0}}, "lora r must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"warmup_ratio": 0.1, "warmup_steps": 3}, "not both"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"lr_scheduler": "polynomial"}, "lr_scheduler must be one of"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"merge": True, "method": "full"}, "merge applies to"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    """Each invalid setting raises ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=message):
        LocalPEFTBackend(model="m", output_dir=tmp_path, **options)


def test_importing_the_backend_does_not_import_torch() -> None:
    """The module imports torch, transformers and peft only when training starts."""
    code = (
        "import sys, finetune_web.backends.local.backend; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'accelerate') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_preference_pairs_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    """DPO data raises ConfigError before any model is loaded or anything written."""
    pair = Preference(
        id="p1",
        messages=chat(1).messages[:2],
        preferred=chat(1).messages[2],
        non_preferred=chat(2).messages[2],
    )
    backend = LocalPEFTBackend(model=str(tiny_model), output_dir=tmp_path / "out", device="cpu")
    with pytest.raises(ConfigError, match="p1 is a preference pair: local DPO"):
        backend.fine_tune([chat(0), pair])
    assert not (tmp_path / "out").exists()


def test_qlora_without_bitsandbytes_names_the_install_command(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QLoRA without bitsandbytes raises MissingDependencyError with the pip command."""
    from finetune_web.backends.local import _model

    monkeypatch.setattr(_model, "has_bitsandbytes", lambda: False)
    backend = LocalPEFTBackend(
        model=str(tiny_model), output_dir=tmp_path, method="qlora", device="cpu", progress=False
    )
    with pytest.raises(MissingDependencyError, match="pip install bitsandbytes"):
        backend.fine_tune(TRAIN[:4])


def test_fp16_on_a_cpu_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """fp16 training needs a GPU: asking for it on the CPU raises ConfigError."""
    backend = LocalPEFTBackend(
        model=str(tiny_model), output_dir=tmp_path, precision="fp16", device="cpu"
    )
    with pytest.raises(ConfigError, match="fp16"):
        backend.fine_tune(TRAIN[:4])


def test_every_step_reports_a_metric_event(reference_run: Any) -> None:
    """One event per step, with train metrics each step and validation ones when due."""
    events: tuple[MetricEvent, ...] = reference_run.result.metrics
    total = REFERENCE["max_steps"]
    assert [event.step for event in events] == list(range(1, total + 1))
    assert {event.total_steps for event in events} == {total}
    for event in events:
        assert event.train_loss is not None and event.train_loss > 0
        assert event.train_mean_token_accuracy is not None
        assert 0.0 <= event.train_mean_token_accuracy <= 1.0
        assert event.epoch is not None and event.epoch > 0
    validated = [event.step for event in events if event.valid_loss is not None]
    steps_per_epoch = reference_run.result.metadata["steps_per_epoch"]
    expected = {3, 6, steps_per_epoch} if steps_per_epoch <= total else {3, 6}
    assert set(validated) == expected
    assert all(
        event.valid_mean_token_accuracy is not None
        for event in events
        if event.valid_loss is not None
    )
    assert events[-1].train_loss < events[0].train_loss  # it learns


def test_the_result_describes_the_run(reference_run: Any, tiny_model: Path) -> None:
    """The FineTunedModel names the adapter, the base, the tokens and the settings."""
    result = reference_run.result
    assert result.backend == "local-peft"
    assert result.base_model == str(tiny_model)
    assert Path(result.model_id).name == "adapter" and Path(result.model_id).is_absolute()
    assert result.hyperparameters["max_steps"] == REFERENCE["max_steps"]
    assert result.metadata["train_examples"] == len(TRAIN)
    assert result.metadata["resumed_from_step"] == 0
    assert result.trained_tokens is not None and result.trained_tokens > 0


def test_a_step_loss_is_weighted_by_tokens_over_the_accumulated_step(
    tiny_model: Path, tmp_path: Path, reference_run: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two micro-batches of one row give the same first-step loss as one micro-batch of two.

    The loss divides the summed token losses by the tokens of the whole
    step, so how the rows fall into micro-batches does not change it.  The
    run also prints its progress on stderr.
    """
    backend = LocalPEFTBackend(
        model=str(tiny_model),
        output_dir=tmp_path,
        **{
            **REFERENCE,
            "batch_size": 1,
            "gradient_accumulation_steps": 2,
            "max_steps": 1,
            "progress": True,
        },
    )
    result = backend.fine_tune(TRAIN)
    first = reference_run.result.metrics[0]
    assert result.metrics[0].train_loss == pytest.approx(first.train_loss, abs=1e-6)
    assert result.metrics[0].train_mean_token_accuracy == first.train_mean_token_accuracy
    assert "step 1/1" in capsys.readouterr().err


def test_a_cpu_run_updates_its_weights_with_the_fused_adamw_kernel(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The optimizer of a CPU LoRA run is torch's AdamW with fused=True (one kernel call per
    step); parameters of mixed devices or a non-floating dtype would get the plain one."""
    torch = pytest.importorskip("torch")
    from finetune_web.backends.local import _train

    made: list[dict[str, Any]] = []
    real = torch.optim.AdamW

    class Recording(real):  # type: ignore[misc,valid-type]
        def __init__(self, params: Any, **kwargs: Any) -> None:
            made.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    backend = LocalPEFTBackend(
        model=str(tiny_model), output_dir=tmp_path / "run", max_steps=1, **SHORT
    )
    backend.train_model(TRAIN[:4], [])
    assert [kwargs.get("fused") for kwargs in made] == [True]
    assert _train._fusable([torch.zeros(2), torch.ones(3)])
    assert not _train._fusable([torch.zeros(2), torch.zeros(2, device="meta")])
    assert not _train._fusable([torch.zeros(2, dtype=torch.long)])
