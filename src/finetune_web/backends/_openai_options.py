"""The option records of the OpenAI backend: hyperparameters, Azure, and their checks.

Each record rejects unknown fields with a :class:`~finetune_web.errors.ConfigError`
naming the accepted ones, so a typo in a TOML config fails before any upload.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, TypeVar

import attrs

from finetune_web.backends._openai_monitor import PollSchedule
from finetune_web.backends._openai_retry import RetryPolicy
from finetune_web.errors import ConfigError

__all__ = [
    "RUN_METADATA_KEY",
    "AzureConfig",
    "Method",
    "OpenAIHyperparameters",
    "check_metadata",
    "check_suffix",
    "default_api_key",
    "default_azure_endpoint",
    "to_azure",
    "to_hyperparameters",
    "to_metadata",
    "to_poll",
    "to_record",
    "to_retry",
]

#: The job metadata key carrying the run id (how a job is found again after a crash).
RUN_METADATA_KEY = "finetune_web_run"
#: The fine-tuning methods the backend runs.
Method: TypeAlias = Literal["supervised", "dpo"]
_MAX_METADATA = 16
R = TypeVar("R")


def default_api_key() -> str | None:
    """Return the default API key: the ``OPENAI_API_KEY`` environment variable, if set."""
    return os.environ.get("OPENAI_API_KEY") or None


def default_azure_endpoint() -> str | None:
    """Return the default Azure endpoint: the ``AZURE_OPENAI_ENDPOINT`` environment variable."""
    return os.environ.get("AZURE_OPENAI_ENDPOINT") or None


def to_record(value: Any, cls: type[R], what: str) -> R:
    """Return ``value`` as a ``cls`` record: records pass, mappings become ``cls(**mapping)``.

    Args:
        value: a ``cls`` instance or a mapping of its fields (a TOML table).
        cls: an attrs record class.
        what: the option's name, for messages.

    Raises:
        ConfigError: ``value`` is neither, or names a field ``cls`` does not have.
    """
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a table of options, not {type(value).__name__}")
    accepted = [field.alias for field in attrs.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(value) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown {what} option(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted)}"
        )
    try:
        return cls(**value)
    except TypeError as exc:
        raise ConfigError(f"bad {what} options: {exc}") from exc


def to_metadata(value: Any) -> dict[str, str]:
    """Return job metadata as a dict (``None``: empty)."""
    return dict(value) if value is not None else {}


def to_hyperparameters(value: Any) -> OpenAIHyperparameters:
    """Return hyperparameters as a record (see :func:`to_record`)."""
    return to_record(value, OpenAIHyperparameters, "hyperparameters")


def to_azure(value: Any) -> AzureConfig | None:
    """Return Azure settings as a record, or ``None``."""
    return None if value is None else to_record(value, AzureConfig, "azure")


def to_poll(value: Any) -> PollSchedule:
    """Return a polling schedule as a record."""
    return to_record(value, PollSchedule, "poll")


def to_retry(value: Any) -> RetryPolicy:
    """Return a retry policy as a record."""
    return to_record(value, RetryPolicy, "retry")


def _auto_int(low: int, high: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value == "auto":
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"{attribute.name} must be 'auto' or an integer from {low} to {high}, not {value!r}"
            )

    return check


def _auto_positive(high: float | None = None) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None or value == "auto":
            return
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or number <= 0 or (high is not None and number > high):
            limit = f" and at most {high}" if high is not None else ""
            raise ConfigError(
                f"{attribute.name} must be 'auto' or a number above 0{limit}, not {value!r}"
            )

    return check


@attrs.frozen(kw_only=True)
class OpenAIHyperparameters:
    """Training hyperparameters; ``"auto"`` lets the provider choose (the default).

    Attributes:
        n_epochs: passes over the training file, 1-50.
        batch_size: examples per batch, 1-256.
        learning_rate_multiplier: scales the provider's learning rate; above 0.
        beta: DPO only: the weight of the penalty against the reference model, in (0, 2].
    """

    n_epochs: int | Literal["auto"] = attrs.field(default="auto", validator=_auto_int(1, 50))
    batch_size: int | Literal["auto"] = attrs.field(default="auto", validator=_auto_int(1, 256))
    learning_rate_multiplier: float | Literal["auto"] = attrs.field(
        default="auto", validator=_auto_positive()
    )
    beta: float | Literal["auto"] | None = attrs.field(default=None, validator=_auto_positive(2.0))

    def for_method(self, method: Method) -> dict[str, Any]:
        """Return the ``method`` object of a job request (``"auto"`` values left out).

        Raises:
            ConfigError: ``beta`` is set for a supervised job.
        """
        if method != "dpo" and self.beta is not None:
            raise ConfigError("beta is a DPO hyperparameter: use method='dpo' or drop beta")
        chosen = {
            name: value
            for name, value in attrs.asdict(self).items()
            if value is not None and value != "auto"
        }
        body: dict[str, Any] = {"type": method}
        if chosen:
            body[method] = {"hyperparameters": chosen}
        return body


@attrs.frozen(kw_only=True)
class AzureConfig:
    """Where an Azure OpenAI resource is: the backend then uses the SDK's ``AzureOpenAI``.

    Attributes:
        api_version: the Azure OpenAI API version (e.g. ``"2025-04-01-preview"``).
        endpoint: ``https://<resource>.openai.azure.com``; by default the
            ``AZURE_OPENAI_ENDPOINT`` environment variable.
    """

    api_version: str
    endpoint: str | None = attrs.field(factory=default_azure_endpoint)


def check_suffix(_: object, __: attrs.Attribute[Any], value: str | None) -> None:
    """Check a model-name suffix: 1 to 64 characters.

    Raises:
        ConfigError: it is empty or longer.
    """
    if value is not None and not 1 <= len(value) <= 64:
        raise ConfigError(f"suffix must have 1 to 64 characters, not {len(value)}: {value!r}")


def check_metadata(_: object, __: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
    """Check job metadata: at most 15 pairs (the run id takes the 16th), short string keys/values.

    Raises:
        ConfigError: a rule is broken.
    """
    if len(value) > _MAX_METADATA - 1:
        raise ConfigError(
            f"metadata has {len(value)} pairs; jobs take {_MAX_METADATA} and the run id uses one"
        )
    for key, item in value.items():
        if key == RUN_METADATA_KEY:
            raise ConfigError(f"metadata key {RUN_METADATA_KEY!r} is reserved for the run id")
        if not isinstance(key, str) or not isinstance(item, str):
            raise ConfigError(f"metadata keys and values must be strings: {key!r}: {item!r}")
        if len(key) > 64 or len(item) > 512:
            raise ConfigError(f"metadata key {key!r}: keys take 64 characters, values 512")
