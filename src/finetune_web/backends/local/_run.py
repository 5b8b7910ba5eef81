"""Around one local training run: its data, plan, accelerator, checkpoint to resume, and result.

accelerate keeps its settings in process-wide state that refuses a second
``Accelerator`` with another precision or device.  A run that created that
state in a single process clears it when it ends, so the next run in the
same Python session (a notebook, a test) may choose other settings; under
``accelerate launch`` the state belongs to the launcher and is left alone.
"""

from __future__ import annotations

import csv
import hashlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web.backends.local._batches import pack_examples
from finetune_web.backends.local._checkpoint import find_checkpoints, read_state
from finetune_web.backends.local._deps import LOCAL_PIP_HINT
from finetune_web.backends.local._encode import IGNORE_INDEX, ChatEncoder
from finetune_web.backends.local._model import resolve_precision
from finetune_web.errors import ConfigError, ErrorContext, MissingDependencyError, RunStateError
from finetune_web.records import Example, FineTunedModel, MetricEvent, Pack, Preference

__all__ = [
    "BACKEND_NAME",
    "MERGED_DIR",
    "METRICS_FILE",
    "MODEL_DIR",
    "LocalTrainingRun",
    "TrainPlan",
    "data_hash",
    "epoch_order",
    "label_count",
    "make_accelerator",
    "pack_records",
    "resolve_resume",
    "write_metrics",
]

#: The ``backend`` name of the models the local backend trains.
BACKEND_NAME = "local-peft"
#: ``output_dir``'s folder for the merged model.
MERGED_DIR = "merged"
#: ``output_dir``'s folder for a fully fine-tuned model.
MODEL_DIR = "model"
#: ``output_dir``'s metrics file (a result CSV).
METRICS_FILE = "metrics.csv"
_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@attrs.frozen(kw_only=True)
class LocalTrainingRun:
    """A finished local run: its result, and the trained model still in memory.

    Attributes:
        result: what :meth:`LocalPEFTBackend.fine_tune` returns (register it
            in a :class:`~finetune_web.registry.ModelRegistry`).
        model: the trained model (a ``PeftModel`` for LoRA and QLoRA), in train mode.
        tokenizer: its tokenizer.
        resumed_from: the step the run continued from (0: it started afresh).
    """

    result: FineTunedModel
    model: Any = attrs.field(repr=False, eq=False)
    tokenizer: Any = attrs.field(repr=False, eq=False)
    resumed_from: int = 0


def label_count(row: Pack) -> int:
    """Return the tokens of ``row`` the loss scores (labels after the first that are not -100)."""
    labels = row.labels
    return len(labels) - 1 - labels[1:].count(IGNORE_INDEX) if labels else 0


def epoch_order(rows: int, seed: int, epoch: int) -> list[int]:
    """Return the order the rows are visited in during ``epoch`` (0-based).

    It depends only on ``seed`` and ``epoch`` (never on a random state left
    by earlier training), so a resumed run visits the rows in the same order.
    """
    import torch

    digest = hashlib.sha256(f"{seed}:{epoch}".encode()).digest()
    generator = torch.Generator()
    generator.manual_seed(int.from_bytes(digest[:7], "little"))
    order: list[int] = torch.randperm(rows, generator=generator).tolist()
    return order


@attrs.frozen(kw_only=True)
class TrainPlan:
    """The resolved settings of one training run.

    Attributes:
        learning_rate: the peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
        max_grad_norm: clip the gradients' norm to this (0: no clipping).
        lr_scheduler: ``linear``, ``cosine`` or ``constant`` (after the warmup).
        warmup_steps: steps of linear warmup.
        batch_size: packed rows per micro-batch (per process).
        gradient_accumulation_steps: micro-batches per optimizer step (per process).
        steps_per_epoch: optimizer steps in one pass over the rows.
        total_steps: optimizer steps of the whole run.
        seed: seeds the row order of each epoch.
        eval_every: evaluate every this many steps (also at each epoch end and the last step).
        save_every: save a checkpoint every this many steps (also at each epoch end and the end).
        keep_checkpoints: how many checkpoints to keep.
        fingerprint: the hash of the settings and the data.
        settings: the settings hashed, saved in each checkpoint.
        progress: print a progress line per step on stderr.
    """

    learning_rate: float
    weight_decay: float
    max_grad_norm: float
    lr_scheduler: str
    warmup_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    steps_per_epoch: int
    total_steps: int
    seed: int
    eval_every: int | None
    save_every: int | None
    keep_checkpoints: int
    fingerprint: str
    settings: dict[str, Any] = attrs.field(factory=dict)
    progress: bool = False

    def step_batches(self, rows: int, epoch: int, world: int) -> list[list[list[int]]]:
        """Return each step of ``epoch``: its micro-batches, each a list of row indices."""
        order = epoch_order(rows, self.seed, epoch)
        micro = [order[i : i + self.batch_size] for i in range(0, rows, self.batch_size)]
        width = self.gradient_accumulation_steps * world
        return [micro[i : i + width] for i in range(0, len(micro), width)]


def make_accelerator(device: str, precision: str) -> tuple[Any, Callable[[], None]]:
    """Return an ``accelerate.Accelerator`` for the run, and what to call when it ends.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Raises:
        ConfigError: ``"cuda"`` without a CUDA GPU, or fp16 on a CPU.
        MissingDependencyError: accelerate is not installed.
    """
    import torch

    try:
        from accelerate import Accelerator  # type: ignore[import-untyped]
        from accelerate.state import (  # type: ignore[import-untyped]
            AcceleratorState,
            PartialState,
        )
    except ImportError as exc:
        raise MissingDependencyError(f"local training needs accelerate: {LOCAL_PIP_HINT}") from exc

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError('device "cuda" was asked for but torch sees no CUDA GPU')
    cpu = device == "cpu" or not has_cuda
    resolved = resolve_precision(precision, torch.device("cpu" if cpu else "cuda"))
    fresh = not PartialState._shared_state and not AcceleratorState._shared_state
    accelerator = Accelerator(cpu=cpu, mixed_precision=_MIXED[resolved])

    def release() -> None:
        if fresh and accelerator.num_processes == 1:
            AcceleratorState._reset_state(reset_partial_state=True)

    return accelerator, release


def pack_records(
    encoder: ChatEncoder, records: Iterable[Example | Preference], seq_len: int, split: str
) -> tuple[list[Pack], int]:
    """Encode chat examples and pack them into rows; return the rows and the example count.

    Raises:
        ConfigError: a record is a preference pair (local DPO is not supported).
        RecordError: an example has no assistant turn to train on.
    """
    tokenized = []
    for record in records:
        if isinstance(record, Preference):
            raise ConfigError(
                f"{split} record {record.id or '<no id>'} is a preference pair: local DPO "
                "training is not supported; give chat examples, or train DPO with "
                "OpenAIBackend(method='dpo')"
            )
        tokenized.append(encoder.encode(record))
    return pack_examples(tokenized, seq_len), len(tokenized)


def data_hash(rows: Sequence[Pack], valid_rows: Sequence[Pack]) -> str:
    """Return a hash of the packed training and validation rows (ids and labels)."""
    digest = hashlib.sha256()
    for part in (rows, valid_rows):
        digest.update(len(part).to_bytes(8, "little"))
        for row in part:
            digest.update(array("q", row.input_ids).tobytes())
            digest.update(array("q", row.labels).tobytes())
            digest.update(b"|")
    return digest.hexdigest()


_METRIC_COLUMNS = (
    "step",
    "total_steps",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "epoch",
)


def write_metrics(path: Path, events: Iterable[MetricEvent]) -> None:
    """Write metric events as a result CSV (``read_result_csv`` reads it back exactly)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_METRIC_COLUMNS)
        for event in events:
            values = [getattr(event, name) for name in _METRIC_COLUMNS]
            writer.writerow(["" if value is None else repr(value) for value in values])


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    names = sorted(set(saved) | set(wanted))
    return [name for name in names if saved.get(name) != wanted.get(name)]


def resolve_resume(resume: str | None, output_dir: Path, plan: TrainPlan) -> Path | None:
    """Return the checkpoint folder to continue from, or ``None`` to start afresh.

    Args:
        resume: ``"auto"`` (the newest checkpoint of ``output_dir``, if any),
            a checkpoint folder, or ``None``.
        output_dir: the run's output folder.
        plan: the run's settings; the checkpoint must have been made under the same.

    Raises:
        RunStateError: the checkpoint was made for other settings or data, a
            named checkpoint is missing, or ``resume=None`` while
            ``output_dir`` holds checkpoints.
    """
    found = find_checkpoints(output_dir)
    if resume is None:
        if found:
            raise RunStateError(
                f"{output_dir} holds checkpoints of an earlier run ({found[-1][1].name} is the "
                "newest) and resume=None starts afresh; use resume='auto' to continue it, or "
                "another output_dir, or delete its checkpoints folder",
                ErrorContext(path=str(output_dir)),
            )
        return None
    if resume == "auto":
        if not found:
            return None
        folder = found[-1][1]
    else:
        folder = Path(resume)
        if not folder.is_dir():
            raise RunStateError(
                f"no checkpoint folder {folder} to resume from", ErrorContext(path=str(folder))
            )
    state, _ = read_state(folder)
    if state.fingerprint != plan.fingerprint:
        changed = _differences(state.settings, plan.settings)
        raise RunStateError(
            f"the checkpoint {folder} was made with other settings or data "
            f"(different: {', '.join(changed) or 'unknown'}); resume with the same ones, "
            "or train into another output_dir",
            ErrorContext(path=str(folder)),
        )
    if state.step > plan.total_steps:
        raise RunStateError(
            f"the checkpoint {folder} is at step {state.step}, past this run's "
            f"{plan.total_steps} steps",
            ErrorContext(path=str(folder)),
        )
    return folder
