"""Helpers shared by the evaluators: reference answers, batched generation, averages."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol, runtime_checkable

from finetune_web.errors import ConfigError, ErrorContext, MissingDependencyError
from finetune_web.interfaces import ChatModel, Evaluator
from finetune_web.records import EvalResult, Example, Message

__all__ = [
    "BatchChatModel",
    "CorpusEvaluator",
    "Prompt",
    "answers_and_references",
    "generate",
    "import_optional",
    "mean",
    "prompt_text",
    "reference_texts",
    "split_reference",
]

#: The messages a model is asked to answer.
Prompt = tuple[Message, ...]


@runtime_checkable
class BatchChatModel(ChatModel, Protocol):
    """**Protocol:** a chat model that can answer many prompts at once.

    Contract: ``complete_many(prompts)`` returns one reply per prompt, in
    input order, equal to what ``complete`` would return for each; how many
    requests are in flight at once is the model's own business.
    """

    def complete_many(self, prompts: Sequence[Sequence[Message]]) -> list[Message]:
        """Return the assistant's reply to each prompt, in order."""
        ...


@runtime_checkable
class CorpusEvaluator(Evaluator, Protocol):
    """**Protocol:** an evaluator whose score is a corpus statistic, not a mean of examples.

    BLEU and chrF add n-gram counts over the corpus before computing one
    score, so their corpus score is not the mean of the sentence scores.  A
    paired bootstrap resamples examples and asks :meth:`aggregate` for the
    score of each resample.

    Contract: ``aggregate(result, range(len(result.per_example)))`` equals
    ``result.score``; an index may appear several times (a bootstrap resample).
    """

    def aggregate(self, result: EvalResult, indices: Sequence[int]) -> float:
        """Return the corpus score of the examples at ``indices`` (repeats count again)."""
        ...


def split_reference(example: Example, index: int = 0) -> tuple[Prompt, str]:
    """Split an evaluation example into its prompt and its reference answer.

    The reference is the example's last message, which must be an assistant
    message; the prompt is every message before it.

    Args:
        example: the held-out example.
        index: its position in the evaluated sequence (for the error message).

    Returns:
        ``(prompt, reference text)``.

    Raises:
        ConfigError: the example does not end with an assistant message, or
            has nothing before it.
    """
    messages = example.messages
    if not messages or messages[-1].role != "assistant" or len(messages) < 2:
        raise ConfigError(
            "an evaluation example must end with the reference assistant answer, after at "
            "least one prompt message; add the expected answer as the last message",
            ErrorContext(record_id=example.id or None, index=index),
        )
    return tuple(messages[:-1]), messages[-1].text


def reference_texts(example: Example, reference: str) -> tuple[str, ...]:
    """Return every acceptable answer: ``metadata["ideal"]`` when it lists several, else one.

    Examples read by :func:`~finetune_web.evaluation.load_evals_jsonl` keep an
    openai/evals ``ideal`` list in their metadata.
    """
    ideal = example.metadata.get("ideal")
    if isinstance(ideal, list | tuple) and ideal and all(isinstance(i, str) for i in ideal):
        return tuple(ideal)
    return (reference,)


def generate(model: ChatModel, prompts: Sequence[Prompt]) -> list[Message]:
    """Ask ``model`` every prompt: all at once when it can (``complete_many``), else one by one.

    Returns:
        One reply per prompt, in order.
    """
    if isinstance(model, BatchChatModel):
        replies = list(model.complete_many(prompts))
        if len(replies) != len(prompts):
            raise ConfigError(
                f"{type(model).__name__}.complete_many returned {len(replies)} replies "
                f"for {len(prompts)} prompts"
            )
        return replies
    return [model.complete(prompt) for prompt in prompts]


def answers_and_references(
    model: ChatModel, examples: Sequence[Example]
) -> tuple[list[str], list[tuple[str, ...]]]:
    """Ask ``model`` every example's prompt; return its answers and each example's references.

    Raises:
        ConfigError: an example does not end with its reference answer.
    """
    split = [split_reference(example, index) for index, example in enumerate(examples)]
    replies = generate(model, [prompt for prompt, _ in split])
    references = [
        reference_texts(example, reference)
        for example, (_, reference) in zip(examples, split, strict=True)
    ]
    return [reply.text for reply in replies], references


def mean(values: Sequence[float | None]) -> float:
    """Return the mean of the scorable values (``None`` left out); 0.0 when there are none."""
    kept = [value for value in values if value is not None]
    return math.fsum(kept) / len(kept) if kept else 0.0


def import_optional(module: str, *, requirement: str, needed_by: str) -> ModuleType:
    """Import an optional dependency of the ``eval`` extra, or say how to install it.

    Args:
        module: the module to import (``"sacrebleu"``, ``"rouge_score.rouge_scorer"``).
        requirement: the distribution to install, with its version range (``"sacrebleu>=2.4"``).
        needed_by: what needs it, for the message (``"BleuEvaluator"``).

    Returns:
        The module.

    Raises:
        MissingDependencyError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{needed_by} needs {requirement}: "
            f'pip install "finetune-web[eval]"  (or: pip install "{requirement}")'
        ) from exc


def prompt_text(prompt: Sequence[Message]) -> str:
    """Return a prompt as text for a reader: its messages without the system message.

    One message is shown as it is; several are shown as ``ROLE: text`` blocks.
    """
    shown = [m for m in prompt if m.role != "system"] or list(prompt)
    if len(shown) == 1:
        return shown[0].text
    return "\n\n".join(f"{m.role.upper()}: {m.text}" for m in shown)
