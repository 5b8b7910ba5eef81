"""Small inline-SVG charts for the evaluation report (no plotting library needed).

Every function returns one ``<svg>`` element as text; every label passes
through :func:`html.escape`, so any text is safe to embed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

__all__ = [
    "BASE",
    "LOSS",
    "TUNED",
    "WIN",
    "histogram",
    "interval_rows",
    "line_chart",
    "sorted_bars",
]

BASE = "#4c78a8"
TUNED = "#f58518"
WIN = "#54a24b"
LOSS = "#e45756"
_GRID = "#d0d0d0"
_INK = "#333333"
_FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'
_SERIES = (BASE, TUNED, WIN, LOSS, "#b279a2", "#72b7b2")


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" {_FONT} font-weight="bold" '
        f'fill="{_INK}">{escape(title)}</text>'
    )
    return head + "".join(body) + "</svg>"


def _text(x: float, y: float, text: str, anchor: str = "middle", color: str = _INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {_FONT} '
        f'fill="{color}">{escape(text)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1.0) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{color}" stroke-width="{width}"/>'
    )


def _rect(x: float, y: float, w: float, h: float, color: str, opacity: float = 1.0) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{max(h, 0.0):.1f}" '
        f'fill="{color}" fill-opacity="{opacity}"/>'
    )


def _nice(value: float) -> str:
    return f"{value:.3g}"


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for label, color in items:
        out.append(_rect(x, y - 9, 10, 10, color))
        out.append(_text(x + 14, y, label, anchor="start"))
        x += 24 + 7 * len(label)
    return out


def interval_rows(rows: Sequence[tuple[str, float, float, float, bool]], *, title: str) -> str:
    """Draw each metric's difference with its interval, on its own axis centred on 0.

    Args:
        rows: ``(label, difference, low, high, significant)`` per metric.
        title: the chart title.
    """
    longest = max((len(row[0]) for row in rows), default=0)
    width, left, right, row_h = 640, max(120, 7 * longest + 20), 40, 44
    height = 40 + row_h * max(len(rows), 1) + 10
    body: list[str] = []
    span = width - left - right
    for number, (label, diff, low, high, significant) in enumerate(rows):
        y = 40 + row_h * number + row_h / 2
        reach = max(abs(low), abs(high), abs(diff)) * 1.15 or 1.0

        def x_of(value: float, reach: float = reach) -> float:
            return left + span * (value + reach) / (2 * reach)

        body.append(_line(left, y, left + span, y, _GRID))
        body.append(_line(x_of(0.0), y - 14, x_of(0.0), y + 14, _INK))
        color = (WIN if diff > 0 else LOSS) if significant else "#888888"
        body.append(_line(x_of(low), y, x_of(high), y, color, 3.0))
        for end in (low, high):
            body.append(_line(x_of(end), y - 6, x_of(end), y + 6, color, 2.0))
        body.append(f'<circle cx="{x_of(diff):.1f}" cy="{y:.1f}" r="5" fill="{color}"/>')
        body.append(_text(left - 8, y + 4, label, anchor="end"))
        body.append(_text(x_of(diff), y - 10, f"{diff:+.3g} [{low:+.3g}, {high:+.3g}]"))
    return _svg(width, height, body, title)


def histogram(
    base: Sequence[float], tuned: Sequence[float], *, low: float, high: float, title: str
) -> str:
    """Draw the score distributions of both models side by side, in ten bins.

    Args:
        base: the base model's per-example scores.
        tuned: the tuned model's per-example scores.
        low: the lowest possible score.
        high: the highest possible score.
        title: the chart title.
    """
    width, height, left, bottom, top = 320, 220, 40, 40, 36
    bins = 10
    edge = (high - low) or 1.0

    def counts(values: Sequence[float]) -> list[int]:
        out = [0] * bins
        for value in values:
            out[min(bins - 1, max(0, int((value - low) / edge * bins)))] += 1
        return out

    series = counts(base), counts(tuned)
    peak = max([*series[0], *series[1], 1])
    plot_w, plot_h = width - left - 20, height - top - bottom
    slot = plot_w / bins
    body = [_line(left, top + plot_h, left + plot_w, top + plot_h, _INK)]
    for k in range(bins):
        for side, (values, color) in enumerate(zip(series, (BASE, TUNED), strict=True)):
            h = plot_h * values[k] / peak
            body.append(
                _rect(
                    left + k * slot + 2 + side * (slot - 4) / 2,
                    top + plot_h - h,
                    (slot - 4) / 2,
                    h,
                    color,
                )
            )
    for k in range(0, bins + 1, 5):
        body.append(_text(left + k * slot, top + plot_h + 14, _nice(low + edge * k / bins)))
    body.append(_text(left - 6, top + 10, str(peak), anchor="end"))
    body.append(_text(left - 6, top + plot_h, "0", anchor="end"))
    body.extend(_legend(left, height - 8, (("base", BASE), ("tuned", TUNED))))
    return _svg(width, height, body, title)


def sorted_bars(differences: Sequence[float], *, title: str) -> str:
    """Draw per-example differences (tuned - base), sorted: wins up in green, losses down in red.

    Args:
        differences: one difference per example.
        title: the chart title.
    """
    width, height, left, top, bottom = 640, 200, 40, 30, 30
    plot_w, plot_h = width - left - 10, height - top - bottom
    ordered = sorted(differences)
    reach = max((abs(d) for d in ordered), default=0.0) or 1.0
    zero = top + plot_h / 2
    slot = plot_w / max(len(ordered), 1)
    body = [_line(left, zero, left + plot_w, zero, _INK)]
    for k, diff in enumerate(ordered):
        h = plot_h / 2 * abs(diff) / reach
        if diff != 0:
            y = zero - h if diff > 0 else zero
            body.append(
                _rect(left + k * slot, y, max(slot - 0.5, 0.6), h, WIN if diff > 0 else LOSS)
            )
    wins = sum(1 for d in ordered if d > 0)
    losses = sum(1 for d in ordered if d < 0)
    ties = len(ordered) - wins - losses
    body.append(_text(left - 6, top + 10, f"+{_nice(reach)}", anchor="end"))
    body.append(_text(left - 6, top + plot_h, f"-{_nice(reach)}", anchor="end"))
    body.append(
        _text(
            width / 2, height - 8, f"{wins} wins · {ties} ties · {losses} losses (examples sorted)"
        )
    )
    return _svg(width, height, body, title)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str) -> str:
    """Draw lines of (x, y) points, e.g. a training loss against the step.

    Args:
        series: label -> points; empty series are left out.
        title: the chart title.
    """
    width, height, left, top, bottom = 320, 220, 48, 36, 40
    plot_w, plot_h = width - left - 20, height - top - bottom
    shown = {label: points for label, points in series.items() if points}
    xs = [x for points in shown.values() for x, _ in points] or [0.0, 1.0]
    ys = [y for points in shown.values() for _, y in points if math.isfinite(y)] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    body = [
        _line(left, top + plot_h, left + plot_w, top + plot_h, _INK),
        _line(left, top, left, top + plot_h, _INK),
        _text(left - 4, top + 8, _nice(y1), anchor="end"),
        _text(left - 4, top + plot_h, _nice(y0), anchor="end"),
        _text(left, top + plot_h + 14, _nice(x0)),
        _text(left + plot_w, top + plot_h + 14, _nice(x1)),
    ]
    legend = []
    for number, (label, points) in enumerate(shown.items()):
        color = _SERIES[number % len(_SERIES)]
        path = " ".join(
            f"{left + plot_w * (x - x0) / (x1 - x0):.1f},{top + plot_h * (y1 - y) / (y1 - y0):.1f}"
            for x, y in points
            if math.isfinite(y)
        )
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        legend.append((label, color))
    body.extend(_legend(left, height - 8, legend))
    return _svg(width, height, body, title)
