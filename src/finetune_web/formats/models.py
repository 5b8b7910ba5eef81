"""The fine-tuning model table: encodings, token limits, prices and shutdown dates.

Facts are OpenAI's as of :data:`PRICES_AS_OF`.  Where OpenAI publishes no
figure the table says so with ``None`` (a price), or uses a stated assumption
(a limit):

- ``gpt-4-0613``: OpenAI publishes no per-example training limit; the table
  uses the model's 8,192-token context window, and no self-serve price.
- ``o4-mini``: reinforcement fine-tuning only, billed per training hour, so
  no per-token price; the limit (65,536) is assumed equal to the gpt-4.1 family.
- ``babbage-002`` / ``davinci-002``: prompt/completion models with a
  16,384-token context window, used as the per-example limit.
"""

from __future__ import annotations

import difflib
import re
from datetime import date
from types import MappingProxyType
from typing import Literal, TypeAlias

import attrs

from finetune_web.errors import ErrorContext, UnknownModelError

__all__ = [
    "JOB_CREATION_ENDS",
    "MODEL_TABLE",
    "NEAR_SHUTDOWN_DAYS",
    "PRICES_AS_OF",
    "EncodingName",
    "ModelFormat",
    "ModelSpec",
    "job_creation_warning",
    "resolve_model",
    "shutdown_warning",
]

#: The date the prices and shutdown dates in :data:`MODEL_TABLE` were checked.
PRICES_AS_OF = date(2026, 11, 1)

#: The day OpenAI stops accepting any new fine-tuning job, for every model.
JOB_CREATION_ENDS = date(2027, 1, 6)

#: A shutdown this many days away (or fewer) gives a "near" warning.
NEAR_SHUTDOWN_DAYS = 90

#: The tiktoken encodings used by fine-tunable OpenAI models.
EncodingName: TypeAlias = Literal["o200k_base", "cl100k_base"]

#: The training-file format a model takes.
ModelFormat: TypeAlias = Literal["chat", "completion"]

_SNAPSHOT = re.compile(r"\d{4}(?:-\d{2}-\d{2})?")


@attrs.frozen(kw_only=True)
class ModelSpec:
    """What the fine-tuning service does with one base model.

    Attributes:
        name: the base model name as OpenAI lists it.
        encoding: the tiktoken encoding that counts its tokens.
        max_tokens_per_example: longer examples are cut from the end by the service.
        training_price_per_1m_usd: price per million trained tokens, ``None``
            where OpenAI publishes no per-token price.
        shutdown_date: the day OpenAI stops fine-tuning it, ``None`` if not announced.
        format: ``chat`` (messages JSONL) or ``completion`` (prompt/completion JSONL).
    """

    name: str
    encoding: EncodingName
    max_tokens_per_example: int
    training_price_per_1m_usd: float | None
    shutdown_date: date | None
    format: ModelFormat = "chat"


def _spec(
    name: str,
    encoding: EncodingName,
    limit: int,
    price: float | None,
    shutdown: date,
    fmt: ModelFormat = "chat",
) -> tuple[str, ModelSpec]:
    return name, ModelSpec(
        name=name,
        encoding=encoding,
        max_tokens_per_example=limit,
        training_price_per_1m_usd=price,
        shutdown_date=shutdown,
        format=fmt,
    )


_GPT4O_END = date(2027, 1, 14)
_LEGACY_END = date(2026, 10, 23)
_COMPLETION_END = date(2026, 9, 28)

#: Every known base model by name (read-only).
MODEL_TABLE = MappingProxyType(
    dict(
        [
            _spec("gpt-4o", "o200k_base", 65_536, 25.0, _GPT4O_END),
            _spec("gpt-4o-mini", "o200k_base", 65_536, 3.0, _GPT4O_END),
            _spec("gpt-4.1", "o200k_base", 65_536, 25.0, _GPT4O_END),
            _spec("gpt-4.1-mini", "o200k_base", 65_536, 5.0, _GPT4O_END),
            _spec("gpt-4.1-nano", "o200k_base", 32_768, 1.5, _LEGACY_END),
            _spec("o4-mini", "o200k_base", 65_536, None, _LEGACY_END),
            _spec("gpt-3.5-turbo", "cl100k_base", 16_385, 8.0, _LEGACY_END),
            _spec("gpt-3.5-turbo-0125", "cl100k_base", 16_385, 8.0, _LEGACY_END),
            _spec("gpt-3.5-turbo-1106", "cl100k_base", 16_385, 8.0, _LEGACY_END),
            _spec("gpt-3.5-turbo-0613", "cl100k_base", 4_096, 8.0, _LEGACY_END),
            _spec("gpt-4-0613", "cl100k_base", 8_192, None, _LEGACY_END),
            _spec("babbage-002", "cl100k_base", 16_384, 0.40, _COMPLETION_END, "completion"),
            _spec("davinci-002", "cl100k_base", 16_384, 6.0, _COMPLETION_END, "completion"),
        ]
    )
)


def _base_name(name: str) -> str:
    """Strip a fine-tuned model name (``ft:<base>:<org>:<suffix>:<id>``) to its base."""
    if name.startswith("ft:"):
        parts = name.split(":")
        return parts[1] if len(parts) > 1 else ""
    return name


def resolve_model(name: str) -> ModelSpec:
    """Return the table entry for a model name, snapshot or fine-tuned model.

    ``gpt-4o-mini-2024-07-18`` resolves to ``gpt-4o-mini`` (the longest known
    name it extends by a snapshot date), while ``gpt-3.5-turbo-0613`` has its
    own entry.  ``ft:gpt-4.1-mini-2025-04-14:org:suffix:id`` resolves to its
    base model, ``gpt-4.1-mini`` (and so to o200k_base, which tiktoken gets wrong).

    Args:
        name: a model name as OpenAI spells it.

    Returns:
        The :class:`ModelSpec` of the base model.

    Raises:
        UnknownModelError: the name matches no known model; the message lists close names.
    """
    base = _base_name(name.strip().lower())
    spec = MODEL_TABLE.get(base)
    if spec is not None:
        return spec
    for known in sorted(MODEL_TABLE, key=len, reverse=True):
        rest = base[len(known) + 1 :]
        if base.startswith(known + "-") and _SNAPSHOT.fullmatch(rest):
            return MODEL_TABLE[known]
    close = difflib.get_close_matches(base, list(MODEL_TABLE), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}; {hint}known models: {', '.join(sorted(MODEL_TABLE))}",
        ErrorContext(source="model table"),
    )


def shutdown_warning(spec: ModelSpec, today: date) -> str | None:
    """Say whether a model is shut down, or shuts down within :data:`NEAR_SHUTDOWN_DAYS`.

    Args:
        spec: the model.
        today: the date to compare with.

    Returns:
        A warning sentence, or ``None`` when the shutdown is far off or unannounced.
    """
    end = spec.shutdown_date
    if end is None:
        return None
    if end <= today:
        return (
            f"{spec.name} was shut down for fine-tuning on {end.isoformat()}: OpenAI no longer "
            "accepts jobs for it; pick a newer model, another OpenAI-compatible provider, "
            "or the local backend"
        )
    days = (end - today).days
    if days <= NEAR_SHUTDOWN_DAYS:
        return (
            f"{spec.name} shuts down for fine-tuning on {end.isoformat()}, "
            f"{days} days after {today.isoformat()}"
        )
    return None


def job_creation_warning(today: date) -> str | None:
    """Say whether OpenAI's end of all job creation (:data:`JOB_CREATION_ENDS`) is near or past.

    Args:
        today: the date to compare with.

    Returns:
        A warning sentence, or ``None`` when the end is more than
        :data:`NEAR_SHUTDOWN_DAYS` days away.
    """
    end = JOB_CREATION_ENDS
    if end <= today:
        return (
            f"OpenAI stopped accepting new fine-tuning jobs on {end.isoformat()}; use another "
            "OpenAI-compatible provider (base_url / Azure) or the local backend"
        )
    days = (end - today).days
    if days <= NEAR_SHUTDOWN_DAYS:
        return (
            f"OpenAI stops accepting new fine-tuning jobs on {end.isoformat()}, "
            f"{days} days after {today.isoformat()}"
        )
    return None
