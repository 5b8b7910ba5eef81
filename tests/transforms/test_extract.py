"""Tests for ExtractMainText: HTML pages in, main text as light markdown out."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError, MissingDependencyError
from finetune_web.records import Document, Example, Location, Message, Rejection, StepMetric
from finetune_web.testing import check_transformer
from finetune_web.transforms.extract import ExtractMainText
from tests.conftest import REPO_ROOT

pytest.importorskip("trafilatura", reason="the web extra (trafilatura) is not installed")

SAMPLE_PAGES = 6

LOREM = (
    "The river valley was settled in the twelfth century by farmers who drained the marshes, "
    "built stone terraces along the slopes and planted vineyards that still give the region "
    "its name. "
)


def _scorer() -> ModuleType:
    """Load benchmarks/extraction.py (the benchmark's shingle-F1 scorer) by path."""
    path = REPO_ROOT / "benchmarks" / "extraction.py"
    spec = importlib.util.spec_from_file_location("extraction_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _page(body: str, head: str = "", html_attrs: str = ' lang="en"') -> str:
    return (
        f"<!DOCTYPE html><html{html_attrs}><head><meta charset='utf-8'>{head}</head><body>"
        "<nav><a href='/'>Home</a> | <a href='/news'>News</a> | <a href='/about'>About</a></nav>"
        f"<main><article>{body}</article></main>"
        "<footer>Copyright 2024 Example Media. All rights reserved.</footer></body></html>"
    )


ARTICLE = _page(
    "<h1>The valley and its vineyards</h1>"
    f"<p>{LOREM * 2}</p>"
    "<h2>How the terraces were built</h2>"
    f"<p>{LOREM}</p>"
    "<ul><li>Stone walls one metre high</li><li>Drains under every third row</li></ul>"
    "<h3>What grows there today</h3>"
    f"<p>{LOREM}</p>"
    "<ol><li>Riesling on the steepest slopes</li><li>Pinot noir near the river</li></ol>",
    head=(
        "<title>The valley and its vineyards | Example Media</title>"
        '<link rel="canonical" href="https://news.example.com/valley-vineyards">'
        '<meta property="article:published_time" content="2021-03-04T10:00:00Z">'
    ),
)


def _run(step: ExtractMainText, *records: Any) -> list[Any]:
    return [item for item in step.transform(records) if not isinstance(item, StepMetric)]


def _one(step: ExtractMainText, record: Any) -> Any:
    (item,) = _run(step, record)
    return item


def test_headings_and_lists_become_markdown_lines() -> None:
    """Headings keep their level as '#' marks, list items become '- ' lines, blank lines between."""
    out = _one(ExtractMainText(), Document(id="p1", text=ARTICLE))
    assert isinstance(out, Document)
    lines = out.text.splitlines()
    assert "## How the terraces were built" in lines
    assert "### What grows there today" in lines
    assert "- Stone walls one metre high" in lines
    assert "- Drains under every third row" in lines
    assert "- Riesling on the steepest slopes" in lines
    assert "\n\n## How the terraces were built\n\n" in out.text
    assert "Home" not in out.text and "Copyright" not in out.text


def test_text_output_has_the_same_blocks_without_markers() -> None:
    """output='text' writes the same blocks with no '#' or '- ' markers."""
    out = _one(ExtractMainText(output="text"), Document(id="p1", text=ARTICLE))
    lines = out.text.splitlines()
    assert "How the terraces were built" in lines
    assert "Stone walls one metre high" in lines
    assert not any(line.startswith(("#", "- ")) for line in lines)


def test_metadata_from_a_hand_written_page() -> None:
    """Title, ISO date, language, canonical URL and extractor are added; input metadata stays."""
    import trafilatura

    out = _one(ExtractMainText(), Document(id="p1", text=ARTICLE, metadata={"status": 200}))
    assert out.id == "p1"
    assert out.metadata == {
        "status": 200,
        "title": "The valley and its vineyards",
        "date": "2021-03-04",
        "language": "en",
        "url": "https://news.example.com/valley-vineyards",
        "extractor": f"trafilatura {trafilatura.__version__}",
    }


def test_the_input_url_wins_over_the_canonical_one() -> None:
    """A document's own metadata 'url' is kept as the output's url."""
    doc = Document(id="p1", text=ARTICLE, metadata={"url": "https://mirror.example.org/v"})
    out = _one(ExtractMainText(), doc)
    assert out.metadata["url"] == "https://mirror.example.org/v"


def test_language_from_html_lang_region_subtag_dropped() -> None:
    """<html lang='de-AT'> gives language 'de'; a page declaring none gives None."""
    body = f"<p>{LOREM * 3}</p>"
    german = _one(
        ExtractMainText(), Document(id="de", text=_page(body, html_attrs=' lang="de-AT"'))
    )
    unknown = _one(ExtractMainText(), Document(id="xx", text=_page(body, html_attrs="")))
    assert german.metadata["language"] == "de"
    assert unknown.metadata["language"] is None
    assert unknown.metadata["title"] is None


def test_broken_html_with_unclosed_tags_is_extracted() -> None:
    """Unclosed <p>, <div> and <li> tags and no </html> still give the article text."""
    broken = (
        "<html><head><title>Broken</title><body><div class='content'><h2>Notes from the field"
        f"<p>{LOREM}<p>{LOREM.upper()}<ul><li>first point<li>second point"
        f"<p>{LOREM.replace('river', 'lake')}"
    )
    out = _one(ExtractMainText(), Document(id="broken", text=broken))
    assert isinstance(out, Document)
    assert LOREM.strip() in out.text
    assert "lake valley" in out.text


@pytest.mark.parametrize(
    "text", ["", "   \n\t  ", "<html><head><title>x</title></head><body></body></html>"]
)
def test_an_empty_page_is_rejected(text: str) -> None:
    """A blank page, or HTML showing no text at all, is rejected as empty_page."""
    out = _one(ExtractMainText(), Document(id="blank", text=text))
    assert isinstance(out, Rejection)
    assert (out.record_id, out.reason, out.step) == ("blank", "empty_page", "extract")


@pytest.mark.parametrize(
    "text",
    [
        "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>",
        "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01",
        "\ufffdPNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "<html>" + "\x01\x02\x03\x04\x05abc" * 200,
    ],
)
def test_binary_content_is_rejected(text: str) -> None:
    """Bytes of a PDF or an image, or text full of control characters, give binary_content."""
    doc = Document(
        id="file.bin",
        text=text,
        metadata={"url": "https://x.example/f", "content_type": "application/octet-stream"},
    )
    out = _one(ExtractMainText(), doc)
    assert isinstance(out, Rejection)
    assert out.reason == "binary_content"
    assert "https://x.example/f" in out.message and "file.bin" in out.message
    assert out.details["content_type"] == "application/octet-stream"


def test_a_document_without_text_is_rejected_not_crashed() -> None:
    """A Document with text None (structured data) is a not_html rejection naming its location."""
    doc = Document(id="row-3", data={"title": "x"}, location=Location(origin="items.json", index=3))
    out = _one(ExtractMainText(), doc)
    assert isinstance(out, Rejection)
    assert out.reason == "not_html"
    assert out.location == Location(origin="items.json", index=3)
    assert "row-3" in out.message and "items.json" in out.message


@pytest.mark.parametrize(
    "record",
    [
        Example(id="ex", messages=[Message(role="user", content="<p>hello</p>")]),
        Document(id="plain", text="Just a plain sentence, no markup at all. " * 20),
        Document(id="json", text='{"html": "<p>looks like a page</p>", "n": 1}'),
    ],
)
def test_what_is_not_html_is_rejected(record: Any) -> None:
    """Examples, plain text and JSON are not_html rejections."""
    out = _one(ExtractMainText(), record)
    assert isinstance(out, Rejection)
    assert (out.record_id, out.reason) == (record.id, "not_html")


def test_a_page_with_too_little_main_text_is_rejected() -> None:
    """A page whose main text is shorter than min_chars is no_main_text; lowering it keeps it."""
    short = _page("<p>Only a short note: the shop is closed on Mondays.</p>")
    out = _one(ExtractMainText(), Document(id="short", text=short))
    assert isinstance(out, Rejection)
    assert out.reason == "no_main_text"
    assert out.details["min_chars"] == 200 and out.details["chars"] < 200
    kept = _one(ExtractMainText(min_chars=10), Document(id="short", text=short))
    assert isinstance(kept, Document)
    assert "closed on Mondays" in kept.text


def test_an_extractor_error_is_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception raised by trafilatura becomes extraction_failed with its text."""
    import trafilatura

    def boom(*_: object, **__: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(trafilatura, "bare_extraction", boom)
    out = _one(ExtractMainText(), Document(id="deep", text=ARTICLE))
    assert isinstance(out, Rejection)
    assert out.reason == "extraction_failed"
    assert "maximum recursion depth exceeded" in out.message
    assert out.details == {"error": "RecursionError: maximum recursion depth exceeded"}


def test_links_are_kept_only_when_asked() -> None:
    """include_links writes links as [text](url), resolved against the page's URL."""
    page = _page(f"<p>{LOREM} Read <a href='/history'>the full history</a> here. {LOREM}</p>")
    doc = Document(id="l", text=page, metadata={"url": "https://news.example.com/a"})
    plain = _one(ExtractMainText(), doc)
    linked = _one(ExtractMainText(include_links=True), doc)
    assert "Read the full history here." in plain.text
    assert "[the full history](https://news.example.com/history)" in linked.text


_TAGS = ("p", "div", "h2", "ul", "li", "table", "tr", "td", "pre", "a", "b", "br", "span", "ol")


@st.composite
def _tag_soup(draw: st.DrawFn) -> str:
    """HTML-like text: random tags (some left open) around random text, or any text at all."""
    if draw(st.booleans()):
        return draw(st.text(max_size=200))
    parts = ["<html><body>"]
    for _ in range(draw(st.integers(0, 12))):
        tag = draw(st.sampled_from(_TAGS))
        words = draw(st.text(max_size=80))
        parts.append(f"<{tag}>{words}" + (f"</{tag}>" if draw(st.booleans()) else ""))
    return "".join(parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_tag_soup(), min_size=1, max_size=3))
def test_any_text_leaves_once_as_a_page_or_a_rejection(texts: list[str]) -> None:
    """Whatever the text, each record leaves exactly once, in order, and never crashes the step."""
    docs = [Document(id=f"d{i}", text=text) for i, text in enumerate(texts)]
    outputs = _run(ExtractMainText(min_chars=0), *docs)
    ids = [o.record_id if isinstance(o, Rejection) else o.id for o in outputs]
    assert ids == [doc.id for doc in docs]
    for out in outputs:
        assert isinstance(out, Rejection) or out.text.strip()


def test_a_rejection_already_in_the_stream_passes_through() -> None:
    """A source's rejection read straight from the source is yielded unchanged, not re-rejected."""
    earlier = Rejection(record_id="e.html", step="html_files", reason="empty_body", message="x")
    assert _run(ExtractMainText(), earlier) == [earlier]


def test_step_metrics_count_pages_and_characters() -> None:
    """The step reports pages extracted and the HTML and text characters it saw."""
    items = list(ExtractMainText().transform([Document(id="a", text=ARTICLE), Document(id="b")]))
    totals: dict[str, float] = {}
    for item in items:
        if isinstance(item, StepMetric):
            totals[item.name] = totals.get(item.name, 0) + item.value
    text = next(i for i in items if isinstance(i, Document)).text
    assert totals == {
        "extract.pages": 1,
        "extract.html_chars": len(ARTICLE),
        "extract.text_chars": len(text),
    }


def test_contract_holds_on_good_and_bad_pages() -> None:
    """check_transformer passes: every input leaves once, same id, deterministic, picklable."""
    records = [
        Document(id="good", text=ARTICLE),
        Document(id="empty", text=""),
        Document(id="none"),
        Document(id="bin", text="%PDF-1.4 binary"),
        Document(id="short", text=_page("<p>tiny</p>")),
    ]
    outputs = check_transformer(ExtractMainText(), records)
    reasons = {o.record_id: o.reason for o in outputs if isinstance(o, Rejection)}
    assert reasons == {
        "empty": "empty_page",
        "none": "not_html",
        "bin": "binary_content",
        "short": "no_main_text",
    }
    assert [o.id for o in outputs if isinstance(o, Document)] == ["good"]


def test_options_are_checked() -> None:
    """Contradictory or invalid options raise ConfigError when the step is built."""
    with pytest.raises(ConfigError, match="exclude each other"):
        ExtractMainText(favor_precision=True, favor_recall=True)
    with pytest.raises(ConfigError, match="output"):
        ExtractMainText(output="html")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_chars"):
        ExtractMainText(min_chars=-1)


def test_a_missing_trafilatura_gives_the_pip_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without trafilatura the step raises MissingDependencyError naming the web extra."""
    monkeypatch.setitem(sys.modules, "trafilatura", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "finetune-web\[web\]"'):
        list(ExtractMainText().transform([Document(id="a", text=ARTICLE)]))


def test_the_scorer_reproduces_the_benchmark_figures(realdata: Path) -> None:
    """The shingle-F1 scorer gives the published F1 of the benchmark's stored outputs."""
    bench = _scorer()
    folder = realdata / "article_extraction_benchmark"
    gold = bench.load_gold(folder)
    stored = bench.stored_outputs(folder)
    figures = {
        name: round(bench.score(gold, texts)["f1"], 3) for name, (_, texts) in stored.items()
    }
    assert figures == {
        "html2text": 0.662,
        "justext": 0.804,
        "readability": 0.922,
        "trafilatura": 0.958,
    }


def test_real_pages_are_extracted_close_to_the_gold_text(realdata: Path) -> None:
    """On a sample of the benchmark's real pages the mean per-page shingle F1 exceeds 0.8."""
    bench = _scorer()
    folder = realdata / "article_extraction_benchmark"
    gold = bench.load_gold(folder)
    ids = sorted(gold)[:: len(gold) // SAMPLE_PAGES][:SAMPLE_PAGES]
    pages = bench.load_pages(folder, ids)
    docs = [Document(id=key, text=html) for key, html in pages.items()]
    outputs = _run(ExtractMainText(), *docs)
    assert [o.id for o in outputs] == ids
    scores = []
    for out in outputs:
        tp, fp, fn = bench.page_counts(gold[out.id], out.text)
        scores.append(2 * tp / (2 * tp + fp + fn))
    assert sum(scores) / len(scores) > 0.8
