"""The SQLite model registry: lineage, scores, channels with promote/rollback, concurrency."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from finetune_web.errors import ConfigError
from finetune_web.records import EvalResult, FineTunedModel, MetricEvent
from finetune_web.registry import (
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
)


def _model(name: str, backend: str = "openai") -> FineTunedModel:
    return FineTunedModel(
        model_id=name,
        base_model="gpt-4o-mini-2024-07-18",
        backend=backend,
        job_id=f"ftjob-{name}",
        trained_tokens=1234,
        hyperparameters={"n_epochs": 3},
        result_files=["file-result"],
        metrics=[MetricEvent(step=1, train_loss=1.5), MetricEvent(step=2, train_loss=0.9)],
        metadata={"run_id": f"run-{name}"},
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """A registry in a fresh file, with a ticking clock (1, 2, 3... seconds)."""
    ticks = itertools.count(1)
    return ModelRegistry(tmp_path / "models.db", clock=lambda: float(next(ticks)))


def test_register_keeps_the_model_and_its_lineage(registry: ModelRegistry) -> None:
    """A registered model reads back whole, with dataset hash and pipeline description."""
    model = _model("ft:a")
    pipeline = {"source": {"type": "JsonlSource"}, "steps": [{"type": "ExactDedup"}]}
    entry = registry.register(model, dataset_hash="sha256:abc", pipeline=pipeline)
    assert entry.model == model
    assert (entry.dataset_hash, entry.pipeline) == ("sha256:abc", pipeline)
    assert registry.get("ft:a") == entry
    assert registry.register(model, dataset_hash="other") == entry  # idempotent
    assert [e.model_id for e in registry.models()] == ["ft:a"]


def test_models_filter_by_backend_and_base(registry: ModelRegistry) -> None:
    """models() lists in registration order and filters by backend or base model."""
    registry.register(_model("ft:a"))
    registry.register(_model("local-b", backend="local"))
    assert [e.model_id for e in registry.models()] == ["ft:a", "local-b"]
    assert [e.model_id for e in registry.models(backend="local")] == ["local-b"]
    assert registry.models(base_model="gpt-4.1") == ()


def test_scores_are_added_later(registry: ModelRegistry) -> None:
    """Evaluation scores attach to a model, as a mapping or as evaluator results."""
    registry.register(_model("ft:a"))
    registry.add_scores("ft:a", {"exact_match": 0.5})
    result = EvalResult(metric="bleu", model="ft:a", score=31.2, details={"signature": "13a"})
    entry = registry.add_scores("ft:a", [result])
    assert [(s.metric, s.score) for s in entry.scores] == [("exact_match", 0.5), ("bleu", 31.2)]
    assert entry.scores[1].details == {"signature": "13a"}
    registry.add_scores("ft:a", {"exact_match": 0.75})
    assert registry.get("ft:a").latest_scores() == {"exact_match": 0.75, "bleu": 31.2}
    with pytest.raises(ModelNotFoundError, match="ft:missing"):
        registry.add_scores("ft:missing", {"x": 1.0})


def test_promote_rollback_and_history(registry: ModelRegistry) -> None:
    """Promotions stack up; each rollback returns to the model before; history has every change."""
    for name in ("ft:a", "ft:b", "ft:c"):
        registry.register(_model(name))
    assert registry.current("product-writer") is None
    registry.promote("product-writer", "ft:a")
    registry.promote("product-writer", "ft:b")
    assert registry.promote("product-writer", "ft:b") is None  # already there: no change
    registry.promote("product-writer", "ft:c")
    assert registry.current("product-writer") == "ft:c"
    back = registry.rollback("product-writer")
    assert (back.model_id, back.previous_model_id) == ("ft:b", "ft:c")
    assert registry.rollback("product-writer").model_id == "ft:a"
    with pytest.raises(RegistryError, match="no earlier model"):
        registry.rollback("product-writer")
    registry.promote("product-writer", "ft:c")
    history = registry.history("product-writer")
    assert [(e.action, e.model_id, e.previous_model_id) for e in history] == [
        ("promote", "ft:a", None),
        ("promote", "ft:b", "ft:a"),
        ("promote", "ft:c", "ft:b"),
        ("rollback", "ft:b", "ft:c"),
        ("rollback", "ft:a", "ft:b"),
        ("promote", "ft:c", "ft:a"),
    ]
    assert [e.sequence for e in history] == sorted(e.sequence for e in history)
    assert registry.channels() == {"product-writer": "ft:c"}


def test_promoting_an_unknown_model_or_a_nameless_channel_fails(registry: ModelRegistry) -> None:
    """Only registered models can be promoted, to a named channel."""
    with pytest.raises(ModelNotFoundError):
        registry.promote("prod", "ft:nope")
    registry.register(_model("ft:a"))
    with pytest.raises(ConfigError):
        registry.promote("", "ft:a")
    assert registry.history("prod") == ()


def test_a_failed_write_leaves_nothing(registry: ModelRegistry) -> None:
    """A transaction that fails halfway is rolled back whole."""
    registry.register(_model("ft:a"))
    with pytest.raises(ModelNotFoundError):
        registry.add_scores("ft:b", {"x": 1.0})
    with contextlib.closing(sqlite3.connect(registry.path)) as db:
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone() == (0,)


def test_wal_mode_and_pickling(registry: ModelRegistry) -> None:
    """The file is in WAL mode, and the registry (a path, no connection) pickles."""
    registry.register(_model("ft:a"))
    with contextlib.closing(sqlite3.connect(registry.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    copy = pickle.loads(pickle.dumps(ModelRegistry(registry.path)))
    assert copy.get("ft:a").model_id == "ft:a"


def _writer(path: str, worker: int, count: int, start: Any) -> None:
    """Register, score and promote ``count`` models from one process, once ``start`` is set."""
    registry = ModelRegistry(path, timeout=60)
    start.wait(60)
    for index in range(count):
        name = f"ft:w{worker}-{index}"
        registry.register(_model(name))
        registry.add_scores(name, {"exact_match": index / count})
        registry.promote("shared", name)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two spawned processes writing to one file at the same time: every row is there."""
    path = str(tmp_path / "models.db")
    count = 60
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_writer, args=(path, n, count, start)) for n in range(2)]
    for process in workers:
        process.start()
    start.set()  # both write at the same time
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0, 0]
    registry = ModelRegistry(path)
    assert len(registry.models()) == 2 * count
    assert all(len(entry.scores) == 1 for entry in registry.models())
    history = registry.history("shared")
    assert len(history) == 2 * count
    assert {event.model_id for event in history} == {e.model_id for e in registry.models()}
