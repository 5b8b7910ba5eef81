"""Training checkpoints in ``output_dir/checkpoints/step-<n>/``: save, find, load, rotate.

A checkpoint holds everything needed to continue a run exactly where it
stopped:

- ``adapter/`` (LoRA, QLoRA: peft's ``save_pretrained``, usable as an
  adapter on its own) or ``weights.safetensors`` (full fine-tuning);
- ``trainer.pt``: the optimizer, the learning-rate scheduler, the fp16 grad
  scaler and torch's random states (CPU and CUDA);
- ``state.json``: the step reached, the tokens trained on, the metric events
  so far, Python's and NumPy's random states, and the run's fingerprint
  with the settings it was made from.

A checkpoint is written into a hidden ``.step-<n>.partial`` folder and
renamed when complete, so a crash while saving never leaves a half
checkpoint under a real name.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from finetune_web.errors import ErrorContext, RunStateError
from finetune_web.records import MetricEvent

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADAPTER_DIR",
    "CHECKPOINTS_DIR",
    "STATE_FILE",
    "TRAINER_FILE",
    "WEIGHTS_FILE",
    "RngState",
    "TrainState",
    "checkpoint_path",
    "find_checkpoints",
    "is_peft_model",
    "load_trainer_state",
    "load_weights",
    "read_state",
    "resume_into",
    "rotate_checkpoints",
    "save_checkpoint",
]

#: The folder of ``output_dir`` that holds the checkpoints.
CHECKPOINTS_DIR = "checkpoints"
#: A checkpoint's JSON state (written last).
STATE_FILE = "state.json"
#: A checkpoint's optimizer, scheduler, scaler and torch random states.
TRAINER_FILE = "trainer.pt"
#: A full fine-tuning checkpoint's weights.
WEIGHTS_FILE = "weights.safetensors"
#: A LoRA checkpoint's adapter folder.
ADAPTER_DIR = "adapter"
_PREFIX = "step-"
_ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_peft_model(model: Any) -> bool:
    """Return whether ``model`` carries peft adapters."""
    return hasattr(model, "peft_config")


@attrs.frozen(kw_only=True)
class RngState:
    """The random states of Python, NumPy and torch (CPU and every CUDA device).

    Attributes:
        python: ``random.getstate()``.
        numpy: ``numpy.random.get_state()``.
        torch: ``torch.get_rng_state()``.
        cuda: the current CUDA device's state, in a tuple (empty without CUDA).
    """

    python: Any
    numpy: Any
    torch: Any
    cuda: tuple[Any, ...] = ()

    @classmethod
    def capture(cls) -> RngState:
        """Return the current random states."""
        import numpy
        import torch

        # Only this process's device: touching every GPU would open a context on each.
        used = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        cuda = (torch.cuda.get_rng_state(),) if used else ()
        return cls(
            python=random.getstate(),
            numpy=numpy.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=cuda,
        )

    def restore(self) -> None:
        """Make these the current random states."""
        import numpy
        import torch

        random.setstate(self.python)
        numpy.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state(self.cuda[0])

    def python_json(self) -> dict[str, Any]:
        """Return Python's and NumPy's states as JSON."""
        version, internal, gauss = self.python
        name, keys, position, has_gauss, cached = self.numpy
        return {
            "python": [version, list(internal), gauss],
            "numpy": [name, [int(key) for key in keys], int(position), int(has_gauss), cached],
        }

    @classmethod
    def from_saved(cls, data: dict[str, Any], tensors: dict[str, Any]) -> RngState:
        """Rebuild the states from :meth:`python_json` and the saved torch tensors."""
        import numpy

        version, internal, gauss = data["python"]
        name, keys, position, has_gauss, cached = data["numpy"]
        return cls(
            python=(version, tuple(internal), gauss),
            numpy=(name, numpy.array(keys, dtype=numpy.uint32), position, has_gauss, cached),
            torch=tensors["torch"],
            cuda=tuple(tensors.get("cuda", ())),
        )


def _metrics(value: Any) -> tuple[MetricEvent, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TrainState:
    """Where a run stands after a step.

    Attributes:
        step: optimizer steps done.
        trained_tokens: real (unpadded) tokens trained on so far, all processes.
        metrics: the metric events so far, one per step.
        fingerprint: the hash of the settings and data the run trains on.
        settings: those settings (to say what changed when a resume is refused).
    """

    step: int
    trained_tokens: int
    metrics: tuple[MetricEvent, ...] = attrs.field(default=(), converter=_metrics)
    fingerprint: str
    settings: dict[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the state as JSON."""
        return {
            "step": self.step,
            "trained_tokens": self.trained_tokens,
            "metrics": [attrs.asdict(event) for event in self.metrics],
            "fingerprint": self.fingerprint,
            "settings": self.settings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        """Rebuild a state from :meth:`to_json`."""
        return cls(
            step=int(data["step"]),
            trained_tokens=int(data["trained_tokens"]),
            metrics=[MetricEvent(**event) for event in data["metrics"]],
            fingerprint=str(data["fingerprint"]),
            settings=dict(data["settings"]),
        )


def checkpoint_path(output_dir: Path, step: int) -> Path:
    """Return the folder of the checkpoint at ``step``."""
    return output_dir / CHECKPOINTS_DIR / f"{_PREFIX}{step}"


def find_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Return the complete checkpoints of ``output_dir`` as ``(step, folder)``, by step."""
    folder = output_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        number = entry.name[len(_PREFIX) :]
        if entry.name.startswith(_PREFIX) and number.isdigit() and (entry / STATE_FILE).is_file():
            found.append((int(number), entry))
    return sorted(found)


def _save_weights(model: Any, folder: Path) -> None:
    if is_peft_model(model):
        model.save_pretrained(folder / ADAPTER_DIR)
        return
    from safetensors.torch import save_file

    tensors = {
        name: parameter.detach().cpu().contiguous()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }
    save_file(tensors, str(folder / WEIGHTS_FILE))


def save_checkpoint(
    output_dir: Path,
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    rng: RngState,
    state: TrainState,
) -> Path:
    """Save a checkpoint of ``state.step`` and return its folder.

    Args:
        output_dir: the run's output folder.
        model: the model being trained (unwrapped from any accelerate wrapper).
        optimizer: its optimizer.
        scheduler: its learning-rate scheduler.
        scaler: the fp16 grad scaler, or ``None``.
        rng: the random states at the end of the step.
        state: the run's state after the step.
    """
    import torch

    final = checkpoint_path(output_dir, state.step)
    partial = final.parent / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _save_weights(model, partial)
    trainer: dict[str, Any] = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": rng.torch, "cuda": list(rng.cuda)},
    }
    if scaler is not None:
        trainer["scaler"] = scaler.state_dict()
    torch.save(trainer, partial / TRAINER_FILE)
    document = {**state.to_json(), "rng": rng.python_json()}
    (partial / STATE_FILE).write_text(json.dumps(document, indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def read_state(folder: Path) -> tuple[TrainState, dict[str, Any]]:
    """Return a checkpoint's state and its saved Python and NumPy random states.

    Raises:
        RunStateError: the folder is not a readable checkpoint.
    """
    path = folder / STATE_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return TrainState.from_json(document), dict(document["rng"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunStateError(
            f"{folder} is not a readable checkpoint ({exc}); give a checkpoint folder "
            f"(checkpoints/step-<n>) or remove it",
            ErrorContext(path=str(folder)),
        ) from exc


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """Return a checkpoint's optimizer, scheduler, scaler and torch random states.

    Raises:
        RunStateError: the file is missing, truncated or not a trainer state.
    """
    import torch

    path = folder / TRAINER_FILE
    loaded: Any = _read(path, lambda: torch.load(path, map_location="cpu"))
    if not isinstance(loaded, dict) or not {"optimizer", "scheduler", "rng"} <= set(loaded):
        raise RunStateError(
            "the checkpoint's trainer state lacks the optimizer, scheduler or random states",
            ErrorContext(path=str(path)),
        )
    return loaded


def _read(path: Path, load: Callable[[], Any]) -> Any:
    """Return ``load()``; a file that cannot be read becomes a :class:`RunStateError` naming it."""
    try:
        return load()
    except Exception as exc:  # torch and safetensors raise many kinds for a damaged file
        raise RunStateError(
            f"cannot read the checkpoint file ({type(exc).__name__}: {exc}); delete the "
            f"checkpoint folder to resume from an older one, or pass resume=None with a new "
            f"output_dir",
            ErrorContext(path=str(path)),
        ) from exc


def load_weights(model: Any, folder: Path) -> None:
    """Put a checkpoint's trained weights into ``model`` (unwrapped), in place.

    Raises:
        RunStateError: the checkpoint's weights are unreadable or do not fit the model.
    """
    from safetensors.torch import load_file

    if is_peft_model(model):
        from peft import set_peft_model_state_dict

        adapter = folder / ADAPTER_DIR / _ADAPTER_WEIGHTS
        saved = _read(adapter, lambda: load_file(str(adapter)))
        result: Any = set_peft_model_state_dict(model, saved)
        if result.unexpected_keys:
            raise RunStateError(
                f"the checkpoint's adapter does not fit the model: unexpected weights "
                f"{sorted(result.unexpected_keys)[:3]}",
                ErrorContext(path=str(folder)),
            )
        return
    weights = folder / WEIGHTS_FILE
    tensors: dict[str, Any] = _read(weights, lambda: load_file(str(weights)))
    parameters = dict(model.named_parameters())
    missing = sorted(set(tensors) - set(parameters))
    if missing:
        raise RunStateError(
            f"the checkpoint's weights do not fit the model: unknown weights {missing[:3]}",
            ErrorContext(path=str(folder)),
        )
    with _no_grad():
        for name, tensor in tensors.items():
            parameters[name].copy_(tensor)


def resume_into(
    accelerator: Any, model: Any, optimizer: Any, scheduler: Any, folder: Path
) -> TrainState:
    """Load a checkpoint into a run and return the state it was saved in.

    The weights go into the (unwrapped) model; the optimizer, the scheduler,
    the gradient scaler (when the run has one) and every random state are
    restored, so the next step is the one an uninterrupted run would take.

    Raises:
        RunStateError: a file of the checkpoint is unreadable or does not fit.
    """
    state, python_rng = read_state(folder)
    load_weights(accelerator.unwrap_model(model), folder)
    saved = load_trainer_state(folder)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    RngState.from_saved(python_rng, saved["rng"]).restore()
    return state


def _no_grad() -> torch.no_grad:
    import torch

    return torch.no_grad()


def rotate_checkpoints(output_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; return the folders deleted."""
    found = find_checkpoints(output_dir)
    doomed = [folder for _, folder in found[: max(0, len(found) - keep)]]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed
