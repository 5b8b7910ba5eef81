"""ArticleToQA: extracted articles to one question-and-answer example per section."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.config import load_config
from finetune_web.errors import ConfigError
from finetune_web.pipeline import Pipeline
from finetune_web.plugins import Family, Registry
from finetune_web.records import Document, Example, Location, Message, Rejection
from finetune_web.testing import ListSource, check_transformer, run_step
from finetune_web.transforms.article_qa import ArticleToQA, article_sections

ARTICLE = """\
Electric kettles boil water quickly and switch themselves off.

## History ##

The first electric kettles appeared in the 1890s and took twelve minutes to boil.

### Early models

Early models kept the heating element in a separate compartment under the water.

## How do I descale a kettle?

- Fill it with equal parts vinegar and water.
- Boil, leave it for an hour, then rinse twice.

```
# a shell comment, not a heading
```

## C#

Too short.
"""


def _article(text: str = ARTICLE, **metadata: object) -> Document:
    meta: dict[str, object] = {
        "title": "Kettles",
        "url": "https://tea.example/kettles",
        "language": "en",
    }
    meta.update(metadata)
    return Document(
        id="kettles.html",
        text=text,
        metadata=meta,
        location=Location(origin="https://tea.example/kettles"),
    )


def _qa(example: Example) -> tuple[str, str]:
    return example.messages[-2].text, example.messages[-1].text


def test_one_example_per_section_with_ids_parent_and_metadata() -> None:
    """Each usable section becomes user question + assistant text, id doc#qa<position>."""
    outputs, metrics = run_step(ArticleToQA(), [_article()])
    examples = [o for o in outputs if isinstance(o, Example)]
    assert [_qa(e) for e in examples] == [
        ("What is Kettles?", "Electric kettles boil water quickly and switch themselves off."),
        (
            "What is History?",
            "The first electric kettles appeared in the 1890s and took twelve minutes to boil.",
        ),
        (
            "What is Early models?",
            "Early models kept the heating element in a separate compartment under the water.",
        ),
        (
            "How do I descale a kettle?",
            "- Fill it with equal parts vinegar and water.\n"
            "- Boil, leave it for an hour, then rinse twice.\n\n"
            "```\n# a shell comment, not a heading\n```",
        ),
    ]
    assert [e.id for e in examples] == [f"kettles.html#qa{n}" for n in range(4)]
    assert {e.parent_id for e in examples} == {"kettles.html"}
    assert examples[1].metadata == {
        "url": "https://tea.example/kettles",
        "title": "Kettles",
        "language": "en",
        "heading": "History",
        "level": 2,
    }
    assert examples[0].location == Location(origin="https://tea.example/kettles")
    assert all(m.role != "system" for e in examples for m in e.messages)
    assert metrics == {
        "article_qa.sections": 5,
        "article_qa.examples": 4,
        "article_qa.skipped_empty": 0,
        "article_qa.skipped_too_short": 1,
        "article_qa.skipped_too_long": 0,
        "article_qa.skipped_untitled": 0,
    }


def test_headings_parse_like_markdown() -> None:
    """Closing '#' runs go, '## C#' keeps its '#', '#tag' and fenced lines are no headings."""
    sections = article_sections("#tag line\n# One #\ntext\n## C#\n```\n# code\n```\n##\nend")
    assert [(s.heading, s.level, s.text) for s in sections] == [
        ("", 0, "#tag line"),
        ("One", 1, "text"),
        ("C#", 2, "```\n# code\n```"),
        ("", 2, "end"),
    ]


def test_subsections_option_nests_children_in_their_parent() -> None:
    """With subsections=True a section runs to the next heading of the same or higher level."""
    text = "# A\nintro a\n## B\nbody b\n### C\nbody c\n## D\nbody d\n# E\nbody e"
    flat = {s.heading: s.text for s in article_sections(text)}
    nested = {s.heading: s.text for s in article_sections(text, subsections=True)}
    assert flat == {"A": "intro a", "B": "body b", "C": "body c", "D": "body d", "E": "body e"}
    assert nested == {
        "A": "intro a\n## B\nbody b\n### C\nbody c\n## D\nbody d",
        "B": "body b\n### C\nbody c",
        "C": "body c",
        "D": "body d",
        "E": "body e",
    }


def test_question_template_system_and_title_context() -> None:
    """question and system fill {heading}, {title} and {url}; ':' after a heading is dropped."""
    step = ArticleToQA(
        question="In the article {title}, what is {heading}?",
        system="You answer questions about {title} ({url}).",
        min_chars=5,
        question_headings=False,
    )
    doc = _article("## Uses:\nBoiling water for tea.\n## Why?\nBecause it is fast.")
    examples = [o for o in step.transform([doc]) if isinstance(o, Example)]
    assert [[m.text for m in e.messages] for e in examples] == [
        [
            "You answer questions about Kettles (https://tea.example/kettles).",
            "In the article Kettles, what is Uses?",
            "Boiling water for tea.",
        ],
        [
            "You answer questions about Kettles (https://tea.example/kettles).",
            "In the article Kettles, what is Why??",
            "Because it is fast.",
        ],
    ]


def test_prompt_needing_an_absent_title_is_a_missing_field_rejection() -> None:
    """A prompt using {title} on an article without a title rejects it, naming the field."""
    doc = _article(title=None)
    (rejection,) = ArticleToQA(question="{title}: what is {heading}?").transform([doc])
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.details) == ("missing_field", {"fields": ["title"]})
    assert "https://tea.example/kettles" in rejection.message and rejection.record == ARTICLE


def test_lead_without_title_is_skipped_as_untitled() -> None:
    """Text before the first heading needs the article's title; lead=False skips it too."""
    text = "A lead paragraph that is long enough to be kept.\n# Body\nA body that is long enough."
    _, untitled = run_step(ArticleToQA(min_chars=10), [_article(text, title="  ")])
    _, no_lead = run_step(ArticleToQA(min_chars=10, lead=False), [_article(text)])
    assert untitled["article_qa.skipped_untitled"] == no_lead["article_qa.skipped_untitled"] == 1
    assert untitled["article_qa.examples"] == no_lead["article_qa.examples"] == 1


def test_max_chars_skips_long_sections_rather_than_cutting_them() -> None:
    """A section longer than max_chars is skipped whole and counted."""
    text = "# Short\n" + "x" * 50 + "\n# Long\n" + "y" * 500
    outputs, metrics = run_step(ArticleToQA(max_chars=100), [_article(text)])
    assert [_qa(o) for o in outputs if isinstance(o, Example)] == [("What is Short?", "x" * 50)]
    assert metrics["article_qa.skipped_too_long"] == 1


def test_article_without_usable_sections_is_one_no_sections_rejection() -> None:
    """No usable section: exactly one no_sections rejection with the counts and the limits."""
    doc = _article("# A\nshort\n# B\n\n# \nan untitled section of some length, long enough")
    outputs, metrics = run_step(ArticleToQA(lead=False), [doc])
    (rejection,) = outputs
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "no_sections" and rejection.record_id == "kettles.html"
    assert rejection.details == {
        "sections": 3,
        "skipped": {"empty": 1, "too_short": 1, "untitled": 1},
    }
    assert "min_chars=40" in rejection.message and "heading" in rejection.message
    assert metrics["article_qa.examples"] == 0

    (blank,), _ = run_step(ArticleToQA(), [_article("  \n\n")])
    assert isinstance(blank, Rejection) and blank.reason == "no_sections"
    assert "blank" in blank.message


def test_documents_without_text_and_examples_are_rejected() -> None:
    """A document without text is missing_field; an example is wrong_record_type."""
    example = Example(id="e", messages=[Message(role="user", content="hi")])
    outputs = list(ArticleToQA().transform([Document(id="d", data={"x": 1}), example]))
    assert [(r.record_id, r.reason) for r in outputs if isinstance(r, Rejection)] == [
        ("d", "missing_field"),
        ("e", "wrong_record_type"),
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"question": "Tell me more."},
        {"question": "What is {topic}?"},
        {"question": "What is {heading:>10}?"},
        {"question": "What is {heading"},
        {"system": "About {heading}"},
        {"min_chars": 0},
        {"min_chars": 100, "max_chars": 50},
    ],
)
def test_bad_options_fail_when_built(options: dict[str, object]) -> None:
    """Templates without {heading}, unknown placeholders and bad limits are ConfigErrors."""
    with pytest.raises(ConfigError):
        ArticleToQA(**options)  # type: ignore[arg-type]


def test_contract() -> None:
    """The step keeps the Transformer contract on articles with and without sections."""
    docs = [_article(), _article("no headings and no title", title=None), _article("")]
    docs = [Document(id=f"a{n}", text=d.text, metadata=d.metadata) for n, d in enumerate(docs)]
    outputs = check_transformer(ArticleToQA(), docs)
    assert [type(o).__name__ for o in outputs] == ["Example"] * 4 + ["Rejection"] * 2


def test_built_by_the_registry_and_from_toml(tmp_path: Path) -> None:
    """Registered under a name, the step is built from TOML options and runs in a pipeline."""
    registry = Registry.builtins().with_plugin(Family.TRANSFORMS, "article_qa", ArticleToQA)
    config = tmp_path / "qa.toml"
    config.write_text(
        '[source]\ntype = "json"\npath = "articles.json"\n\n'
        '[[steps]]\ntype = "article_qa"\nquestion = "Explain {heading}."\nmin_chars = 10\n'
        "max_chars = 2000\nsubsections = true\n",
        encoding="utf-8",
    )
    step = load_config(config, registry=registry).pipeline.steps[0]
    assert step == ArticleToQA(
        question="Explain {heading}.", min_chars=10, max_chars=2000, subsections=True
    )
    made = registry.create(Family.TRANSFORMS, "article_qa", {"lead": False})
    source = ListSource(
        [_article("# Tea\nTea is a drink made from the leaves of Camellia sinensis.")]
    )
    (example,) = Pipeline.from_source(source).then(made).stream()  # type: ignore[arg-type]
    assert isinstance(example, Example)
    assert _qa(example) == (
        "What is Tea?",
        "Tea is a drink made from the leaves of Camellia sinensis.",
    )


# --- property: every kept section is exactly one answer, in order, text intact -------------

_words = st.lists(
    st.sampled_from(["tea", "Kettle", "boils", "1890s,", "fast.", "why?", "it's"]),
    min_size=1,
    max_size=8,
).map(" ".join)
_paragraph = st.lists(
    st.one_of(_words, _words.map(lambda line: f"- {line}")), min_size=1, max_size=3
).map("\n".join)
_body = st.lists(_paragraph, max_size=3).map("\n\n".join)
_section = st.tuples(st.integers(1, 3), _words, _body)


@settings(max_examples=100, deadline=None)
@given(
    lead=_body,
    sections=st.lists(_section, max_size=8),
    min_chars=st.integers(1, 60),
    span=st.one_of(st.none(), st.integers(0, 200)),
)
def test_every_kept_section_is_exactly_one_answer(
    lead: str, sections: list[tuple[int, str, str]], min_chars: int, span: int | None
) -> None:
    """Random heading/section markdown: kept sections are the answers, in order, verbatim.

    Concatenating the answers gives back the concatenated texts of exactly the
    sections within the limits; every other section is counted as skipped.
    """
    max_chars = None if span is None else min_chars + span
    markdown = "\n\n".join(
        [lead] + [f"{'#' * level} {heading}\n\n{body}" for level, heading, body in sections]
    )
    step = ArticleToQA(min_chars=min_chars, max_chars=max_chars)
    outputs, metrics = run_step(step, [_article(markdown)])
    expected = [("Kettles", lead)] + [(heading, body) for _, heading, body in sections]
    kept = [
        (heading, body.strip())
        for heading, body in expected
        if body.strip()
        and len(body.strip()) >= min_chars
        and (max_chars is None or len(body.strip()) <= max_chars)
    ]
    examples = [o for o in outputs if isinstance(o, Example)]
    assert [(e.metadata["heading"], e.messages[-1].text) for e in examples] == kept
    assert "".join(e.messages[-1].text for e in examples) == "".join(body for _, body in kept)
    skipped = sum(v for k, v in metrics.items() if k.startswith("article_qa.skipped_"))
    assert skipped + len(examples) == metrics["article_qa.sections"]
    assert len(examples) == metrics["article_qa.examples"]
    if not kept:
        assert [(type(o), o.reason) for o in outputs] == [(Rejection, "no_sections")]  # type: ignore[union-attr]
