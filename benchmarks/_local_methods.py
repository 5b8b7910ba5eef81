"""Timed LoRA training runs for the local training benchmark, one function per method.

``ours_run`` (our backend's ``fine_tune``), ``trl_run`` (TRL's packed
``SFTTrainer``), ``padded_loop`` (per-batch padding) and ``packed_loop``
(the foundation's packing in a plain loop) each return a :class:`Timing` of
their timed steps; ``contamination`` compares a packed row's logits with
its examples run alone.  The shared settings (rows of ``SEQ_LEN`` tokens,
``ROWS_PER_STEP`` rows a step, the learning rate and the LoRA setting) are
defined here.
"""

from __future__ import annotations

import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web.backends.local import (
    collate,
    forward_packed,
    message_dicts,
    pack_examples,
    token_stats,
)
from finetune_web.records import Example, Pack, Tokenized

__all__ = [
    "LEARNING_RATE",
    "LORA_ALPHA",
    "LORA_R",
    "ROWS_PER_STEP",
    "SEQ_LEN",
    "Maker",
    "Timing",
    "contamination",
    "lora_config",
    "lora_model",
    "ours_run",
    "packed_loop",
    "pad_batch",
    "padded_loop",
    "rss_mb",
    "stamp",
    "timed_loop",
    "timing_of",
    "trl_run",
]

SEQ_LEN = 512
ROWS_PER_STEP = 4
LEARNING_RATE = 2e-4
LORA_R = 8
LORA_ALPHA = 16

#: A batch maker: builds one step's batch and says how many real tokens it holds.
Maker = Callable[[], tuple[dict[str, Any], int]]


@attrs.frozen
class Timing:
    """The timed steps of one method.

    Attributes:
        seconds: wall-clock seconds from the end of the last warm-up step to the end of the last.
        cpu_seconds: this process's CPU seconds over the same span.
        tokens: real tokens of the timed steps.
        step_rates: real tokens per wall-clock second of each timed step.
    """

    seconds: float
    cpu_seconds: float
    tokens: int
    step_rates: tuple[float, ...]

    @property
    def rate(self) -> float:
        """Real tokens per second over all timed steps."""
        return self.tokens / self.seconds

    @property
    def median_rate(self) -> float:
        """The median step's real tokens per second (steadier when other work comes and goes)."""
        return statistics.median(self.step_rates)


def stamp() -> tuple[float, float]:
    """Return the wall-clock and process CPU clocks now."""
    return time.perf_counter(), time.process_time()


def timing_of(stamps: Sequence[tuple[float, float]], tokens: Sequence[int], warmup: int) -> Timing:
    """Return the timing of steps ``warmup..`` from the clocks at the end of every step.

    ``stamps[i]`` is taken at the end of step ``i`` (0-based) and ``tokens[i]``
    is that step's real tokens; the clock starts at ``stamps[warmup - 1]``,
    the end of the last warm-up step.
    """
    timed = range(warmup, len(stamps))
    rates = tuple(tokens[i] / (stamps[i][0] - stamps[i - 1][0]) for i in timed)
    return Timing(
        seconds=stamps[-1][0] - stamps[warmup - 1][0],
        cpu_seconds=stamps[-1][1] - stamps[warmup - 1][1],
        tokens=sum(tokens[i] for i in timed),
        step_rates=rates,
    )


def rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lora_config() -> Any:
    """Return the benchmark's peft LoRA config (r=8, alpha=16, no dropout, all linear layers)."""
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=LORA_R,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        target_modules="all-linear",
    )


def lora_model(model_dir: Path) -> Any:
    """Return the tiny model from ``model_dir`` wrapped with the benchmark's LoRA config."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    return get_peft_model(base, lora_config())


def timed_loop(
    model: Any,
    makers: Sequence[Maker],
    forward: Callable[[Any, dict[str, Any]], Any],
    warmup: int,
) -> Timing:
    """Train one optimizer step per batch maker; time every step after the first ``warmup``.

    Each batch is built inside its step, as a data loader would build it.
    """
    import torch

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, fused=True)
    stamps: list[tuple[float, float]] = []
    tokens: list[int] = []
    for make in makers:
        batch, real = make()
        logits = forward(model, batch)
        loss_sum, _, count = token_stats(logits, batch["labels"])
        (loss_sum / max(count, 1)).backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(stamp())
        tokens.append(real)
    return timing_of(stamps, tokens, warmup)


def packed_loop(
    model_dir: Path, tokenized: list[Tokenized], pad_id: int, steps: int, warmup: int, seed: int
) -> Timing:
    """The foundation's packed path (pack, collate, forward_packed) in a plain loop."""
    rows = pack_examples(tokenized, SEQ_LEN)
    random.Random(seed).shuffle(rows)
    groups = [rows[i : i + ROWS_PER_STEP] for i in range(0, len(rows), ROWS_PER_STEP)]

    def maker(group: list[Pack]) -> Maker:
        return lambda: (collate(group, pad_token_id=pad_id), sum(len(r.input_ids) for r in group))

    makers = [maker(group) for group in groups[: warmup + steps]]
    return timed_loop(lora_model(model_dir), makers, forward_packed, warmup)


def pad_batch(group: Sequence[Tokenized], pad_id: int) -> tuple[dict[str, Any], int]:
    """Return ``group`` padded to its longest example, with a mask, and its real tokens."""
    import torch

    width = max(len(t.input_ids) for t in group)
    ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    labels = torch.full((len(group), width), -100, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for row, item in enumerate(group):
        ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        labels[row, : len(item.labels)] = torch.tensor(item.labels)
        mask[row, : len(item.input_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}, int(mask.sum())


def padded_loop(
    model_dir: Path, tokenized: list[Tokenized], pad_id: int, steps: int, warmup: int, seed: int
) -> tuple[Timing, float]:
    """Per-batch padding with an attention mask, no packing; return the timing and pad share."""
    order = list(tokenized)
    random.Random(seed).shuffle(order)
    budget = ROWS_PER_STEP * SEQ_LEN
    groups: list[list[Tokenized]] = [[]]
    for item in order:
        if groups[-1] and sum(len(t.input_ids) for t in groups[-1]) + len(item.input_ids) > budget:
            if len(groups) == warmup + steps:
                break
            groups.append([])
        groups[-1].append(item)
    real = sum(len(t.input_ids) for group in groups for t in group)
    fed = sum(len(group) * max(len(t.input_ids) for t in group) for group in groups)

    def maker(group: list[Tokenized]) -> Maker:
        return lambda: pad_batch(group, pad_id)

    def forward(model: Any, batch: dict[str, Any]) -> Any:
        return model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).logits

    timing = timed_loop(lora_model(model_dir), [maker(g) for g in groups], forward, warmup)
    return timing, 1 - real / fed


def ours_run(
    model_dir: Path,
    examples: list[Example],
    tokenized: list[Tokenized],
    output_dir: Path,
    steps: int,
    warmup: int,
    seed: int,
) -> tuple[Timing, bool]:
    """Our backend's ``fine_tune``; return the timing and whether its tokens are exact.

    It trains ``warmup + steps + 1`` steps: the last one, which also saves the
    final checkpoint, is not timed.  Each step's real tokens are recomputed
    from the backend's own row order (same packer, same per-epoch order) and
    checked against the ``trained_tokens`` it reports; when they disagree,
    the timed steps get their share of that total instead (flagged).
    """
    from finetune_web.backends.local import LocalPEFTBackend, LoraOptions
    from finetune_web.backends.local._train import epoch_order

    stamps: list[tuple[float, float]] = []
    total = warmup + steps + 1
    backend = LocalPEFTBackend(
        model=str(model_dir),
        output_dir=output_dir,
        lora=LoraOptions(r=LORA_R, alpha=LORA_ALPHA, dropout=0.0, target_modules="all-linear"),
        learning_rate=LEARNING_RATE,
        lr_scheduler="constant",
        max_steps=total,
        batch_size=ROWS_PER_STEP,
        seq_len=SEQ_LEN,
        seed=seed,
        precision="fp32",
        gradient_checkpointing=False,
        device="cpu",
        resume=None,
        progress=False,
    )
    result = backend.fine_tune(examples, callbacks=[lambda _event: stamps.append(stamp())])
    rows = pack_examples(tokenized, SEQ_LEN)
    step_tokens: list[int] = []
    epoch = 0
    while len(step_tokens) < total:
        order = epoch_order(len(rows), seed, epoch)
        for i in range(0, len(order), ROWS_PER_STEP):
            step_tokens.append(sum(len(rows[j].input_ids) for j in order[i : i + ROWS_PER_STEP]))
        epoch += 1
    exact = sum(step_tokens[:total]) == result.trained_tokens
    if not exact:
        step_tokens = [round((result.trained_tokens or 0) / total)] * total
    return timing_of(stamps[: warmup + steps], step_tokens, warmup), exact


def trl_run(
    model_dir: Path, examples: list[Example], work: Path, steps: int, warmup: int, seed: int
) -> Timing:
    """TRL's SFTTrainer with packing; time the steps after ``warmup``, count the tokens fed."""
    import datasets  # type: ignore[import-untyped]
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    datasets.disable_progress_bars()
    dataset = datasets.Dataset.from_list(
        [{"messages": message_dicts(e.messages)} for e in examples]
    )
    stamps: list[tuple[float, float]] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(stamp())

    config = SFTConfig(
        output_dir=str(work / "trl"),
        max_length=SEQ_LEN,
        packing=True,
        per_device_train_batch_size=ROWS_PER_STEP,
        gradient_accumulation_steps=1,
        max_steps=warmup + steps,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        optim="adamw_torch_fused",  # transformers' default, as our backend uses
        max_grad_norm=1.0,
        # TRL 1.16 defaults to bf16 autocast and gradient checkpointing, even on a CPU;
        # both are turned off so that TRL computes exactly what the other methods do.
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=seed,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32"),
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=lora_config(),
        callbacks=[Stamp()],
    )
    trainer.remove_callback(PrinterCallback)  # it prints a summary line at the end
    counts: list[int] = []
    collator = trainer.data_collator

    def counting(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = collator(features)
        mask = batch.get("attention_mask")
        counts.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting
    trainer.train()
    return timing_of(stamps, counts, warmup)


def contamination(
    model_dir: Path, tokenized: list[Tokenized], pad_id: int, seed: int
) -> dict[str, Any]:
    """Compare one packed row's logits with each of its examples run alone.

    Returns:
        ``max_logit_diff`` (packed with restarting position ids vs alone),
        ``contaminated_logit_diff`` (the same row with one run of position ids),
        and how many examples and tokens the row holds.
    """
    import torch

    model = lora_model(model_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    model.eval()
    rows = pack_examples(tokenized, SEQ_LEN)
    row = max(rows, key=lambda r: (len(r.example_ids), len(r.input_ids)))
    batch = collate([row], pad_token_id=pad_id)
    by_id = {t.id: t for t in tokenized}
    worst = contaminated = 0.0
    with torch.no_grad():
        packed = forward_packed(model, batch)[0]
        flat = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
        offset = 0
        for example_id in row.example_ids:
            ids = by_id[example_id].input_ids
            alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
            span = slice(offset, offset + len(ids))
            worst = max(worst, float((packed[span] - alone).abs().max()))
            contaminated = max(contaminated, float((flat[span] - alone).abs().max()))
            offset += len(ids)
    return {
        "max_logit_diff": worst,
        "contaminated_logit_diff": contaminated,
        "row_examples": len(row.example_ids),
        "row_tokens": len(row.input_ids),
    }
