"""The records of the model registry: a registered model, its scores, a channel change."""

from __future__ import annotations

from typing import Any

import attrs

from finetune_web.errors import FinetuneWebError
from finetune_web.records import FineTunedModel

__all__ = ["ChannelEvent", "ModelNotFoundError", "RegisteredModel", "RegistryError", "Score"]


class RegistryError(FinetuneWebError):
    """The model registry cannot do what was asked (e.g. nothing to roll back to)."""


class ModelNotFoundError(RegistryError, KeyError):
    """No model with that id is registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return FinetuneWebError.__str__(self)


@attrs.frozen(kw_only=True)
class Score:
    """One evaluation score of a registered model.

    Attributes:
        metric: the metric's name (``exact_match``, ``bleu``...).
        score: the value.
        details: anything the evaluator reported beside it.
        recorded_at: Unix time it was added.
    """

    metric: str
    score: float
    details: dict[str, Any] = attrs.field(factory=dict)
    recorded_at: float = 0.0


@attrs.frozen(kw_only=True)
class RegisteredModel:
    """A registered model with its lineage and scores.

    Attributes:
        model: the fine-tuned model record (ids, hyperparameters, metrics...).
        dataset_hash: the hash of the dataset manifest it was trained on.
        pipeline: the description of the pipeline that made the data.
        registered_at: Unix time it was registered.
        scores: evaluation scores, oldest first.
    """

    model: FineTunedModel
    dataset_hash: str | None = None
    pipeline: dict[str, Any] | None = None
    registered_at: float = 0.0
    scores: tuple[Score, ...] = ()

    @property
    def model_id(self) -> str:
        """The model's id."""
        return self.model.model_id

    def latest_scores(self) -> dict[str, float]:
        """Return the newest score of each metric."""
        return {score.metric: score.score for score in self.scores}


@attrs.frozen(kw_only=True)
class ChannelEvent:
    """One change of a channel.

    Attributes:
        channel: the channel.
        action: ``promote`` or ``rollback``.
        model_id: the model the channel points at after the change.
        previous_model_id: the model it pointed at before (``None`` at first).
        at: Unix time of the change.
        sequence: the change's number, increasing across the registry.
    """

    channel: str
    action: str
    model_id: str
    previous_model_id: str | None
    at: float
    sequence: int
