"""Fine-tune a causal language model on this machine: LoRA, QLoRA or full, with exact resume.

:class:`LocalPEFTBackend` is the local counterpart of
:class:`~finetune_web.backends.OpenAIBackend`: the same
``fine_tune(train, validation, callbacks=...)`` call, the same
:class:`~finetune_web.records.MetricEvent` records during training and the
same :class:`~finetune_web.records.FineTunedModel` at the end, whose
``model_id`` is the folder of the trained adapter (or model).

The data path: each example is rendered with the tokenizer's chat template
and labelled on its assistant turns only (:class:`ChatEncoder`); the
tokenized examples are packed by best-fit decreasing into rows of
``seq_len`` tokens (longer examples are split); rows are batched with
``position_ids`` restarting at each example and no attention mask, which
keeps the packed examples from attending to each other.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from finetune_web.backends.local._checkpoint import ADAPTER_DIR, find_checkpoints
from finetune_web.backends.local._deps import require_local
from finetune_web.backends.local._encode import ChatEncoder
from finetune_web.backends.local._model import (
    METHODS,
    PRECISIONS,
    LoraOptions,
    Method,
    Precision,
    load_tokenizer,
    load_training_model,
    merge_adapter,
    resolve_precision,
    to_lora,
)
from finetune_web.backends.local._run import (
    BACKEND_NAME,
    MERGED_DIR,
    METRICS_FILE,
    MODEL_DIR,
    LocalTrainingRun,
    data_hash,
    make_accelerator,
    pack_records,
    resolve_resume,
    write_metrics,
)
from finetune_web.backends.local._train import TrainOutcome, TrainPlan, train_loop
from finetune_web.errors import ConfigError, error_context
from finetune_web.interfaces import MetricCallback
from finetune_web.records import Example, FineTunedModel, Pack, Preference

__all__ = ["LocalPEFTBackend", "LocalTrainingRun", "LoraOptions"]

_SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
# Settings that change what is trained: a checkpoint made under others is not resumed.
_FINGERPRINTED = (
    "model",
    "tokenizer",
    "method",
    "lora",
    "learning_rate",
    "weight_decay",
    "max_grad_norm",
    "lr_scheduler",
    "warmup_ratio",
    "warmup_steps",
    "gradient_accumulation_steps",
    "epochs",
    "max_steps",
    "batch_size",
    "seq_len",
    "seed",
    "precision",
)


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be a positive integer, not {value!r}")


def _optional_positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive(_, attribute, value)


def _non_negative_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name} must be an integer >= 0, not {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{attribute.name} must be a number >= 0, not {value!r}")


def _choice(*choices: object) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            names = ", ".join(repr(choice) for choice in choices)
            raise ConfigError(f"{attribute.name} must be one of {names}, not {value!r}")

    return check


def _resume(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


@attrs.frozen(kw_only=True)
class LocalPEFTBackend:
    """Fine-tunes a Hugging Face causal language model locally (LoRA, QLoRA or full).

    Attributes:
        model: the base model: a Hugging Face id (already in the local cache
            when offline) or a model directory.
        output_dir: where checkpoints, the adapter (or model), the merged model
            and ``metrics.csv`` go.
        tokenizer: the tokenizer's id or directory (``None``: the model's).
        method: ``"lora"`` (adapters over the frozen model), ``"qlora"``
            (adapters over a 4-bit NF4 model; needs bitsandbytes) or
            ``"full"`` (every weight trained).
        lora: the adapters' options (:class:`LoraOptions` or a table of them).
        learning_rate: the peak learning rate (``None``: 2e-4 for LoRA and
            QLoRA, 2e-5 for full fine-tuning).
        weight_decay: AdamW's weight decay.
        max_grad_norm: clip the gradient norm to this (0: no clipping).
        lr_scheduler: ``"linear"``, ``"cosine"`` or ``"constant"`` decay after the warmup.
        warmup_ratio: warm up over this fraction of the steps ...
        warmup_steps: ... or over this many steps (give one of the two).
        gradient_accumulation_steps: micro-batches per optimizer step.
        epochs: passes over the training rows (ignored when ``max_steps`` is set).
        max_steps: optimizer steps to train for, whatever the epochs.
        batch_size: packed rows per micro-batch (per process).
        seq_len: tokens per packed row; longer examples are split.
        seed: seeds the adapters' initial weights, dropout and the row order.
        precision: ``"auto"`` (bf16 on a GPU that has it, else fp16; fp32 on
            a CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU only).
        gradient_checkpointing: recompute activations to save memory
            (``"auto"``: on a GPU only).
        eval_every: evaluate on the validation rows every this many steps
            (always at each epoch's end and at the last step).
        save_every: save a checkpoint every this many steps (always at each
            epoch's end and at the last step).
        keep_checkpoints: how many of the newest checkpoints to keep.
        resume: ``"auto"`` (continue from the newest checkpoint in
            ``output_dir`` if there is one), a checkpoint folder, or ``None``
            (start afresh; refused when ``output_dir`` holds checkpoints).
        merge: also save the base model with the adapter merged in (``merged/``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: print a progress line per step on stderr.
    """

    model: str
    output_dir: Path = attrs.field(converter=Path)
    tokenizer: str | None = None
    method: Method = attrs.field(default="lora", validator=_choice(*METHODS))
    lora: LoraOptions = attrs.field(factory=LoraOptions, converter=to_lora)
    learning_rate: float | None = None
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    max_grad_norm: float = attrs.field(default=1.0, validator=_non_negative)
    lr_scheduler: Literal["linear", "cosine", "constant"] = attrs.field(
        default="linear", validator=_choice(*_SCHEDULERS)
    )
    warmup_ratio: float = attrs.field(default=0.0, validator=_non_negative)
    warmup_steps: int = attrs.field(default=0, validator=_non_negative)
    gradient_accumulation_steps: int = attrs.field(default=1, validator=_positive)
    epochs: int = attrs.field(default=3, validator=_positive)
    max_steps: int | None = attrs.field(default=None, validator=_optional_positive)
    batch_size: int = attrs.field(default=4, validator=_positive)
    seq_len: int = attrs.field(default=1024, validator=_positive)
    seed: int = attrs.field(default=0, validator=_non_negative_int)
    precision: Precision = attrs.field(default="auto", validator=_choice(*PRECISIONS))
    gradient_checkpointing: bool | Literal["auto"] = attrs.field(
        default="auto", validator=_choice("auto", True, False)
    )
    eval_every: int | None = attrs.field(default=None, validator=_optional_positive)
    save_every: int | None = attrs.field(default=None, validator=_optional_positive)
    keep_checkpoints: int = attrs.field(default=2, validator=_positive)
    resume: str | None = attrs.field(default="auto", converter=_resume)
    merge: bool = False
    device: Literal["auto", "cpu", "cuda"] = attrs.field(
        default="auto", validator=_choice("auto", "cpu", "cuda")
    )
    progress: bool = True

    def __attrs_post_init__(self) -> None:
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, not {self.learning_rate!r}")
        if self.warmup_ratio and self.warmup_steps:
            raise ConfigError("give warmup_ratio or warmup_steps, not both")
        if self.warmup_ratio >= 1:
            raise ConfigError(f"warmup_ratio must be below 1, not {self.warmup_ratio!r}")
        if self.merge and self.method == "full":
            raise ConfigError('merge applies to "lora" and "qlora": "full" saves the whole model')

    @property
    def peak_learning_rate(self) -> float:
        """The learning rate used: the one given, or the method's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-5 if self.method == "full" else 2e-4

    def describe(self) -> dict[str, Any]:
        """Return the settings as JSON, for run manifests and the model registry."""
        values = attrs.asdict(self, recurse=False)
        values["output_dir"] = str(self.output_dir)
        values["lora"] = self.lora.to_json()
        values["learning_rate"] = self.peak_learning_rate
        return values

    # -- training -------------------------------------------------------------------------

    def fine_tune(
        self,
        train: Iterable[Example | Preference],
        validation: Iterable[Example | Preference] | None = None,
        *,
        callbacks: Sequence[MetricCallback] = (),
    ) -> FineTunedModel:
        """Train on chat examples and return the model (see :meth:`train_model`)."""
        return self.train_model(train, validation, callbacks=callbacks).result

    def train_model(
        self,
        train: Iterable[Example | Preference],
        validation: Iterable[Example | Preference] | None = None,
        *,
        callbacks: Sequence[MetricCallback] = (),
    ) -> LocalTrainingRun:
        """Train on chat examples; return the result and the trained model, still in memory.

        Continues from the newest checkpoint in ``output_dir`` when
        ``resume="auto"`` and one exists for the same settings and data.

        Args:
            train: the training examples.
            validation: examples to evaluate on during training (none: no evaluation).
            callbacks: each called with every step's metric event (on the main process).

        Returns:
            The run: the :class:`~finetune_web.records.FineTunedModel`, the
            trained model and its tokenizer.

        Raises:
            MissingDependencyError: torch, transformers or peft (or, for
                QLoRA, bitsandbytes) is missing.
            ConfigError: preference pairs (local DPO is not supported), no
                training examples, or a model that cannot be loaded.
            RecordError: an example has no assistant turn to train on.
            RunStateError: the checkpoint to resume from was made for other
                settings or data, or ``resume=None`` with checkpoints present.
            KeyboardInterrupt: after saving the last complete step.
        """
        require_local()
        accelerator, release = make_accelerator(self.device, self.precision)
        try:
            return self._train(accelerator, train, validation, callbacks)
        finally:
            release()

    def _train(
        self,
        accelerator: Any,
        train: Iterable[Example | Preference],
        validation: Iterable[Example | Preference] | None,
        callbacks: Sequence[MetricCallback],
    ) -> LocalTrainingRun:
        from transformers import set_seed

        set_seed(self.seed)
        tokenizer = load_tokenizer(self.tokenizer or self.model)
        encoder = ChatEncoder(tokenizer)
        with error_context(step=BACKEND_NAME):
            rows, examples = pack_records(encoder, train, self.seq_len, "train")
            valid_rows, valid_examples = (
                pack_records(encoder, validation, self.seq_len, "validation")
                if validation is not None
                else ([], 0)
            )
        if not rows:
            raise ConfigError("no training examples: nothing to fine-tune on")
        plan = self._plan(rows, valid_rows, accelerator.num_processes)
        resume_from = resolve_resume(self.resume, self.output_dir, plan)
        precision = resolve_precision(self.precision, accelerator.device)
        checkpointing = (
            accelerator.device.type == "cuda"
            if self.gradient_checkpointing == "auto"
            else self.gradient_checkpointing
        )
        model = load_training_model(
            self.model,
            method=self.method,
            lora=self.lora,
            precision=precision,
            device=accelerator.device,
            gradient_checkpointing=checkpointing,
        )
        pad = tokenizer.pad_token_id
        outcome = train_loop(
            accelerator=accelerator,
            model=model,
            rows=rows,
            valid_rows=valid_rows,
            plan=plan,
            pad_token_id=pad if isinstance(pad, int) else int(tokenizer.eos_token_id or 0),
            output_dir=self.output_dir,
            resume_from=resume_from,
            callbacks=callbacks,
        )
        files = self._save(accelerator, outcome, tokenizer, precision)
        accelerator.wait_for_everyone()
        metadata = {
            "method": self.method,
            "output_dir": str(self.output_dir.resolve()),
            "steps": outcome.state.step,
            "steps_per_epoch": plan.steps_per_epoch,
            "rows": len(rows),
            "train_examples": examples,
            "validation_examples": valid_examples,
            "validation_rows": len(valid_rows),
            "seq_len": self.seq_len,
            "precision": precision,
            "device": accelerator.device.type,
            "num_processes": accelerator.num_processes,
            "resumed_from_step": outcome.resumed_from,
            "fingerprint": plan.fingerprint,
        }
        result = FineTunedModel(
            model_id=files[0],
            base_model=self.model,
            backend=BACKEND_NAME,
            job_id=f"{BACKEND_NAME}-{plan.fingerprint[:12]}",
            trained_tokens=outcome.state.trained_tokens,
            hyperparameters=self.describe(),
            result_files=files,
            metrics=outcome.state.metrics,
            metadata=metadata,
        )
        return LocalTrainingRun(
            result=result,
            model=outcome.model,
            tokenizer=tokenizer,
            resumed_from=outcome.resumed_from,
        )

    def _plan(self, rows: list[Pack], valid_rows: list[Pack], world: int) -> TrainPlan:
        micro = -(-len(rows) // self.batch_size)
        steps_per_epoch = -(-micro // (self.gradient_accumulation_steps * world))
        total = self.max_steps if self.max_steps is not None else self.epochs * steps_per_epoch
        warmup = self.warmup_steps or math.ceil(self.warmup_ratio * total)
        described = self.describe()
        settings = {name: described[name] for name in _FINGERPRINTED}
        settings["num_processes"] = world
        settings["data"] = data_hash(rows, valid_rows)
        text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return TrainPlan(
            learning_rate=self.peak_learning_rate,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            lr_scheduler=_SCHEDULERS[self.lr_scheduler],
            warmup_steps=warmup,
            batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            steps_per_epoch=steps_per_epoch,
            total_steps=total,
            seed=self.seed,
            eval_every=self.eval_every,
            save_every=self.save_every,
            keep_checkpoints=self.keep_checkpoints,
            fingerprint=hashlib.sha256(text.encode()).hexdigest(),
            settings=settings,
            progress=self.progress,
        )

    def _save(
        self, accelerator: Any, outcome: TrainOutcome, tokenizer: Any, precision: str
    ) -> tuple[str, ...]:
        """Save the trained adapter (or model), the merged model and the metrics."""
        root = self.output_dir.resolve()
        target = root / (MODEL_DIR if self.method == "full" else ADAPTER_DIR)
        files = [str(target)]
        if self.merge:
            files.append(str(root / MERGED_DIR))
        files.append(str(root / METRICS_FILE))
        if not accelerator.is_main_process:
            return tuple(files)
        outcome.model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        if self.merge:
            merge_adapter(
                self.model, target, root / MERGED_DIR, precision=precision, tokenizer=tokenizer
            )
        write_metrics(root / METRICS_FILE, outcome.state.metrics)
        return tuple(files)

    def checkpoints(self) -> tuple[Path, ...]:
        """Return the checkpoint folders in ``output_dir``, oldest first."""
        return tuple(folder for _, folder in find_checkpoints(self.output_dir))
