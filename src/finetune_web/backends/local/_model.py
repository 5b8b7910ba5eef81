"""Load a base model for training: LoRA, QLoRA (4-bit NF4) or full fine-tuning.

LoRA puts low-rank adapters (peft ``LoraConfig``) on the chosen linear
layers and freezes the rest; QLoRA does the same over a base model loaded
in 4-bit NF4 by bitsandbytes; full fine-tuning trains every weight.  On a
GPU the base weights of LoRA load in the training precision (bf16 or fp16)
while the adapters stay in float32; full fine-tuning keeps float32 weights
and computes in the lower precision under autocast.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from finetune_web.errors import ConfigError, ErrorContext, MissingDependencyError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "METHODS",
    "PRECISIONS",
    "LoraOptions",
    "Method",
    "Precision",
    "from_pretrained",
    "has_bitsandbytes",
    "load_tokenizer",
    "load_training_model",
    "merge_adapter",
    "quiet_peft",
    "resolve_precision",
    "to_lora",
    "torch_dtype",
]

#: How the model is trained.
Method: TypeAlias = Literal["lora", "qlora", "full"]
#: The precision names accepted (``"auto"`` picks one for the device).
Precision: TypeAlias = Literal["auto", "fp32", "bf16", "fp16"]
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_BNB_HINT = "pip install bitsandbytes"


def _target_modules(value: str | list[str] | tuple[str, ...]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    return tuple(value)


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"lora {attribute.name} must be a positive integer, not {value!r}")


def _dropout(_: object, __: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(f"lora dropout must be a number in [0, 1), not {value!r}")


@attrs.frozen(kw_only=True)
class LoraOptions:
    """The low-rank adapters to train (peft's defaults).

    Attributes:
        r: the adapters' rank.
        alpha: the scaling numerator (the update is scaled by ``alpha / r``).
        dropout: dropout on the adapters' input during training.
        target_modules: the layers to adapt: ``"all-linear"`` (every linear
            layer but the output head) or a list of module names
            (``["q_proj", "v_proj"]``).
    """

    r: int = attrs.field(default=8, validator=_positive_int)
    alpha: int = attrs.field(default=8, validator=_positive_int)
    dropout: float = attrs.field(default=0.0, validator=_dropout)
    target_modules: str | tuple[str, ...] = attrs.field(
        default="all-linear", converter=_target_modules
    )

    def to_json(self) -> dict[str, Any]:
        """Return the options as JSON."""
        targets = self.target_modules
        return {
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "target_modules": targets if isinstance(targets, str) else list(targets),
        }


def to_lora(value: Any) -> LoraOptions:
    """Return ``value`` as :class:`LoraOptions`: a record passes, a mapping is its fields.

    Raises:
        ConfigError: ``value`` is neither, or names an unknown option.
    """
    if isinstance(value, LoraOptions):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"lora must be LoraOptions or a table of options, not {value!r}")
    accepted = [field.name for field in attrs.fields(LoraOptions)]
    unknown = sorted(set(value) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown lora option(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted)}"
        )
    return LoraOptions(**value)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Return the precision to train in: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"`` is bf16 on a GPU that has it, fp16 on an older GPU, fp32 on a CPU.

    Raises:
        ConfigError: fp16 on a CPU (it has no fp16 training path).
    """
    import torch

    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError('precision "fp16" needs a CUDA GPU; use "fp32" or "bf16" on a CPU')
    return precision


def torch_dtype(precision: str) -> torch.dtype:
    """Return the torch dtype of a resolved precision name."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    return dtypes[precision]


def from_pretrained(loader: Callable[..., Any], source: str, what: str, **kwargs: Any) -> Any:
    """Call a Hugging Face ``from_pretrained`` loader, turning a failure into a ConfigError.

    Args:
        loader: e.g. ``AutoModelForCausalLM.from_pretrained``.
        source: the id or directory to load.
        what: ``"model"`` or ``"tokenizer"``, named in the message.
        **kwargs: passed to the loader.

    Raises:
        ConfigError: the source cannot be loaded (missing, offline, not a model).
    """
    try:
        return loader(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the {what} {source!r}: {exc}; give a local directory or the id "
            "of a model already in the Hugging Face cache",
            ErrorContext(path=source),
        ) from exc


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer of ``source`` (a Hugging Face id or a directory).

    Raises:
        ConfigError: it cannot be loaded, is not a fast tokenizer, or has no chat template.
    """
    from transformers import AutoTokenizer

    tokenizer: PreTrainedTokenizerBase = from_pretrained(
        AutoTokenizer.from_pretrained, source, "tokenizer"
    )
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"the tokenizer of {source!r} is not a fast tokenizer; training needs one "
            "(it locates the assistant's tokens by character offsets)",
            ErrorContext(path=source),
        )
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"the tokenizer of {source!r} has no chat template; use a chat (instruct) model "
            "or set tokenizer.chat_template and save it",
            ErrorContext(path=source),
        )
    return tokenizer


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Silence the FutureWarnings peft triggers on transformers 5 when it wraps a model.

    peft reads ``is_gradient_checkpointing`` and calls
    ``gradient_checkpointing_enable``, which transformers 5 renames to
    ``activation_checkpointing``; the warnings say nothing a user can act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning
        )
        yield


def _checkpoint_activations(model: Any, options: dict[str, Any]) -> None:
    """Turn on activation (gradient) checkpointing under the name this transformers has."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:  # transformers >= 5.x
        enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def has_bitsandbytes() -> bool:
    """Return whether bitsandbytes (needed for QLoRA) can be imported."""
    return importlib.util.find_spec("bitsandbytes") is not None


def _quantization(precision: str, device: torch.device) -> Any:
    if not has_bitsandbytes():
        raise MissingDependencyError(
            f'method "qlora" loads the base model in 4 bits with bitsandbytes: {_BNB_HINT}'
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch_dtype(precision),
    )


def load_training_model(
    source: str,
    *,
    method: str,
    lora: LoraOptions,
    precision: str,
    device: torch.device,
    gradient_checkpointing: bool,
) -> Any:
    """Load ``source`` ready to train: adapters added (LoRA, QLoRA) or all weights trainable.

    Args:
        source: a Hugging Face id or a model directory.
        method: ``"lora"``, ``"qlora"`` or ``"full"``.
        lora: the adapters (LoRA and QLoRA).
        precision: the resolved precision (``"fp32"``, ``"bf16"``, ``"fp16"``).
        device: where QLoRA's quantized weights are placed (other models are
            moved by the caller).
        gradient_checkpointing: recompute activations in the backward pass
            to save memory.

    Returns:
        The model in train mode (a ``PeftModel`` for LoRA and QLoRA).

    Raises:
        ConfigError: the model cannot be loaded.
        MissingDependencyError: QLoRA without bitsandbytes.
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"attn_implementation": "sdpa"}
    if method == "qlora":
        kwargs["quantization_config"] = _quantization(precision, device)
        kwargs["dtype"] = torch_dtype(precision)
        kwargs["device_map"] = {"": str(device)}
    elif method == "lora":
        kwargs["dtype"] = torch_dtype(precision)
    else:  # full: float32 master weights, autocast does the rest
        kwargs["dtype"] = torch_dtype("fp32")
    model = from_pretrained(AutoModelForCausalLM.from_pretrained, source, "model", **kwargs)
    model.config.use_cache = False
    checkpointing = {"use_reentrant": False}
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        with quiet_peft():
            model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
                model,
                use_gradient_checkpointing=gradient_checkpointing,
                gradient_checkpointing_kwargs=checkpointing,
            )
    elif gradient_checkpointing:
        _checkpoint_activations(model, checkpointing)
    if method == "full":
        model.train()
        return model
    from peft import LoraConfig, get_peft_model

    targets = lora.target_modules
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        bias="none",
    )
    try:
        with quiet_peft():
            model = get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"cannot add LoRA adapters to {source!r}: {exc}") from exc
    model.train()
    return model


def merge_adapter(
    base: str, adapter: Path, target: Path, *, precision: str, tokenizer: Any
) -> None:
    """Save ``base`` with ``adapter`` merged into its weights, as a plain model, in ``target``.

    The base is loaded again, unquantized, on the CPU, so the model being
    trained is left as it is (and a 4-bit QLoRA base is merged at full width).

    Args:
        base: the base model's id or directory.
        adapter: the saved adapter directory.
        target: where to save the merged model and the tokenizer.
        precision: the resolved precision the merged weights are saved in.
        tokenizer: saved beside the model.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(precision))
    with quiet_peft():
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
