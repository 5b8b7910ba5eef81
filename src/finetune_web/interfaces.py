"""The interfaces that pipelines are built from and that plugins implement.

Each interface is a :class:`typing.Protocol`: a plugin satisfies it by having
the right method, with no base class to inherit.  ``isinstance`` checks only
method names (used for friendly errors when a pipeline is built); mypy
``--strict`` and :mod:`finetune_web.testing` check the contract itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from finetune_web.records import (
    EvalResult,
    Example,
    FineTunedModel,
    Message,
    MetricEvent,
    Pack,
    Preference,
    Record,
    Rejection,
    StepMetric,
    Tokenized,
)

__all__ = [
    "Backend",
    "ChatModel",
    "Evaluator",
    "HasInputFiles",
    "LogLikelihoodModel",
    "MetricCallback",
    "Packer",
    "Source",
    "TokenScoringModel",
    "Tokenizer",
    "Transformer",
    "step_name",
]

#: Called by a backend with each metric event as training progresses.
MetricCallback = Callable[[MetricEvent], None]


@runtime_checkable
class Source(Protocol):
    """**Protocol:** yields the records of one input, lazily.

    Most sources yield :class:`~finetune_web.records.Document` records; a
    source of an existing dataset may yield examples directly.

    Contract:

    - ``read()`` returns a fresh iterator each time it is called and yields
      the same records in the same order for the same input.
    - It streams: it never holds a whole file or response in memory.
    - A record that cannot be read (bad JSON, bad encoding, a failed scrape)
      is yielded as a :class:`~finetune_web.records.Rejection` naming its
      location; reading goes on with the next record.
    - A source that cannot be read at all raises
      :class:`~finetune_web.errors.SourceError`.
    - Until ``read()`` is called the source holds no open file or connection,
      so it can be pickled and sent to another process.
    """

    def read(self) -> Iterator[Record | Rejection]:
        """Yield records (usually documents) and rejections in input order."""
        ...


@runtime_checkable
class Transformer(Protocol):
    """**Protocol:** turns a stream of records into a stream of records.

    Contract:

    - Every input record leaves as at least one output (same ``id``, or an
      output whose ``parent_id`` is the input's id) or as exactly one
      :class:`~finetune_web.records.Rejection` with its ``record_id``.  The
      pipeline checks this and raises
      :class:`~finetune_web.errors.AccountingError` otherwise.
    - It is lazy where it can be: it pulls inputs only as outputs are asked for.
    - State (seen hashes, counters) lives inside the call, never on ``self``,
      so running the same step twice gives the same result.
    - Problems with one record become rejections; exceptions are for bugs.
    - It may also yield :class:`~finetune_web.records.StepMetric` figures
      (counts of what it did); the pipeline puts them in the step's report.
    """

    def transform(self, records: Iterable[Record]) -> Iterator[Record | Rejection | StepMetric]:
        """Yield the transformed records and the rejections."""
        ...


@runtime_checkable
class Packer(Protocol):
    """**Protocol:** packs tokenized examples into rows of a fixed maximum length.

    Contract: every token of every input appears exactly once in the output;
    each row is at most the packer's sequence length; ``position_ids``
    restart at 0 at each example's first token.
    """

    def pack(self, examples: Iterable[Tokenized]) -> Iterator[Pack]:
        """Yield packed rows."""
        ...


@runtime_checkable
class Backend(Protocol):
    """**Protocol:** fine-tunes a model on examples and returns the result.

    Contract: ``fine_tune`` blocks until the job ends, reports progress
    through ``callbacks`` as :class:`~finetune_web.records.MetricEvent`
    records, and returns a :class:`~finetune_web.records.FineTunedModel`.
    A failed job raises an error naming the job and the provider's reason.
    """

    def fine_tune(
        self,
        train: Iterable[Example | Preference],
        validation: Iterable[Example | Preference] | None = None,
        *,
        callbacks: Sequence[MetricCallback] = (),
    ) -> FineTunedModel:
        """Train and return the fine-tuned model."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    """**Protocol:** a chat model: messages in, one assistant message out.

    Contract: ``model_id`` names the model; ``complete`` is deterministic for
    a given model, messages and the model's own options when the model is
    (temperature 0 or a fixed seed).
    """

    @property
    def model_id(self) -> str:
        """The id of the model behind this object."""
        ...

    def complete(self, messages: Sequence[Message]) -> Message:
        """Return the assistant's reply to ``messages``."""
        ...


@runtime_checkable
class LogLikelihoodModel(ChatModel, Protocol):
    """**Protocol:** a chat model that says how likely a given reply is.

    Used by evaluators that rank answers by probability instead of
    generating one (log-likelihood multiple choice); models behind a chat
    API usually cannot do this, local models can.

    Contract: ``loglikelihood(context, continuation)`` returns the sum of
    the natural-log probabilities of the tokens of ``continuation`` when it
    follows ``context`` as the assistant's reply (the context rendered as
    for generation, the assistant's generation prompt included), and how
    many tokens that is; it is deterministic.  A model may also offer
    ``loglikelihood_many(requests)`` taking ``(context, continuation)``
    pairs and returning the same values in order; evaluators use it when
    present.
    """

    def loglikelihood(self, context: Sequence[Message], continuation: str) -> tuple[float, int]:
        """Return ``(sum of log-probabilities, token count)`` of ``continuation``."""
        ...


@runtime_checkable
class TokenScoringModel(ChatModel, Protocol):
    """**Protocol:** a chat model that scores whole examples token by token (teacher forcing).

    Contract: ``token_stats(examples)`` returns, per example and in order,
    ``(loss, correct, count)``: the summed cross-entropy (natural log) of
    the tokens of the assistant messages trained on (their content and
    end-of-turn token; ``weight`` 0 messages are context), how many of those
    tokens are the model's most likely next token, and how many there are:
    the figures fine-tuning reports as loss and mean token accuracy.  It is
    deterministic.
    """

    def token_stats(self, examples: Sequence[Example]) -> list[tuple[float, int, int]]:
        """Return ``(summed loss, correct predictions, tokens)`` for each example."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    """**Protocol:** scores a chat model on held-out examples.

    Contract: the result keeps one score per example, in input order, so two
    models evaluated on the same examples can be compared pair by pair.
    """

    def evaluate(self, model: ChatModel, examples: Sequence[Example]) -> EvalResult:
        """Score ``model`` on ``examples``."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    """**Protocol:** text to token ids and back.

    Contract: ``decode(encode(text)) == text`` for any text the tokenizer
    can represent.
    """

    @property
    def name(self) -> str:
        """The tokenizer's name (e.g. ``o200k_base``)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text``."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Return the text of ``ids``."""
        ...


@runtime_checkable
class HasInputFiles(Protocol):
    """**Protocol:** a source whose inputs are local files (hashed into manifests)."""

    def input_files(self) -> Sequence[Path]:
        """Return the files this source reads."""
        ...


def step_name(step: object) -> str:
    """Return the display name of a step: its ``name`` attribute, else its class name."""
    name = getattr(step, "name", None)
    return name if isinstance(name, str) and name else type(step).__name__
