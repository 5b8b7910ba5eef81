"""Result CSVs and event data become MetricEvents; plots need matplotlib."""

from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finetune_web.backends import (
    decode_result_file,
    metric_event_from_data,
    parse_result_csv,
    plot_metrics,
    read_result_csv,
)
from finetune_web.errors import MissingDependencyError, SourceError
from finetune_web.records import MetricEvent

REALDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"
DRONE = REALDATA / "openai_ft_results" / "drone_ft_result.csv"


@pytest.fixture
def drone() -> Path:
    """The real OpenAI result file of the cookbook's drone job, or a skip when absent."""
    if not DRONE.is_file():
        pytest.skip("../shared/realdata is absent (a user's clone): no real result file")
    return DRONE


def test_real_result_file_gives_309_steps(drone: Path) -> None:
    """The cookbook's drone result CSV gives 309 events, steps 1-309, old column names mapped."""
    events = read_result_csv(drone)
    assert len(events) == 309
    assert [event.step for event in events] == list(range(1, 310))
    assert {event.total_steps for event in events} == {309}
    assert events[0] == MetricEvent(
        step=1, total_steps=309, train_loss=3.63265, train_mean_token_accuracy=0.5
    )
    assert events[-1].train_loss == 0.0 and events[-1].train_mean_token_accuracy == 1.0
    assert all(event.valid_loss is None for event in events)


def test_base64_result_files_are_decoded(drone: Path, tmp_path: Path) -> None:
    """OpenAI serves some result files base64-encoded; both forms read the same."""
    encoded = tmp_path / "encoded.csv"
    encoded.write_bytes(base64.b64encode(drone.read_bytes()))
    assert read_result_csv(encoded) == read_result_csv(drone)


def test_newer_columns_and_validation_values() -> None:
    """Newer files name train_mean_token_accuracy and full_valid_loss; empty cells stay None."""
    text = (
        "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,"
        "full_valid_loss\n"
        "2,0.5,0.8,,,\n"
        "1,1.0,0.6,1.2,0.55,1.3\n"
    )
    first, second = parse_result_csv(text)
    assert first == MetricEvent(
        step=1,
        total_steps=2,
        train_loss=1.0,
        train_mean_token_accuracy=0.6,
        valid_loss=1.2,
        valid_mean_token_accuracy=0.55,
        full_valid_loss=1.3,
    )
    assert second.valid_loss is None and second.step == 2


def test_not_a_result_file_is_a_source_error(tmp_path: Path) -> None:
    """A CSV without a step column, or bytes that are not CSV, raise SourceError."""
    with pytest.raises(SourceError, match="'step' column"):
        parse_result_csv("loss,accuracy\n1,2\n", origin="x.csv")
    with pytest.raises(SourceError):
        decode_result_file(b"\x00\x01 not csv")
    with pytest.raises(SourceError, match="cannot read"):
        read_result_csv(tmp_path / "missing.csv")


def test_event_data_becomes_a_metric_event() -> None:
    """A metrics event's data maps field for field; data without a step gives None."""
    data = {
        "step": 12,
        "train_loss": 0.25,
        "valid_loss": 0.3,
        "full_valid_loss": 0.31,
        "train_mean_token_accuracy": 0.9,
        "valid_mean_token_accuracy": 0.88,
        "total_steps": 40,
        "unknown": "ignored",
    }
    assert metric_event_from_data(data) == MetricEvent(
        step=12,
        total_steps=40,
        train_loss=0.25,
        valid_loss=0.3,
        full_valid_loss=0.31,
        train_mean_token_accuracy=0.9,
        valid_mean_token_accuracy=0.88,
    )
    assert metric_event_from_data({"train_loss": 1.0}) is None


@given(
    st.lists(
        st.tuples(st.floats(0, 10, allow_nan=False), st.floats(0, 1, allow_nan=False)),
        min_size=1,
        max_size=30,
    )
)
def test_csv_round_trip(rows: list[tuple[float, float]]) -> None:
    """Any result table written as CSV parses back to the same steps and values."""
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    lines += [f"{i},{loss!r},{accuracy!r},," for i, (loss, accuracy) in enumerate(rows, 1)]
    events = parse_result_csv("\n".join(lines) + "\n")
    assert [(e.train_loss, e.train_mean_token_accuracy) for e in events] == rows
    assert {e.total_steps for e in events} == {len(rows)}


def test_plot_without_matplotlib_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib, plotting raises MissingDependencyError with the pip command."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match="pip install matplotlib"):
        plot_metrics([MetricEvent(step=1, train_loss=1.0)], tmp_path / "curves.png")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_plot_writes_a_png(drone: Path, tmp_path: Path) -> None:
    """With matplotlib, the loss and accuracy curves are written as a PNG."""
    target = plot_metrics(read_result_csv(drone), tmp_path / "curves.png", title="drone")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
