"""Fixtures for the local training tests: one tiny model, small chat data, one reference run."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finetune_web.records import Example, Message, Pack

#: peft reads an attribute transformers 5 deprecates when it wraps a model.
PEFT_WARNING = "ignore:.*is_gradient_checkpointing.*:FutureWarning"
#: The reference run: 40 examples in 9 rows of 384 tokens, 2 rows a step, 5 steps an epoch,
#: 6 steps in all (so it crosses an epoch boundary).
REFERENCE: dict[str, Any] = {
    "seq_len": 384,
    "batch_size": 2,
    "max_steps": 6,
    "learning_rate": 1e-2,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.2,
    "eval_every": 3,
    "save_every": 2,
    "keep_checkpoints": 2,
    "seed": 7,
    "lora": {"dropout": 0.1},  # dropout draws random numbers: resume must restore them
    "device": "cpu",
    "progress": False,
}
#: A short run of one or two steps: rows of 128 tokens, 2 rows a step, on the CPU.
SHORT: dict[str, Any] = {"seq_len": 128, "batch_size": 2, "device": "cpu", "progress": False}


def chat(index: int) -> Example:
    """Return a small chat example whose length varies with ``index``."""
    detail = " and".join(f" a part numbered {index + k}" for k in range(index % 4))
    return Example(
        id=f"ex{index}",
        messages=[
            Message(role="system", content="You write short product blurbs."),
            Message(role="user", content=f"Describe product {index}."),
            Message(role="assistant", content=f"Product {index} is a warm lamp with{detail}."),
        ],
    )


TRAIN = [chat(i) for i in range(40)]
VALID = [chat(i) for i in range(40, 46)]


def random_lora(tiny_model: Path, dropout: float = 0.0) -> Any:
    """Return the tiny model with seeded LoRA adapters whose ``lora_B`` is moved off zero.

    peft starts ``lora_B`` at 0, so that the adapters change nothing; random
    values make them contribute, so comparisons of adapted layers can fail.
    """
    import torch

    from finetune_web.backends.local._model import LoraOptions, load_training_model

    torch.manual_seed(0)
    model = load_training_model(
        str(tiny_model),
        method="lora",
        lora=LoraOptions(dropout=dropout),
        precision="fp32",
        device=torch.device("cpu"),
        gradient_checkpointing=False,
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    return model


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: on tensors this small, handing work to threads costs more."""
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random chat model, built offline once for the whole session."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("accelerate")
    from finetune_web.backends.local import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=1)


@pytest.fixture(scope="session")
def reference_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 6-step LoRA run with validation, checkpoints every 2 steps and a merged model."""
    from finetune_web.backends.local.backend import LocalPEFTBackend

    backend = LocalPEFTBackend(
        model=str(tiny_model),
        output_dir=tmp_path_factory.mktemp("reference"),
        merge=True,
        **REFERENCE,
    )
    return backend.train_model(TRAIN, VALID)


@pytest.fixture(scope="module")
def rows(tiny_model: Path) -> list[Pack]:
    """Rows of 96 tokens holding several chat examples each, of different lengths."""
    import transformers

    from finetune_web.backends.local import ChatEncoder, pack_examples

    encoder = ChatEncoder(transformers.AutoTokenizer.from_pretrained(tiny_model))
    packed = pack_examples([encoder.encode(example) for example in TRAIN[:14]], seq_len=96)
    assert len(packed) >= 3
    assert len({len(row.input_ids) for row in packed}) > 1  # so a batch of them has padding
    return packed
