"""The training loop: packed rows, token-weighted loss, evaluation, checkpoints, exact resume.

One optimizer step is ``gradient_accumulation_steps`` micro-batches of
``batch_size`` packed rows on every process.  Its loss is the sum of the
token losses of all those micro-batches divided by the number of trained
tokens in all of them (on every process), so a step's loss does not depend
on how its tokens fall into micro-batches.

Each epoch visits the rows in an order drawn from a ``torch.Generator``
seeded from ``(seed, epoch)`` alone, so a resumed run sees the same rows
at the same steps as an uninterrupted one.  Under ``accelerate launch`` the
micro-batches of a step are dealt round-robin to the processes; only the
main process saves, prints and calls the callbacks.

The forward passes attend within each packed example only where the model
allows it (:mod:`._attention`), LoRA layers run through one merged weight
(:mod:`._fused_lora`), rotary embeddings take four passes
(:mod:`._fused_rope`), and a single process computes logits, and the last
layer's query and output projections and MLP, only at the trained positions
(:func:`trained_token_stats`): the same results to rounding.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web.backends.local._attention import AttentionSwitch, use_packed_attention
from finetune_web.backends.local._batches import (
    collate,
    forward_packed,
    supports_trained_logits,
    supports_trimmed_tail,
    token_stats,
    trained_token_stats,
)
from finetune_web.backends.local._checkpoint import (
    RngState,
    TrainState,
    resume_into,
    rotate_checkpoints,
    save_checkpoint,
)
from finetune_web.backends.local._fused_lora import fuse_lora
from finetune_web.backends.local._fused_rope import fuse_rope
from finetune_web.backends.local._run import TrainPlan, epoch_order, label_count
from finetune_web.interfaces import MetricCallback
from finetune_web.records import MetricEvent, Pack

__all__ = ["TrainOutcome", "TrainPlan", "epoch_order", "label_count", "train_loop"]

log = logging.getLogger("finetune_web.backends.local")


@attrs.frozen(kw_only=True)
class TrainOutcome:
    """What a training run ends with.

    Attributes:
        model: the trained model, unwrapped from accelerate.
        state: the final state (step, tokens, metric events).
        resumed_from: the step the run continued from (0: a fresh start).
    """

    model: Any = attrs.field(repr=False)
    state: TrainState
    resumed_from: int = 0


def _mine(batches: list[list[int]], process: int, world: int) -> list[tuple[list[int], float]]:
    """Deal a step's micro-batches to this process: ``(rows, weight)``; weight 0 pads."""
    mine = [(rows, 1.0) for rows in batches[process::world]]
    needed = -(-len(batches) // world)
    while len(mine) < needed:  # every process must run as many backward passes
        mine.append((batches[0], 0.0))
    return mine


@attrs.define
class _Loop:
    """One training run's mutable state (lives for one call)."""

    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    rows: Sequence[Pack]
    valid_rows: Sequence[Pack]
    plan: TrainPlan
    pad_token_id: int
    output_dir: Path
    callbacks: Sequence[MetricCallback]
    counts: list[int]
    state: TrainState
    saved_step: int = -1
    boundary: RngState | None = None
    updating: bool = False
    attention: AttentionSwitch | None = None
    trained_logits: bool = False
    trim: bool = False

    # -- one step -------------------------------------------------------------------------

    def _totals(self, values: list[float]) -> list[float]:
        if self.accelerator.num_processes == 1:
            return values
        import torch

        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        summed: list[float] = self.accelerator.reduce(tensor, reduction="sum").tolist()
        return summed

    def _batch(self, rows: Sequence[Pack], indices: list[int]) -> dict[str, Any]:
        batch = collate([rows[i] for i in indices], pad_token_id=self.pad_token_id)
        return {name: value.to(self.accelerator.device) for name, value in batch.items()}

    def _stats(self, model: Any, batch: dict[str, Any]) -> tuple[Any, int, int]:
        """Return the batch's summed loss, argmax hits and scored tokens."""
        if self.trained_logits:
            with self.accelerator.autocast():
                return trained_token_stats(model, batch, trim=self.trim)
        return token_stats(forward_packed(model, batch), batch["labels"])

    def train_step(self, batches: list[list[int]]) -> tuple[float | None, float | None, int]:
        """Run one optimizer step; return its loss, token accuracy and real tokens."""
        accelerator, world = self.accelerator, self.accelerator.num_processes
        mine = _mine(batches, accelerator.process_index, world)
        local = sum(self.counts[i] for rows, weight in mine if weight for i in rows)
        (global_count,) = self._totals([float(local)])
        scale = world / global_count if global_count else 0.0
        loss_total, correct_total, count_total, tokens = 0.0, 0.0, 0.0, 0
        for index, (indices, weight) in enumerate(mine):
            last = index == len(mine) - 1
            sync = contextlib.nullcontext() if last else accelerator.no_sync(self.model)
            with sync:
                batch = self._batch(self.rows, indices)
                loss_sum, correct, count = self._stats(self.model, batch)
                accelerator.backward(loss_sum * (scale * weight))
            if weight:
                loss_total += float(loss_sum.detach())
                correct_total += correct
                count_total += count
                tokens += sum(len(self.rows[i].input_ids) for i in indices)
        self.updating = True
        if self.plan.max_grad_norm > 0:
            accelerator.clip_grad_norm_(self.model.parameters(), self.plan.max_grad_norm)
        self.optimizer.step()
        if not getattr(self.optimizer, "step_was_skipped", False):
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_total, correct_total, count_total, all_tokens = self._totals(
            [loss_total, correct_total, count_total, float(tokens)]
        )
        if not count_total:
            return None, None, int(all_tokens)
        return loss_total / count_total, correct_total / count_total, int(all_tokens)

    def evaluate(self) -> tuple[float | None, float | None]:
        """Return the loss and token accuracy over all validation rows."""
        import torch

        accelerator, world = self.accelerator, self.accelerator.num_processes
        size = self.plan.batch_size
        chunks = [
            list(range(i, min(i + size, len(self.valid_rows))))
            for i in range(0, len(self.valid_rows), size)
        ]
        model = accelerator.unwrap_model(self.model)
        model.eval()
        loss_total, correct_total, count_total = 0.0, 0.0, 0.0
        with torch.no_grad(), accelerator.autocast():
            for indices in chunks[accelerator.process_index :: world]:
                batch = self._batch(self.valid_rows, indices)
                loss_sum, correct, count = self._stats(model, batch)
                loss_total += float(loss_sum)
                correct_total += correct
                count_total += count
        model.train()
        loss_total, correct_total, count_total = self._totals(
            [loss_total, correct_total, count_total]
        )
        if not count_total:
            return None, None
        return loss_total / count_total, correct_total / count_total

    # -- bookkeeping ----------------------------------------------------------------------

    def save(self, rng: RngState) -> None:
        """Save a checkpoint of the current step (main process) and drop the oldest."""
        if self.state.step == self.saved_step:
            return
        if self.accelerator.is_main_process:
            # the checkpoint is saved with the model's own attention implementation
            with self.attention.suspended() if self.attention else contextlib.nullcontext():
                folder = save_checkpoint(
                    self.output_dir,
                    model=self.accelerator.unwrap_model(self.model),
                    optimizer=self.optimizer,
                    scheduler=self.scheduler,
                    scaler=getattr(self.accelerator, "scaler", None),
                    rng=rng,
                    state=self.state,
                )
            log.info("saved checkpoint %s", folder)
            rotate_checkpoints(self.output_dir, self.plan.keep_checkpoints)
        self.saved_step = self.state.step

    def run(self) -> None:
        """Train from the current step to the last one."""
        plan, world = self.plan, self.accelerator.num_processes
        while self.state.step < plan.total_steps:
            epoch = self.state.step // plan.steps_per_epoch
            steps = plan.step_batches(len(self.rows), epoch, world)
            for position in range(self.state.step - epoch * plan.steps_per_epoch, len(steps)):
                if self.state.step >= plan.total_steps:
                    break
                self.one_step(steps[position], epoch_end=position == len(steps) - 1)

    def one_step(self, batches: list[list[int]], *, epoch_end: bool) -> None:
        """Train one step, then evaluate, record, save and report as due."""
        plan = self.plan
        loss, accuracy, tokens = self.train_step(batches)
        step = self.state.step + 1
        last = step == plan.total_steps
        valid_loss = valid_accuracy = None
        if self.valid_rows and (epoch_end or last or _every(plan.eval_every, step)):
            valid_loss, valid_accuracy = self.evaluate()
        event = MetricEvent(
            step=step,
            total_steps=plan.total_steps,
            train_loss=loss,
            valid_loss=valid_loss,
            train_mean_token_accuracy=accuracy,
            valid_mean_token_accuracy=valid_accuracy,
            epoch=round(step / plan.steps_per_epoch, 6),
        )
        self.state = attrs.evolve(
            self.state,
            step=step,
            trained_tokens=self.state.trained_tokens + tokens,
            metrics=(*self.state.metrics, event),
        )
        self.boundary = RngState.capture()
        self.updating = False
        if epoch_end or last or _every(plan.save_every, step):
            self.save(self.boundary)
            self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for callback in self.callbacks:
                callback(event)

    def save_on_interrupt(self) -> None:
        """Save the last complete step after a KeyboardInterrupt, when it is consistent."""
        if self.boundary is None:
            return  # no step finished in this call: nothing new to save
        if self.updating:
            log.warning("interrupted during an update: the last checkpoint is where to resume")
            return
        self.save(self.boundary)
        log.warning("interrupted: saved step %d; run again to resume", self.state.step)


def _every(interval: int | None, step: int) -> bool:
    return interval is not None and step % interval == 0


def _progress(plan: TrainPlan) -> list[MetricCallback]:
    if not plan.progress:
        return []
    from finetune_web.backends._openai_monitor import ProgressLine

    return [ProgressLine(sys.stderr)]


@contextlib.contextmanager
def _interrupts(loop: _Loop) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        loop.save_on_interrupt()
        raise


#: Devices on which torch's AdamW has a fused kernel (one call updates every parameter).
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


def _fusable(parameters: Sequence[Any]) -> bool:
    """Return whether AdamW can update ``parameters`` with its fused kernel (floating, on one
    device kind it supports)."""
    kinds = {parameter.device.type for parameter in parameters}
    return (
        len(kinds) == 1
        and kinds <= set(_FUSED_ADAM_DEVICES)
        and all(parameter.dtype.is_floating_point for parameter in parameters)
    )


def train_loop(
    *,
    accelerator: Any,
    model: Any,
    rows: Sequence[Pack],
    valid_rows: Sequence[Pack],
    plan: TrainPlan,
    pad_token_id: int,
    output_dir: Path,
    resume_from: Path | None,
    callbacks: Sequence[MetricCallback],
    on_start: Callable[[TrainState], None] | None = None,
) -> TrainOutcome:
    """Train ``model`` on ``rows`` as ``plan`` says, resuming from a checkpoint if given.

    Args:
        accelerator: the ``accelerate.Accelerator`` of the run.
        model: the model to train (not yet prepared by the accelerator).
        rows: the packed training rows.
        valid_rows: the packed validation rows (empty: no evaluation).
        plan: the resolved settings.
        pad_token_id: pads short rows in a batch.
        output_dir: where checkpoints go.
        resume_from: a checkpoint folder to continue from, or ``None``.
        callbacks: called (on the main process) with each step's metric event.
        on_start: called with the state training starts from (after a resume).

    Returns:
        The trained model and the final state.

    Raises:
        KeyboardInterrupt: passed on after saving the last complete step.
    """
    import torch
    from transformers import get_scheduler

    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable,
        lr=plan.learning_rate,
        weight_decay=plan.weight_decay,
        fused=_fusable(trainable) or None,
    )
    scheduler = get_scheduler(
        plan.lr_scheduler,
        optimizer,
        num_warmup_steps=plan.warmup_steps,
        num_training_steps=plan.total_steps,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    plain = accelerator.unwrap_model(model)
    # whatever fails, the model leaves with its own attention, LoRA and rotary forwards
    with contextlib.ExitStack() as switched:
        attention = use_packed_attention(plain, autocast=accelerator.autocast)
        switched.callback(attention.restore)
        switched.callback(fuse_lora(plain).restore)
        switched.callback(fuse_rope(plain).restore)
        trained_logits = (
            accelerator.num_processes == 1
            and plain is model
            and supports_trained_logits(plain, autocast=accelerator.autocast)
        )
        trim = trained_logits and supports_trimmed_tail(plain, autocast=accelerator.autocast)
        state = TrainState(
            step=0, trained_tokens=0, fingerprint=plan.fingerprint, settings=plan.settings
        )
        if resume_from is not None:
            state = resume_into(accelerator, model, optimizer, scheduler, resume_from)
        start = state.step
        if on_start is not None:
            on_start(state)
        loop = _Loop(
            accelerator=accelerator,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            rows=rows,
            valid_rows=valid_rows,
            plan=plan,
            pad_token_id=pad_token_id,
            output_dir=output_dir,
            callbacks=[*_progress(plan), *callbacks] if accelerator.is_main_process else [],
            counts=[label_count(row) for row in rows],
            state=state,
            saved_step=start if resume_from is not None else -1,
            attention=attention,
            trained_logits=trained_logits,
            trim=trim,
        )
        model.train()
        with _interrupts(loop):
            loop.run()
    return TrainOutcome(model=accelerator.unwrap_model(model), state=loop.state, resumed_from=start)
