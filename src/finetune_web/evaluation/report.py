"""The comparison report: Markdown, and one self-contained HTML page with inline SVG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

import attrs

from finetune_web._types import StrPath
from finetune_web.evaluation import _svg
from finetune_web.evaluation.compare import Comparison, MetricComparison, SamplePair
from finetune_web.records import MetricEvent

__all__ = ["ReportFiles", "render_html", "render_markdown", "worst_examples", "write_report"]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;
padding:0 1em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;
vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.win{color:#2e7d32;font-weight:bold}.loss{color:#c62828;font-weight:bold}
.figures{display:flex;flex-wrap:wrap;gap:12px}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;max-height:18em;
overflow:auto}
.side td{width:33%}
"""


def _scale(metric: MetricComparison) -> float:
    return 100.0 if metric.tuned.details.get("scale") == 100 else 1.0


def _fmt(value: float, scale: float, *, sign: bool = False) -> str:
    digits = 2 if scale == 100.0 else 3
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _verdict(metric: MetricComparison) -> str:
    if not metric.significant:
        return "no (interval contains 0)"
    return "yes, better" if metric.improved else "yes, worse"


def _high(metric: MetricComparison) -> float:
    """The top of a metric's score range: 100, 1, or the largest score of an unbounded one."""
    if _scale(metric) == 100.0:
        return 100.0
    scores = [s for s in (*metric.base.per_example, *metric.tuned.per_example) if s is not None]
    return max([1.0, *scores])


def _pairs(metric: MetricComparison) -> list[tuple[int, float, float]]:
    return [
        (index, b, t)
        for index, (b, t) in enumerate(
            zip(metric.base.per_example, metric.tuned.per_example, strict=True)
        )
        if b is not None and t is not None
    ]


def worst_examples(
    comparison: Comparison, *, metric: str | None = None, count: int = 5
) -> list[tuple[SamplePair, float, float]]:
    """Return the examples where the tuned model did worst against the base.

    Sorted by the difference (tuned - base), then by the tuned score, lowest
    first; reversed for a metric where lower is better (a loss).

    Args:
        comparison: the comparison.
        metric: the metric to rank by (default: the first).
        count: how many to return.

    Returns:
        ``(sample, base score, tuned score)`` for each.
    """
    chosen = comparison.metric(metric) if metric is not None else comparison.metrics[0]
    sign = 1.0 if chosen.higher_is_better else -1.0
    ranked = sorted(
        _pairs(chosen), key=lambda item: (sign * (item[2] - item[1]), sign * item[2], item[0])
    )
    return [(comparison.samples[index], b, t) for index, b, t in ranked[:count]]


def _title(comparison: Comparison, title: str | None) -> str:
    return title or f"{comparison.tuned_model} vs {comparison.base_model}"


def _settings(comparison: Comparison) -> str:
    return (
        f"{len(comparison.samples)} examples; paired bootstrap, {comparison.n_resamples} "
        f"resamples, seed {comparison.seed}, {comparison.confidence:.0%} intervals"
    )


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}text\n{text}\n{ticks}"


_COLUMNS = (
    "metric",
    "base",
    "tuned",
    "difference",
    "interval",
    "significant",
    "wins / ties / losses",
)


def _cells(m: MetricComparison) -> list[str]:
    s = _scale(m)
    low, high = _fmt(m.interval.low, s, sign=True), _fmt(m.interval.high, s, sign=True)
    return [
        m.metric,
        _fmt(m.base.score, s),
        _fmt(m.tuned.score, s),
        _fmt(m.difference, s, sign=True),
        f"[{low}, {high}]",
        _verdict(m),
        f"{m.wins} / {m.ties} / {m.losses}",
    ]


def _md_table(comparison: Comparison) -> list[str]:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|---|---:|---:|---:|---|---|---|"]
    for m in comparison.metrics:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(m)) + " |")
    return lines


def _training_summary(training: Sequence[MetricEvent]) -> list[str]:
    ordered = sorted(training, key=lambda e: e.step)
    lines = ["| series | first | last | steps |", "|---|---:|---:|---:|"]
    for field in ("train_loss", "valid_loss", "train_mean_token_accuracy"):
        points = [(e.step, getattr(e, field)) for e in ordered if getattr(e, field) is not None]
        if points:
            lines.append(f"| {field} | {points[0][1]:.4f} | {points[-1][1]:.4f} | {len(points)} |")
    return lines


def render_markdown(
    comparison: Comparison,
    *,
    training: Sequence[MetricEvent] = (),
    worst: int = 5,
    title: str | None = None,
) -> str:
    """Render the comparison as Markdown (tables and the worst examples; no plots).

    Args:
        comparison: what :func:`~finetune_web.evaluation.compare` returned.
        training: the fine-tuning run's metric events, summarised when given.
        worst: how many worst examples to show.
        title: the heading (default: ``tuned vs base``).

    Returns:
        The Markdown text.
    """
    lines = [f"# Evaluation: {_title(comparison, title)}", "", _settings(comparison), ""]
    lines += _md_table(comparison)
    retention = comparison.retention
    if retention is not None:
        verdict = (
            f"**Regression** in {', '.join(retention.regressions)}"
            if retention.regressed
            else "No regression"
        )
        lines += ["", "## Knowledge retention (general held-out set)", "", verdict + "", ""]
        lines += _md_table(retention.comparison)
    if training:
        lines += ["", "## Training", "", *_training_summary(training)]
    if comparison.metrics and worst > 0:
        focus = comparison.metrics[0]
        lines += ["", f"## Worst examples ({focus.metric}, tuned - base)", ""]
        for sample, b, t in worst_examples(comparison, count=worst):
            s = _scale(focus)
            lines += [
                f"### {sample.example_id}: base {_fmt(b, s)}, tuned {_fmt(t, s)}",
                "",
                "Prompt:",
                _fence(sample.prompt),
                "Reference:",
                _fence(sample.reference),
                "Base:",
                _fence(sample.base_output or ""),
                "Tuned:",
                _fence(sample.tuned_output or ""),
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(comparison: Comparison) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in _COLUMNS)
    rows = []
    for m in comparison.metrics:
        change = ("win" if m.improved else "loss") if m.significant else ""
        classes = ("", "num", "num", f"num {change}", "num", "", "num")
        cells = (
            f'<td class="{css}">{escape(cell)}</td>'
            for css, cell in zip(classes, _cells(m), strict=True)
        )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _figures(comparison: Comparison, training: Sequence[MetricEvent]) -> list[str]:
    figures = [
        _svg.interval_rows(
            [
                (m.metric, m.difference, m.interval.low, m.interval.high, m.significant)
                for m in comparison.metrics
            ],
            title=f"difference tuned - base, {comparison.confidence:.0%} interval",
        )
    ]
    for m in comparison.metrics:
        pairs = _pairs(m)
        figures.append(
            _svg.histogram(
                [b for _, b, _ in pairs],
                [t for _, _, t in pairs],
                low=0.0,
                high=_high(m),
                title=f"{m.metric}: score distribution",
            )
        )
    for m in comparison.metrics:
        sign, label = (1.0, "tuned - base") if m.higher_is_better else (-1.0, "base - tuned")
        figures.append(
            _svg.sorted_bars(
                [sign * (t - b) for _, b, t in _pairs(m)],
                title=f"{m.metric}: per-example {label}",
            )
        )
    if training:
        ordered = sorted(training, key=lambda e: e.step)

        def series(field: str) -> list[tuple[float, float]]:
            return [(e.step, getattr(e, field)) for e in ordered if getattr(e, field) is not None]

        figures.append(
            _svg.line_chart(
                {"train": series("train_loss"), "validation": series("valid_loss")},
                title="training loss",
            )
        )
        figures.append(
            _svg.line_chart(
                {
                    "train": series("train_mean_token_accuracy"),
                    "validation": series("valid_mean_token_accuracy"),
                },
                title="mean token accuracy",
            )
        )
    return figures


def render_html(
    comparison: Comparison,
    *,
    training: Sequence[MetricEvent] = (),
    worst: int = 5,
    title: str | None = None,
) -> str:
    """Render the comparison as one self-contained HTML page (inline SVG, no scripts).

    Args:
        comparison: what :func:`~finetune_web.evaluation.compare` returned.
        training: the fine-tuning run's metric events, plotted when given.
        worst: how many worst examples to show side by side.
        title: the heading (default: ``tuned vs base``).

    Returns:
        The HTML text; every text from models and data is HTML-escaped.
    """
    heading = escape(f"Evaluation: {_title(comparison, title)}")
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{heading}</title>"
        f"<style>{_CSS}</style></head><body><h1>{heading}</h1>",
        f"<p>{escape(_settings(comparison))}</p>",
        _html_table(comparison),
    ]
    retention = comparison.retention
    if retention is not None:
        verdict = (
            f'<p class="loss">Regression in {escape(", ".join(retention.regressions))}</p>'
            if retention.regressed
            else "<p>No regression beyond the interval.</p>"
        )
        parts += ["<h2>Knowledge retention (general held-out set)</h2>", verdict]
        parts.append(_html_table(retention.comparison))
    parts.append('<h2>Plots</h2><div class="figures">')
    parts += _figures(comparison, training)
    parts.append("</div>")
    if comparison.metrics and worst > 0:
        focus = comparison.metrics[0]
        s = _scale(focus)
        parts.append(f"<h2>Worst examples ({escape(focus.metric)}, tuned - base)</h2>")
        for sample, b, t in worst_examples(comparison, count=worst):
            parts.append(
                f"<h3>{escape(sample.example_id)}: base {_fmt(b, s)}, tuned {_fmt(t, s)}</h3>"
                f"<pre>{escape(sample.prompt)}</pre><table class=side><tr><th>reference</th>"
                f"<th>base</th><th>tuned</th></tr><tr><td><pre>{escape(sample.reference)}</pre></td>"
                f"<td><pre>{escape(sample.base_output or '')}</pre></td>"
                f"<td><pre>{escape(sample.tuned_output or '')}</pre></td></tr></table>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)


@attrs.frozen(kw_only=True)
class ReportFiles:
    """The files :func:`write_report` wrote."""

    markdown: Path
    html: Path
    json: Path


def write_report(
    comparison: Comparison,
    directory: StrPath,
    *,
    training: Sequence[MetricEvent] = (),
    worst: int = 5,
    title: str | None = None,
    stem: str = "eval_report",
) -> ReportFiles:
    """Write ``<stem>.md``, ``<stem>.html`` and ``<stem>.json`` (the figures) into ``directory``.

    Args:
        comparison: what :func:`~finetune_web.evaluation.compare` returned.
        directory: the folder (created if missing).
        training: the fine-tuning run's metric events.
        worst: how many worst examples to show.
        title: the heading.
        stem: the files' name without suffix.

    Returns:
        The paths written.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        markdown=folder / f"{stem}.md", html=folder / f"{stem}.html", json=folder / f"{stem}.json"
    )
    markdown = render_markdown(comparison, training=training, worst=worst, title=title)
    files.markdown.write_text(markdown, encoding="utf-8")
    page = render_html(comparison, training=training, worst=worst, title=title)
    files.html.write_text(page, encoding="utf-8")
    files.json.write_text(json.dumps(comparison.to_json(), indent=2) + "\n", encoding="utf-8")
    return files
