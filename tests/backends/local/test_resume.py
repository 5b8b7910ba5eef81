"""Checkpoints: what they hold, how many are kept, and resuming exactly where a run stopped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetune_web.backends.local.backend import LocalPEFTBackend
from finetune_web.errors import RunStateError
from finetune_web.records import MetricEvent
from tests.backends.local.conftest import REFERENCE, TRAIN, VALID


def _backend(tiny_model: Path, output_dir: Path, **changes: Any) -> LocalPEFTBackend:
    return LocalPEFTBackend(
        model=str(tiny_model), output_dir=output_dir, merge=True, **{**REFERENCE, **changes}
    )


def test_checkpoints_hold_the_full_training_state(reference_run: Any) -> None:
    """Only the newest checkpoints are kept, each with adapter, optimizer, RNG and position."""
    output_dir = Path(reference_run.result.metadata["output_dir"])
    names = sorted(p.name for p in (output_dir / "checkpoints").iterdir())
    saved = {2, 4, 6, reference_run.result.metadata["steps_per_epoch"]}
    assert names == [f"step-{step}" for step in sorted(saved)[-REFERENCE["keep_checkpoints"] :]]
    newest = output_dir / "checkpoints" / "step-6"
    assert (newest / "adapter" / "adapter_model.safetensors").is_file()
    assert (newest / "adapter" / "adapter_config.json").is_file()
    assert (newest / "trainer.pt").is_file()
    state = json.loads((newest / "state.json").read_text(encoding="utf-8"))
    assert state["step"] == 6
    assert state["fingerprint"] == reference_run.result.metadata["fingerprint"]
    assert set(state["rng"]) == {"python", "numpy"}
    assert [MetricEvent(**event) for event in state["metrics"]] == list(
        reference_run.result.metrics
    )


def test_an_interrupted_run_resumes_with_the_same_losses(
    tiny_model: Path, tmp_path: Path, reference_run: Any
) -> None:
    """Stopped by Ctrl-C after step 3 and run again, a run gives the uninterrupted run's metrics.

    The interrupt lands between two scheduled checkpoints, so the run saves
    step 3 on its way out; the second call finds it (``resume="auto"``) and
    continues, across the epoch boundary, with the same rows, learning rate,
    optimizer moments and random states.
    """
    seen: list[MetricEvent] = []

    def stop_after_three(event: MetricEvent) -> None:
        seen.append(event)
        if event.step == 3:
            raise KeyboardInterrupt

    backend = _backend(tiny_model, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        backend.fine_tune(TRAIN, VALID, callbacks=[stop_after_three])
    assert (tmp_path / "run" / "checkpoints" / "step-3" / "state.json").is_file()
    assert not (tmp_path / "run" / "adapter").exists()

    resumed = backend.train_model(TRAIN, VALID, callbacks=[seen.append])

    expected = reference_run.result.metrics
    assert [event.train_loss for event in seen] == [event.train_loss for event in expected]
    assert tuple(seen) == expected
    assert resumed.result.metrics == expected
    assert resumed.resumed_from == 3
    assert resumed.result.trained_tokens == reference_run.result.trained_tokens


def test_an_interrupt_inside_a_step_resumes_from_the_step_before(
    tiny_model: Path, tmp_path: Path, reference_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of step 4's forward pass saves step 3, random states included.

    Dropout has already drawn random numbers for step 4 when the interrupt
    lands; the checkpoint holds the states as they were when step 3 ended,
    so the resumed run still matches the uninterrupted one.
    """
    from finetune_web.backends.local import _train

    finished: list[int] = []
    real = {name: getattr(_train, name) for name in ("forward_packed", "trained_token_stats")}

    def interrupting(name: str) -> Any:
        def forward(model: Any, batch: Any, **options: Any) -> Any:
            result = real[name](model, batch, **options)
            if finished and finished[-1] == 3 and model.training:
                raise KeyboardInterrupt
            return result

        return forward

    for name in real:  # the loop computes its loss through one or the other
        monkeypatch.setattr(_train, name, interrupting(name))
    backend = _backend(tiny_model, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        backend.fine_tune(TRAIN, VALID, callbacks=[lambda event: finished.append(event.step)])
    assert finished == [1, 2, 3]
    for name, function in real.items():
        monkeypatch.setattr(_train, name, function)

    resumed = backend.train_model(TRAIN, VALID)
    assert resumed.resumed_from == 3
    assert resumed.result.metrics == reference_run.result.metrics


def test_a_finished_run_is_not_trained_again(tiny_model: Path, reference_run: Any) -> None:
    """Calling fine_tune again on a finished output_dir resumes at the end: no new step."""
    output_dir = Path(reference_run.result.metadata["output_dir"])
    seen: list[MetricEvent] = []
    again = _backend(tiny_model, output_dir).train_model(TRAIN, VALID, callbacks=[seen.append])
    assert seen == []
    assert again.resumed_from == REFERENCE["max_steps"]
    assert again.result.metrics == reference_run.result.metrics
    assert again.result.model_id == reference_run.result.model_id


def test_a_checkpoint_for_other_settings_is_not_resumed(
    tiny_model: Path, tmp_path: Path, reference_run: Any
) -> None:
    """Resuming with another learning rate (or other data) is refused, naming what changed."""
    copy = tmp_path / "copy"
    shutil.copytree(reference_run.result.metadata["output_dir"], copy)
    changed = _backend(tiny_model, copy, learning_rate=5e-3)
    with pytest.raises(RunStateError, match=r"different: learning_rate\)"):
        changed.fine_tune(TRAIN, VALID)
    with pytest.raises(RunStateError, match=r"different: data\)"):
        _backend(tiny_model, copy).fine_tune(TRAIN[:-1], VALID)


def test_resume_none_refuses_to_mix_with_earlier_checkpoints(
    tiny_model: Path, tmp_path: Path, reference_run: Any
) -> None:
    """resume=None in a folder holding checkpoints raises instead of overwriting them."""
    copy = tmp_path / "copy"
    shutil.copytree(reference_run.result.metadata["output_dir"], copy)
    with pytest.raises(RunStateError, match="resume='auto'"):
        _backend(tiny_model, copy, resume=None).fine_tune(TRAIN, VALID)


def test_resume_from_a_named_checkpoint(
    tiny_model: Path, tmp_path: Path, reference_run: Any
) -> None:
    """A checkpoint folder given as ``resume`` is continued to the same end."""
    copy = tmp_path / "copy"
    shutil.copytree(reference_run.result.metadata["output_dir"], copy)
    shutil.rmtree(copy / "checkpoints" / "step-6")
    older = sorted(p for p in (copy / "checkpoints").iterdir())[0]
    step = int(older.name.split("-")[1])
    seen: list[MetricEvent] = []
    run = _backend(tiny_model, copy, resume=str(older)).train_model(
        TRAIN, VALID, callbacks=[seen.append]
    )
    assert run.resumed_from == step
    assert tuple(seen) == reference_run.result.metrics[step:]
    assert run.result.metrics == reference_run.result.metrics
    assert run.result.trained_tokens == reference_run.result.trained_tokens


@pytest.mark.parametrize("damage", ["trainer", "adapter"])
def test_a_damaged_checkpoint_is_refused_by_name_and_leaves_the_model_as_it_was(
    tiny_model: Path,
    tmp_path: Path,
    reference_run: Any,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    """A truncated trainer.pt or a missing adapter file in the checkpoint being resumed raises
    RunStateError naming that file (not a bare torch or safetensors error), and the model is
    back on its own attention and LoRA forwards although training never started."""
    from finetune_web.backends.local import _train

    copy = tmp_path / "copy"
    shutil.copytree(reference_run.result.metadata["output_dir"], copy)
    newest = copy / "checkpoints" / "step-6"
    if damage == "trainer":
        broken = newest / "trainer.pt"
        broken.write_bytes(broken.read_bytes()[:100])
    else:
        broken = newest / "adapter" / "adapter_model.safetensors"
        broken.unlink()
    switches: list[Any] = []

    def spy(switch_on: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            switches.append(switch_on(*args, **kwargs))
            return switches[-1]

        return wrapped

    monkeypatch.setattr(_train, "use_packed_attention", spy(_train.use_packed_attention))
    monkeypatch.setattr(_train, "fuse_lora", spy(_train.fuse_lora))
    with pytest.raises(RunStateError, match="cannot read the checkpoint file") as caught:
        _backend(tiny_model, copy).fine_tune(TRAIN, VALID)
    assert caught.value.context.path == str(broken)
    assert len(switches) == 2
    assert not any(switch.active for switch in switches)
