"""Load a local model for inference: a base model, optionally with a PEFT adapter on top.

A model is named by a Hugging Face id or a directory.  A directory holding
``adapter_config.json`` is an adapter: its base model is the one the adapter
was trained on (``base_model_name_or_path`` in that file) unless a base is
named explicitly.  Loading picks the device (CUDA, then Apple's MPS, then
CPU) and a precision that device computes well (as training does), and puts
the model in eval mode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from finetune_web.backends.local._deps import require_local
from finetune_web.backends.local._encode import ChatEncoder
from finetune_web.backends.local._model import (
    from_pretrained,
    load_tokenizer,
    quiet_peft,
    resolve_precision,
    torch_dtype,
)
from finetune_web.errors import ConfigError, ErrorContext

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "ADAPTER_CONFIG",
    "LoadedModel",
    "choose_device",
    "end_of_turn_ids",
    "is_adapter_dir",
    "load_model",
    "resolve_model",
]

#: The file that marks a directory as a PEFT adapter.
ADAPTER_CONFIG = "adapter_config.json"

# End-of-turn markers of common chat templates (ChatML, Llama 3, Gemma, Phi-3).
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def is_adapter_dir(path: str | Path) -> bool:
    """Return whether ``path`` is a directory holding a PEFT adapter."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def _adapter_base(adapter: str) -> str:
    config_path = Path(adapter) / ADAPTER_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read the adapter's configuration: {exc}", ErrorContext(path=str(config_path))
        ) from exc
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise ConfigError(
            "the adapter does not name its base model (no base_model_name_or_path); "
            "name the base model explicitly and pass the adapter separately",
            ErrorContext(path=str(config_path)),
        )
    return base


def _looks_like_path(name: str) -> bool:
    """A filesystem path rather than a Hugging Face id (``org/name``)."""
    return name.startswith(("/", ".")) or "\\" in name or Path(name).is_absolute()


def resolve_model(model: str, adapter: str | None = None) -> tuple[str, str | None]:
    """Return ``(base model, adapter)`` for a model name and an optional adapter.

    ``model`` may itself be an adapter directory; its base then comes from
    its ``adapter_config.json``.

    Args:
        model: a Hugging Face id, a model directory or an adapter directory.
        adapter: an adapter directory to put on top of ``model``.

    Returns:
        The base model's id or path and the adapter directory (or ``None``).

    Raises:
        ConfigError: a path names no directory, ``model`` and ``adapter`` are
            both adapters, ``adapter`` is not an adapter directory, or an
            adapter names no base model.
    """
    for given in (model, adapter):
        if given is not None and _looks_like_path(given) and not Path(given).is_dir():
            raise ConfigError(f"{given}: no such model directory", ErrorContext(path=given))
    if adapter is not None:
        if not is_adapter_dir(adapter):
            raise ConfigError(
                f"{adapter} is not a PEFT adapter directory (it has no {ADAPTER_CONFIG})",
                ErrorContext(path=adapter),
            )
        if is_adapter_dir(model):
            raise ConfigError(
                f"{model} is an adapter too; give the base model it was trained on",
                ErrorContext(path=model),
            )
        return model, adapter
    if is_adapter_dir(model):
        return _adapter_base(model), model
    return model, None


def choose_device(device: str = "auto") -> torch.device:
    """Return the device to run on: ``"auto"`` is CUDA, then MPS, then CPU.

    Raises:
        ConfigError: the name is not a device torch knows.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}") from exc


def end_of_turn_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Return the token ids that end the assistant's turn.

    The model's generation ``eos_token_id`` (one id or several), the
    tokenizer's end-of-sequence token, and the end-of-turn marker of common
    chat templates when the vocabulary has it.
    """
    ids: list[int] = []
    configured = model.generation_config.eos_token_id
    for value in configured if isinstance(configured, list) else [configured]:
        if isinstance(value, int):
            ids.append(value)
    if isinstance(tokenizer.eos_token_id, int):
        ids.append(tokenizer.eos_token_id)
    vocabulary = tokenizer.get_vocab()
    ids += [vocabulary[token] for token in _END_OF_TURN if token in vocabulary]
    return list(dict.fromkeys(ids))


@attrs.frozen
class LoadedModel:
    """A model ready for inference, with its tokenizer and chat encoder.

    Attributes:
        model: the model (a ``PeftModel`` when an adapter is loaded), in eval mode.
        tokenizer: its tokenizer.
        encoder: renders conversations with the tokenizer's chat template.
        device: where the model lives.
        stop_ids: the token ids that end a reply.
        max_length: the longest sequence the model accepts.
    """

    model: Any = attrs.field(repr=False)
    tokenizer: PreTrainedTokenizerBase = attrs.field(repr=False)
    encoder: ChatEncoder = attrs.field(repr=False)
    device: torch.device
    stop_ids: tuple[int, ...]
    max_length: int

    @property
    def pad_id(self) -> int:
        """The id used to pad batches (the pad token, else the first stop id)."""
        pad = self.tokenizer.pad_token_id
        return pad if isinstance(pad, int) else self.stop_ids[0]


def _max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    limits: Sequence[object] = (
        getattr(model.config, "max_position_embeddings", None),
        tokenizer.model_max_length,
    )
    known = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 10**8]
    return min(known) if known else 2048


def load_model(
    base: str, adapter: str | None = None, *, device: str = "auto", precision: str = "auto"
) -> LoadedModel:
    """Load ``base`` (and ``adapter`` on top) for inference.

    The tokenizer comes from the adapter directory when it holds one (a
    fine-tune that added tokens saves it there), else from the base model.

    Args:
        base: a Hugging Face id or a model directory.
        adapter: a PEFT adapter directory, or ``None``.
        device: ``"auto"``, or a torch device name (``"cpu"``, ``"cuda:1"``).
        precision: ``"auto"`` (bf16 on a GPU that has it, fp16 on an older
            GPU, fp32 on a CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Returns:
        The loaded model in eval mode.

    Raises:
        MissingDependencyError: torch, transformers or peft is missing.
        ConfigError: the model, its tokenizer or the adapter cannot be loaded,
            or the tokenizer has no chat template.
    """
    require_local("a local chat model")
    from transformers import AutoModelForCausalLM

    target = choose_device(device)
    weights = torch_dtype(resolve_precision(precision, target))
    tokenizer_source = adapter if adapter is not None and _has_tokenizer(adapter) else base
    tokenizer = load_tokenizer(tokenizer_source)
    model = from_pretrained(AutoModelForCausalLM.from_pretrained, base, "model", dtype=weights)
    stop_ids = end_of_turn_ids(model, tokenizer)
    if not stop_ids:
        raise ConfigError(
            f"the tokenizer of {tokenizer_source!r} has no end-of-sequence token, so a reply "
            "could never end; set tokenizer.eos_token",
            ErrorContext(path=tokenizer_source),
        )
    if adapter is not None:
        from peft import PeftModel

        try:
            with quiet_peft():
                model = PeftModel.from_pretrained(model, adapter)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot load the adapter {adapter!r} on {base!r}: {exc}",
                ErrorContext(path=adapter),
            ) from exc
    model.to(target)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        encoder=ChatEncoder(tokenizer),
        device=target,
        stop_ids=tuple(stop_ids),
        max_length=_max_length(model, tokenizer),
    )


def _has_tokenizer(directory: str) -> bool:
    folder = Path(directory)
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()
