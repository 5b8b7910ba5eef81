"""A fine-tuning job's metrics: parse its result CSV, turn event data into metrics, plot them.

OpenAI attaches a result file to each finished job: a CSV with one row per
training step (``step,train_loss,train_accuracy,valid_loss,
valid_mean_token_accuracy``, newer files add ``train_mean_token_accuracy``,
``full_valid_loss``...).  :func:`read_result_csv` turns it into the same
:class:`~finetune_web.records.MetricEvent` records that job events and the
local backend give, so one plot and one registry entry work for all.
"""

from __future__ import annotations

import base64
import binascii
import csv
import importlib
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from finetune_web._types import StrPath
from finetune_web.errors import ErrorContext, MissingDependencyError, SourceError
from finetune_web.records import MetricEvent

__all__ = [
    "decode_result_file",
    "metric_event_from_data",
    "parse_result_csv",
    "plot_metrics",
    "read_result_csv",
]

# Column or event-data name -> MetricEvent field.  Older result files say
# "train_accuracy" / "valid_accuracy" for the mean token accuracies.
_FIELDS: Mapping[str, str] = {
    "total_steps": "total_steps",
    "train_loss": "train_loss",
    "valid_loss": "valid_loss",
    "full_valid_loss": "full_valid_loss",
    "train_mean_token_accuracy": "train_mean_token_accuracy",
    "train_accuracy": "train_mean_token_accuracy",
    "valid_mean_token_accuracy": "valid_mean_token_accuracy",
    "valid_accuracy": "valid_mean_token_accuracy",
    "epoch": "epoch",
}
_INTEGER_FIELDS = frozenset(("total_steps",))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def metric_event_from_data(
    data: Mapping[str, Any], *, total_steps: int | None = None
) -> MetricEvent | None:
    """Build a metric event from a job event's ``data`` or one result-CSV row.

    Args:
        data: names as OpenAI uses them (``step``, ``train_loss``, ``valid_loss``,
            ``full_valid_loss``, ``train_mean_token_accuracy``, ...); unknown names are ignored.
        total_steps: used when ``data`` has no ``total_steps``.

    Returns:
        The event, or ``None`` when ``data`` has no step number.
    """
    step = _number(data.get("step"))
    if step is None:
        return None
    values: dict[str, Any] = {"step": int(step), "total_steps": total_steps}
    for name, field in _FIELDS.items():
        number = _number(data.get(name))
        if number is not None and values.get(field) is None:
            values[field] = int(number) if field in _INTEGER_FIELDS else number
    return MetricEvent(**values)


def decode_result_file(data: bytes) -> str:
    """Return a result file's CSV text; OpenAI serves some result files base64-encoded.

    Raises:
        SourceError: the bytes are neither CSV text nor base64 of CSV text.
    """
    text = data.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("step"):
        return text
    try:
        decoded = base64.b64decode(data, validate=False).decode("utf-8-sig")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SourceError(f"a result file that is not CSV: {exc}") from exc
    if not decoded.lstrip().startswith("step"):
        raise SourceError("a result file without a 'step' column: not a fine-tuning result CSV")
    return decoded


def parse_result_csv(text: str, *, origin: str = "<result file>") -> tuple[MetricEvent, ...]:
    """Parse result-CSV text into metric events, one per step, in step order.

    ``total_steps`` is set to the last step on every event.

    Args:
        text: the CSV text (header row first).
        origin: the file's name, for errors.

    Returns:
        The events.

    Raises:
        SourceError: the text has no ``step`` column.
    """
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "step" not in reader.fieldnames:
        raise SourceError(
            "not a fine-tuning result CSV: the header has no 'step' column",
            ErrorContext(path=origin),
        )
    events = [event for row in reader if (event := metric_event_from_data(row)) is not None]
    events.sort(key=lambda event: event.step)
    last = events[-1].step if events else None
    return tuple(
        event if event.total_steps is not None else _with_total(event, last) for event in events
    )


def _with_total(event: MetricEvent, total: int | None) -> MetricEvent:
    return attrs.evolve(event, total_steps=total)


def read_result_csv(path: StrPath) -> tuple[MetricEvent, ...]:
    """Read a result file (plain or base64 CSV) into metric events (see :func:`parse_result_csv`).

    Raises:
        SourceError: the file cannot be read or is not a result CSV.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(
            f"cannot read the result file: {exc}", ErrorContext(path=str(path))
        ) from exc
    return parse_result_csv(decode_result_file(data), origin=str(path))


def _series(events: Sequence[MetricEvent], field: str) -> tuple[list[int], list[float]]:
    points = [(e.step, getattr(e, field)) for e in events if getattr(e, field) is not None]
    return [step for step, _ in points], [value for _, value in points]


def plot_metrics(events: Iterable[MetricEvent], path: StrPath, *, title: str = "") -> Path:
    """Plot loss and token accuracy against step to a PNG file (needs matplotlib).

    Args:
        events: the metric events (from a result file, job events or a local run).
        path: the PNG file to write.
        title: a title above the plots.

    Returns:
        The file written.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:  # Figure draws without pyplot: no global backend or figure registry is touched
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise MissingDependencyError("plotting needs matplotlib: pip install matplotlib") from exc
    ordered = sorted(events, key=lambda event: event.step)
    figure = figure_module.Figure(figsize=(11, 4))
    loss, accuracy = figure.subplots(1, 2)
    for field, label in (("train_loss", "train"), ("valid_loss", "validation")):
        steps, values = _series(ordered, field)
        if steps:
            loss.plot(steps, values, label=label)
    for field, label in (
        ("train_mean_token_accuracy", "train"),
        ("valid_mean_token_accuracy", "validation"),
    ):
        steps, values = _series(ordered, field)
        if steps:
            accuracy.plot(steps, values, label=label)
    for axes, name in ((loss, "loss"), (accuracy, "mean token accuracy")):
        axes.set_xlabel("step")
        axes.set_ylabel(name)
        if axes.lines:
            axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, format="png")
    return target
