"""A chat model running locally with transformers: a base model, or a base with a PEFT adapter.

:class:`LocalChatModel` is a :class:`~finetune_web.interfaces.ChatModel`, so
every evaluator works with it, and it also scores text
(:class:`~finetune_web.interfaces.LogLikelihoodModel`,
:class:`~finetune_web.interfaces.TokenScoringModel`) for the evaluators that
need token probabilities.  The same base with ``adapter=None`` and with
``adapter=<dir>`` compares a fine-tune with its base on the same prompts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from finetune_web.backends.local._load import LoadedModel, load_model, resolve_model
from finetune_web.backends.local._model import PRECISIONS
from finetune_web.backends.local._score import (
    TokenStats,
    continuation_row,
    example_row,
    score_rows,
)
from finetune_web.errors import ConfigError
from finetune_web.records import Example, Message

if TYPE_CHECKING:
    import torch

__all__ = ["LocalChatModel"]


class _Lazy:
    """Holds the loaded model of one :class:`LocalChatModel`; never pickled, copied or compared."""

    __slots__ = ("lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: LoadedModel | None = None

    def __reduce__(self) -> tuple[type[_Lazy], tuple[()]]:
        return (_Lazy, ())


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ConfigError(f"{attribute.name} must be at least 1, not {value}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ConfigError(f"{attribute.name} must be >= 0, not {value}")


def _top_p(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 1:
        raise ConfigError(f"top_p must be in (0, 1], not {value}")


@attrs.frozen(kw_only=True)
class LocalChatModel:
    """A chat model loaded with transformers (and peft), run on this machine.

    Nothing is loaded until the first call, so the object is cheap to build,
    pickle and compare.  Prompts are rendered with the tokenizer's chat
    template and its generation prompt; a reply ends at the end-of-turn or
    end-of-sequence token, or after ``max_new_tokens``.  A prompt longer than
    the model accepts loses tokens from its start.

    Attributes:
        model: a Hugging Face id (already in the local cache), a model
            directory, or a PEFT adapter directory (its base model is read
            from its ``adapter_config.json``).
        adapter: a PEFT adapter directory to put on top of ``model``.
        max_new_tokens: the longest reply, in tokens.
        temperature: 0 for greedy decoding (deterministic); above 0 samples,
            seeded with ``seed`` for every prompt, so replies still repeat.
        top_p: nucleus sampling (with ``temperature`` above 0).
        seed: the sampling seed.
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a torch device name.
        precision: ``"auto"`` (bf16 on a GPU that has it, fp16 on an older
            GPU, fp32 on a CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU only).
        batch_size: prompts generated together by :meth:`complete_many`.
        batch_tokens: the most tokens (padding included) scored in one forward pass.
        name: the id to report instead of ``base+adapter``.
    """

    model: str
    adapter: str | None = None
    max_new_tokens: int = attrs.field(default=256, validator=_positive)
    temperature: float = attrs.field(default=0.0, validator=_non_negative)
    top_p: float = attrs.field(default=1.0, validator=_top_p)
    seed: int = 0
    device: str = "auto"
    precision: str = attrs.field(default="auto", validator=attrs.validators.in_(PRECISIONS))
    batch_size: int = attrs.field(default=8, validator=_positive)
    batch_tokens: int = attrs.field(default=8192, validator=_positive)
    name: str | None = None
    _lazy: _Lazy = attrs.field(factory=_Lazy, init=False, repr=False, eq=False, hash=False)

    @property
    def model_id(self) -> str:
        """``name``, else the base model, with ``+<adapter>`` when an adapter is loaded."""
        if self.name:
            return self.name
        base, adapter = resolve_model(self.model, self.adapter)
        return base if adapter is None else f"{base}+{adapter}"

    def load(self) -> LoadedModel:
        """Load the model now (it loads on first use anyway) and return it.

        Raises:
            MissingDependencyError: torch, transformers or peft is missing.
            ConfigError: the model or adapter cannot be found or loaded.
        """
        with self._lazy.lock:
            if self._lazy.value is None:
                base, adapter = resolve_model(self.model, self.adapter)
                self._lazy.value = load_model(
                    base, adapter, device=self.device, precision=self.precision
                )
            return self._lazy.value

    # Generation ---------------------------------------------------------------------------

    def complete(self, messages: Sequence[Message]) -> Message:
        """Return the assistant's reply to ``messages``."""
        return self.complete_many([messages])[0]

    def complete_many(self, prompts: Sequence[Sequence[Message]]) -> list[Message]:
        """Return the assistant's reply to each prompt, in order.

        Greedy decoding runs ``batch_size`` prompts at a time (left-padded,
        similar lengths together); sampling runs one prompt at a time, each
        seeded with ``seed``, so a prompt gets the same reply in any batch.
        """
        loaded = self.load()
        room = max(1, loaded.max_length - self.max_new_tokens)
        encoded = [loaded.encoder.encode_prompt(list(prompt))[-room:] for prompt in prompts]
        texts: list[str] = [""] * len(encoded)
        if self.temperature > 0:
            for index, ids in enumerate(encoded):
                texts[index] = self._generate(loaded, [ids])[0]
        else:
            order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                for index, text in zip(
                    chunk, self._generate(loaded, [encoded[i] for i in chunk]), strict=True
                ):
                    texts[index] = text
        return [Message(role="assistant", content=text) for text in texts]

    def _generation_config(self, loaded: LoadedModel) -> Any:
        from transformers import GenerationConfig

        build: Any = GenerationConfig  # untyped in transformers

        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
            if self.temperature > 0
            else {"do_sample": False}
        )
        return build(
            max_new_tokens=self.max_new_tokens,
            eos_token_id=list(loaded.stop_ids),
            pad_token_id=loaded.pad_id,
            **sampling,
        )

    def _generate(self, loaded: LoadedModel, batch: Sequence[Sequence[int]]) -> list[str]:
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), loaded.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        with torch.inference_mode(), _seeded(self.seed, loaded.device, self.temperature > 0):
            output = loaded.model.generate(
                input_ids=input_ids.to(loaded.device),
                attention_mask=attention_mask.to(loaded.device),
                generation_config=self._generation_config(loaded),
            )
        return [self._decode(loaded, row[width:].tolist()) for row in output]

    @staticmethod
    def _decode(loaded: LoadedModel, ids: list[int]) -> str:
        stops = set(loaded.stop_ids)
        end = next((position for position, token in enumerate(ids) if token in stops), len(ids))
        return str(loaded.tokenizer.decode(ids[:end], skip_special_tokens=True)).strip()

    # Scoring ------------------------------------------------------------------------------

    def loglikelihood(self, context: Sequence[Message], continuation: str) -> tuple[float, int]:
        """Return the log-probability of ``continuation`` as the reply to ``context``.

        Returns:
            The sum of the natural-log probabilities of the continuation's
            tokens, and how many tokens it has.
        """
        return self.loglikelihood_many([(context, continuation)])[0]

    def loglikelihood_many(
        self, requests: Sequence[tuple[Sequence[Message], str]]
    ) -> list[tuple[float, int]]:
        """Return :meth:`loglikelihood` of each ``(context, continuation)``, in order, batched."""
        loaded = self.load()
        rows = [
            continuation_row(loaded, list(context), continuation, str(index))
            for index, (context, continuation) in enumerate(requests)
        ]
        stats = score_rows(loaded, rows, batch_tokens=self.batch_tokens)
        return [(-loss, count) for loss, _, count in stats]

    def token_stats(self, examples: Sequence[Example]) -> list[TokenStats]:
        """Return each example's token loss figures, as training computes them.

        The tokens scored are those of the assistant messages trained on
        (content and end-of-turn token; ``weight`` 0 messages are context).

        Returns:
            Per example, in order: the summed cross-entropy over those tokens,
            how many the model predicts exactly (argmax), and how many there are.

        Raises:
            RecordError: an example has no assistant message to score.
        """
        loaded = self.load()
        rows = [example_row(loaded, example) for example in examples]
        return score_rows(loaded, rows, batch_tokens=self.batch_tokens)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device, active: bool) -> Iterator[None]:
    """Seed torch's generators for one sampled generation, restoring them afterwards."""
    if not active:
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
