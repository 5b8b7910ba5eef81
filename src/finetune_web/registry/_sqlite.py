"""The registry's storage: SQLite in WAL mode, one ``BEGIN IMMEDIATE`` transaction per write."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.records import EvalResult, FineTunedModel, MetricEvent
from finetune_web.registry._records import (
    ChannelEvent,
    ModelNotFoundError,
    RegisteredModel,
    RegistryError,
    Score,
)

__all__ = ["ModelRegistry"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    base_model TEXT NOT NULL,
    backend TEXT NOT NULL,
    job_id TEXT,
    trained_tokens INTEGER,
    dataset_hash TEXT,
    pipeline TEXT,
    hyperparameters TEXT NOT NULL,
    result_files TEXT NOT NULL,
    metrics TEXT NOT NULL,
    metadata TEXT NOT NULL,
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id TEXT NOT NULL REFERENCES models(model_id),
    metric TEXT NOT NULL,
    score REAL NOT NULL,
    details TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS channel_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    action TEXT NOT NULL,
    model_id TEXT NOT NULL REFERENCES models(model_id),
    previous_model_id TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS channel_events_by_channel ON channel_events(channel, id);
CREATE INDEX IF NOT EXISTS scores_by_model ON scores(model_id, id);
"""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _metric_json(events: Iterable[MetricEvent]) -> str:
    return _json([attrs.asdict(event) for event in events])


@attrs.frozen
class ModelRegistry:
    """The registry in one SQLite file (created on first use).

    Attributes:
        path: the database file.
        timeout: seconds a writer waits for another one (SQLite busy timeout).
        clock: Unix time, for the timestamps (a fixed clock in tests).
    """

    path: Path = attrs.field(converter=Path)
    timeout: float = 30.0
    clock: Callable[[], float] = attrs.field(default=time.time, repr=False, eq=False)

    @staticmethod
    def _ensure_schema(connection: sqlite3.Connection) -> None:
        if connection.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            if connection.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside one transaction; commit on success, else roll back.

        Writes take the write lock at once (``BEGIN IMMEDIATE``), so two
        writers queue on the busy timeout instead of failing halfway.

        Raises:
            RegistryError: SQLite failed (e.g. the busy timeout ran out).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")  # WAL: safe on a crash, fewer fsyncs
            connection.execute("PRAGMA foreign_keys = ON")
            self._ensure_schema(connection)
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise RegistryError(
                f"the model registry failed: {exc}", ErrorContext(path=str(self.path))
            ) from exc
        finally:
            connection.close()

    # -- models ---------------------------------------------------------------------------

    def register(
        self,
        model: FineTunedModel,
        *,
        dataset_hash: str | None = None,
        pipeline: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        """Register a fine-tuned model with its lineage.

        Registering the same model id again changes nothing and returns the
        existing entry (so a resumed run can register its result safely).

        Args:
            model: the backend's result.
            dataset_hash: the dataset manifest hash it was trained on.
            pipeline: the pipeline description (``Pipeline.describe()``).

        Returns:
            The registered entry.
        """
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model.model_id,
                    model.base_model,
                    model.backend,
                    model.job_id,
                    model.trained_tokens,
                    dataset_hash,
                    None if pipeline is None else _json(dict(pipeline)),
                    _json(model.hyperparameters),
                    _json(list(model.result_files)),
                    _metric_json(model.metrics),
                    _json(model.metadata),
                    self.clock(),
                ),
            )
            return self._get(db, model.model_id)

    def _get(self, db: sqlite3.Connection, model_id: str) -> RegisteredModel:
        row = db.execute("SELECT * FROM models WHERE model_id = ?", (model_id,)).fetchone()
        if row is None:
            raise ModelNotFoundError(
                f"no model {model_id!r} in the registry", ErrorContext(path=str(self.path))
            )
        scores = db.execute(
            "SELECT metric, score, details, recorded_at FROM scores WHERE model_id = ? ORDER BY id",
            (model_id,),
        ).fetchall()
        return _registered(row, scores)

    def get(self, model_id: str) -> RegisteredModel:
        """Return a registered model.

        Raises:
            ModelNotFoundError: no such model.
        """
        with self._transaction() as db:
            return self._get(db, model_id)

    def models(
        self, *, backend: str | None = None, base_model: str | None = None
    ) -> tuple[RegisteredModel, ...]:
        """Return registered models, oldest first, optionally of one backend or base model."""
        with self._transaction() as db:
            ids = db.execute(
                "SELECT model_id FROM models WHERE (? IS NULL OR backend = ?) "
                "AND (? IS NULL OR base_model = ?) ORDER BY registered_at, rowid",
                (backend, backend, base_model, base_model),
            ).fetchall()
            return tuple(self._get(db, model_id) for (model_id,) in ids)

    def add_scores(
        self, model_id: str, scores: Mapping[str, float] | Iterable[EvalResult]
    ) -> RegisteredModel:
        """Add evaluation scores to a registered model.

        Args:
            model_id: the model.
            scores: ``{metric: score}``, or evaluator results (their ``details`` are kept).

        Returns:
            The entry with its scores.

        Raises:
            ModelNotFoundError: no such model.
        """
        rows: list[tuple[str, float, dict[str, Any]]]
        if isinstance(scores, Mapping):
            rows = [(metric, float(value), {}) for metric, value in scores.items()]
        else:
            rows = [(result.metric, result.score, dict(result.details)) for result in scores]
        with self._transaction(write=True) as db:
            self._get(db, model_id)
            now = self.clock()
            db.executemany(
                "INSERT INTO scores (model_id, metric, score, details, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(model_id, metric, value, _json(details), now) for metric, value, details in rows],
            )
            return self._get(db, model_id)

    # -- channels -------------------------------------------------------------------------

    @staticmethod
    def _stack(db: sqlite3.Connection, channel: str) -> list[str]:
        stack: list[str] = []
        for action, model_id in db.execute(
            "SELECT action, model_id FROM channel_events WHERE channel = ? ORDER BY id", (channel,)
        ):
            if action == "promote":
                stack.append(model_id)
            else:
                stack.pop()
        return stack

    def _change(
        self, db: sqlite3.Connection, channel: str, action: str, model_id: str, previous: str | None
    ) -> ChannelEvent:
        row = (channel, action, model_id, previous, self.clock())
        cursor = db.execute(
            "INSERT INTO channel_events (channel, action, model_id, previous_model_id, at) "
            "VALUES (?, ?, ?, ?, ?)",
            row,
        )
        return _channel_event((*row, cursor.lastrowid))

    def promote(self, channel: str, model_id: str) -> ChannelEvent | None:
        """Point ``channel`` at a registered model.

        Returns:
            The change, or ``None`` when the channel already points at it.

        Raises:
            ModelNotFoundError: the model is not registered.
            ConfigError: the channel name is empty.
        """
        if not channel:
            raise ConfigError("a channel needs a name")
        with self._transaction(write=True) as db:
            self._get(db, model_id)
            stack = self._stack(db, channel)
            previous = stack[-1] if stack else None
            if previous == model_id:
                return None
            return self._change(db, channel, "promote", model_id, previous)

    def rollback(self, channel: str) -> ChannelEvent:
        """Point ``channel`` back at the model it pointed at before its last promotion.

        Returns:
            The change (its ``model_id`` is the model now in use).

        Raises:
            RegistryError: the channel has no earlier model to go back to.
        """
        with self._transaction(write=True) as db:
            stack = self._stack(db, channel)
            if len(stack) < 2:
                raise RegistryError(
                    f"channel {channel!r} has no earlier model to roll back to",
                    ErrorContext(path=str(self.path)),
                )
            return self._change(db, channel, "rollback", stack[-2], stack[-1])

    def current(self, channel: str) -> str | None:
        """Return the id of the model ``channel`` points at (``None``: never promoted)."""
        with self._transaction() as db:
            stack = self._stack(db, channel)
            return stack[-1] if stack else None

    def history(self, channel: str) -> tuple[ChannelEvent, ...]:
        """Return every change of ``channel``, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT channel, action, model_id, previous_model_id, at, id FROM channel_events "
                "WHERE channel = ? ORDER BY id",
                (channel,),
            ).fetchall()
        return tuple(_channel_event(row) for row in rows)

    def channels(self) -> dict[str, str]:
        """Return every channel that points at a model, with that model's id."""
        with self._transaction() as db:
            names = [row[0] for row in db.execute("SELECT DISTINCT channel FROM channel_events")]
            found = {name: self._stack(db, name) for name in sorted(names)}
        return {name: stack[-1] for name, stack in found.items() if stack}


def _channel_event(row: tuple[Any, ...]) -> ChannelEvent:
    channel, action, model_id, previous, at, sequence = row
    return ChannelEvent(
        channel=channel,
        action=action,
        model_id=model_id,
        previous_model_id=previous,
        at=at,
        sequence=sequence,
    )


def _registered(row: tuple[Any, ...], scores: list[tuple[Any, ...]]) -> RegisteredModel:
    (model_id, base, backend, job_id, tokens, dataset_hash, pipeline) = row[:7]
    hyper, files, metrics, metadata, registered_at = row[7:]
    model = FineTunedModel(
        model_id=model_id,
        base_model=base,
        backend=backend,
        job_id=job_id,
        trained_tokens=tokens,
        hyperparameters=json.loads(hyper),
        result_files=json.loads(files),
        metrics=[MetricEvent(**event) for event in json.loads(metrics)],
        metadata=json.loads(metadata),
    )
    return RegisteredModel(
        model=model,
        dataset_hash=dataset_hash,
        pipeline=None if pipeline is None else json.loads(pipeline),
        registered_at=registered_at,
        scores=tuple(
            Score(metric=metric, score=score, details=json.loads(details), recorded_at=at)
            for metric, score, details, at in scores
        ),
    )
