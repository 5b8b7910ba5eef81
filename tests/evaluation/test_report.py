"""The report: Markdown, and self-contained escaped HTML with plots, curves and worst examples."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from finetune_web.evaluation import (
    Comparison,
    ExactMatchEvaluator,
    MultipleChoiceEvaluator,
    compare,
    render_html,
    render_markdown,
    worst_examples,
    write_report,
)
from finetune_web.records import Example, Message, MetricEvent
from finetune_web.testing import ScriptedChatModel

HOSTILE = '<script>alert("x")</script> & ``` fence'


def _examples() -> list[Example]:
    return [
        Example(
            messages=[
                Message(role="user", content=f"Question {n} <b>bold</b>?"),
                Message(role="assistant", content="ABCDE"[n % 5]),
            ],
            id=f"row-{n}",
        )
        for n in range(12)
    ]


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    """Base right on 6 of 12, tuned right on 9 but answering one question with hostile text."""
    examples = _examples()
    prompts = [e.messages[0].text for e in examples]
    ideals = [e.messages[1].text for e in examples]
    base = ScriptedChatModel(
        answers={
            p: (i if n < 6 else "E" if i != "E" else "A")
            for n, (p, i) in enumerate(zip(prompts, ideals, strict=True))
        },
        model_id="base <model>",
    )
    tuned_answers = dict(zip(prompts, ideals, strict=True))
    tuned_answers[prompts[0]] = HOSTILE
    tuned_answers[prompts[10]] = tuned_answers[prompts[11]] = "no idea"
    tuned = ScriptedChatModel(answers=tuned_answers, model_id="tuned")
    return compare(
        base,
        tuned,
        examples,
        [MultipleChoiceEvaluator(), ExactMatchEvaluator()],
        seed=11,
        n_resamples=200,
        general=examples[:6],
    )


TRAINING = [
    MetricEvent(step=s, train_loss=2.0 / s, valid_loss=2.2 / s, train_mean_token_accuracy=0.5)
    for s in range(1, 11)
]


def test_html_is_self_contained_and_escapes_every_text(comparison: Comparison) -> None:
    """The page loads nothing and runs nothing; model output and ids are HTML-escaped."""
    page = render_html(comparison, training=TRAINING, worst=12)
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "base &lt;model&gt;" in page and "<b>bold</b>" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_html_holds_the_table_interval_and_plots(comparison: Comparison) -> None:
    """The metrics table, the interval, the distribution/win-loss plots and training curves."""
    page = render_html(comparison, training=TRAINING)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    # interval + 2 histograms + 2 per-example bars + loss + accuracy
    assert len(svgs) == 7
    for svg in svgs:
        ET.fromstring(svg)  # each plot is well-formed XML
    choice = comparison.metric("multiple_choice")
    assert f"{choice.difference:+.3f}" in page
    assert f"[{choice.interval.low:+.3f}, {choice.interval.high:+.3f}]" in page
    assert "training loss" in page and "mean token accuracy" in page
    assert "Knowledge retention" in page
    assert len(re.findall(r"<svg", render_html(comparison))) == 5  # no training curves


def test_worst_examples_rank_losses_first(comparison: Comparison) -> None:
    """Worst first: losses against the base, then examples both got wrong, in order."""
    worst = worst_examples(comparison, count=3)
    assert [sample.example_id for sample, _, _ in worst] == ["row-0", "row-10", "row-11"]
    assert [(base, tuned) for _, base, tuned in worst] == [(1.0, 0.0), (0.0, 0.0), (0.0, 0.0)]
    assert worst[0][0].tuned_output == HOSTILE


def test_markdown_has_the_table_and_fences_that_hold(comparison: Comparison) -> None:
    """Markdown: the table, retention verdict, training summary; fences outlast ``` in answers."""
    text = render_markdown(comparison, training=TRAINING, worst=2)
    assert "| multiple_choice |" in text and "## Knowledge retention" in text
    assert "| train_loss | 2.0000 | 0.2000 | 10 |" in text
    assert "````text\n" + HOSTILE + "\n````" in text


def test_write_report_writes_markdown_html_and_json(comparison: Comparison, tmp_path: Path) -> None:
    """write_report writes the three files; the JSON holds the figures of every metric."""
    files = write_report(comparison, tmp_path / "report", training=TRAINING, title="Demo")
    assert files.markdown.read_text().startswith("# Evaluation: Demo")
    assert "<title>Evaluation: Demo</title>" in files.html.read_text()
    summary = json.loads(files.json.read_text())
    assert [m["metric"] for m in summary["metrics"]] == ["multiple_choice", "exact_match"]
    assert summary == json.loads(json.dumps(comparison.to_json()))
