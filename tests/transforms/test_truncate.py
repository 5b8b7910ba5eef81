"""TruncateToTokens: fits the limit, keeps prefixes, never splits a character, idempotent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError, UnknownModelError
from finetune_web.formats.tokens import TokenCounter
from finetune_web.records import Document, Example, Message, Rejection, StepMetric, ToolCall
from finetune_web.testing import check_transformer
from finetune_web.transforms.truncate import TruncateToTokens, utf8_prefix

COUNTER = TokenCounter(encoding_name="o200k_base")

#: Text mixing ASCII words, accents, CJK, emoji (4-byte) and combining marks.
_WORDS = st.sampled_from(
    [
        "the ",
        "cat ",
        "é",
        "naïve ",
        "日本語",
        "テキスト",
        "😀",
        "👩‍💻",
        "e\u0301",
        "Ω",
        "\n",
        "  ",
        "x",
    ]
)
texts = st.lists(_WORDS, min_size=1, max_size=60).map("".join) | st.text(min_size=1, max_size=80)


@st.composite
def examples(draw: st.DrawFn) -> Example:
    """A chat example with an optional system prompt, turns, names and content parts."""
    messages = []
    if draw(st.booleans()):
        messages.append(Message(role="system", content=draw(texts)))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            content: object = draw(texts)
        else:
            parts = draw(st.lists(texts, min_size=1, max_size=3))
            content = [{"type": "text", "text": text} for text in parts]
        name = draw(st.none() | st.sampled_from(["ann", "bob"]))
        messages.append(Message(role="user", content=content, name=name))  # type: ignore[arg-type]
        messages.append(Message(role="assistant", content=draw(texts)))
    return Example(id="ex", messages=messages)


def _texts(example: Example) -> list[str]:
    """Every message's text, part by part, in order."""
    out = []
    for message in example.messages:
        if isinstance(message.content, tuple):
            out.extend(str(part.get("text", "")) for part in message.content)
        else:
            out.append(message.text)
    return out


def _run(step: TruncateToTokens, example: Example) -> Example | Rejection:
    (item,) = [i for i in step.transform([example]) if not isinstance(i, StepMetric)]
    assert isinstance(item, Example | Rejection)
    return item


def _without_cuttable(example: Example, *, assistant: bool) -> int:
    """Token count with every text this step may cut emptied."""
    messages = []
    for message in example.messages:
        cuttable = message.role != "assistant" or assistant
        if cuttable and isinstance(message.content, str):
            message = Message(role=message.role, content="", name=message.name)
        elif cuttable and isinstance(message.content, tuple):
            parts = [{**part, "text": ""} for part in message.content]
            message = Message(role=message.role, content=parts, name=message.name)
        messages.append(message)
    return COUNTER.count_example(Example(messages=messages)).total


def _is_char_prefix(cut: str, original: str) -> bool:
    """``cut`` is a prefix of ``original`` in characters, checked on the UTF-8 bytes."""
    data, whole = cut.encode("utf-8"), original.encode("utf-8")
    boundary = len(data) == len(whole) or whole[len(data)] & 0xC0 != 0x80
    return whole.startswith(data) and boundary and original.startswith(cut)


@settings(deadline=None, max_examples=150)
@given(example=examples(), share=st.floats(-0.1, 1.2), keep=st.booleans())
def test_output_fits_keeps_prefixes_and_never_splits_a_character(
    example: Example, share: float, keep: bool
) -> None:
    """A kept example fits the limit and every text is a character-level prefix of the original.

    Also: an example already within the limit comes back as the same object;
    assistant texts are untouched under keep_assistant; a rejection happens
    only when emptying every cuttable text would still not fit; running the
    step again on its output changes nothing (idempotent).  The limit is
    drawn between the uncuttable tokens (``share`` 0) and the whole example
    (``share`` 1), and a little beyond both.
    """
    before = COUNTER.count_example(example).total
    floor = _without_cuttable(example, assistant=not keep)
    limit = max(1, floor + round(share * (before - floor)))
    step = TruncateToTokens(max_tokens=limit, keep_assistant=keep)
    out = _run(step, example)
    if isinstance(out, Rejection):
        assert out.reason == "cannot_fit"
        assert out.details == {"tokens": before, "limit": limit}
        assert _without_cuttable(example, assistant=not keep) > limit
        return
    assert COUNTER.count_example(out).total <= limit
    if before <= limit:
        assert out is example
    for message, original in zip(out.messages, example.messages, strict=True):
        assert (message.role, message.name) == (original.role, original.name)
        if keep and message.role == "assistant":
            assert message == original
    for cut, original in zip(_texts(out), _texts(example), strict=True):
        cut.encode("utf-8")  # valid UTF-8: no lone surrogate
        assert _is_char_prefix(cut, original)
    assert _run(step, out) is out


@settings(deadline=None, max_examples=60)
@given(example=examples(), share=st.floats(0.0, 1.0))
def test_marker_is_appended_to_cut_texts_and_still_fits(example: Example, share: float) -> None:
    """With a marker, each changed text is a prefix plus the marker (or empty) and fits."""
    before = COUNTER.count_example(example).total
    floor = _without_cuttable(example, assistant=False)
    limit = max(1, floor + round(share * (before - floor)))
    step = TruncateToTokens(max_tokens=limit, marker=" [...]")
    out = _run(step, example)
    if isinstance(out, Rejection):
        return
    assert COUNTER.count_example(out).total <= limit
    for cut, original in zip(_texts(out), _texts(example), strict=True):
        if cut != original:
            assert cut == "" or (
                cut.endswith(" [...]") and _is_char_prefix(cut.removesuffix(" [...]"), original)
            )


def test_longest_text_is_cut_first() -> None:
    """A long system prompt is cut before a short user message, which stays whole."""
    example = Example(
        id="e",
        messages=[
            Message(role="system", content="rule " * 300),
            Message(role="user", content="What is 2+2?"),
            Message(role="assistant", content="4"),
        ],
    )
    out = _run(TruncateToTokens(max_tokens=100), example)
    assert isinstance(out, Example)
    assert out.messages[1:] == example.messages[1:]
    assert COUNTER.count_example(out).total == 100
    assert out.messages[0].text.startswith("rule rule")


def test_cuts_share_the_budget_like_water_filling() -> None:
    """Two long texts are cut to about the same length; a short third is left whole."""
    example = Example(
        id="e",
        messages=[
            Message(role="system", content="alpha " * 200),
            Message(role="user", content="beta " * 300),
            Message(role="user", content="short"),
            Message(role="assistant", content="ok"),
        ],
    )
    out = _run(TruncateToTokens(max_tokens=150), example)
    assert isinstance(out, Example)
    first, second = (COUNTER.count_text(m.text) for m in out.messages[:2])
    assert abs(first - second) <= 2
    assert out.messages[2] == example.messages[2]


def test_assistant_is_cut_last_when_allowed() -> None:
    """keep_assistant=False empties the other texts before cutting the answer."""
    example = Example(
        id="e",
        messages=[
            Message(role="user", content="question " * 20),
            Message(role="assistant", content="answer " * 100),
        ],
    )
    kept = _run(TruncateToTokens(max_tokens=40), example)
    assert isinstance(kept, Rejection)
    out = _run(TruncateToTokens(max_tokens=40, keep_assistant=False), example)
    assert isinstance(out, Example)
    assert out.messages[0].content == ""
    assert out.messages[1].text.startswith("answer answer")
    assert COUNTER.count_example(out).total <= 40


def test_model_limit_is_the_services_per_example_limit() -> None:
    """model= uses the model's limit and counter: gpt-3.5-turbo-0613 allows 4,096 tokens."""
    step = TruncateToTokens(model="gpt-3.5-turbo-0613")
    assert step.limit == 4096
    counter = TokenCounter.for_model("gpt-3.5-turbo-0613")
    example = Example(
        id="e",
        messages=[
            Message(role="user", content="word " * 6000),
            Message(role="assistant", content="ok"),
        ],
    )
    out = _run(step, example)
    assert isinstance(out, Example)
    assert 4090 <= counter.count_example(out).total <= 4096
    assert TruncateToTokens(model="gpt-4o-mini").limit == 65_536
    assert TruncateToTokens(model="gpt-4o-mini", max_tokens=1000).limit == 1000


def test_tool_calls_names_and_tools_are_never_cut() -> None:
    """Only contents are cut: tool calls, tool-call ids, names and tools stay as they were."""
    call = ToolCall(id="call_1", name="lookup", arguments='{"q": "' + "x" * 50 + '"}')
    example = Example(
        id="e",
        messages=[
            Message(role="user", content="please " * 100, name="ann"),
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", content="result " * 100, tool_call_id="call_1"),
            Message(role="assistant", content="done"),
        ],
        tools=[{"type": "function", "function": {"name": "lookup"}}],
    )
    out = _run(TruncateToTokens(max_tokens=120), example)
    assert isinstance(out, Example)
    assert out.tools == example.tools
    assert out.messages[0].name == "ann"
    assert out.messages[1] == example.messages[1]
    assert out.messages[2].tool_call_id == "call_1"
    assert COUNTER.count_example(out).total <= 120


def test_rejections_and_metrics_in_a_stream() -> None:
    """cannot_fit and wrong_record_type rejections carry the record; metrics count the cuts."""
    fits = Example(id="a", messages=[Message(role="user", content="hi")])
    long = Example(id="b", messages=[Message(role="user", content="word " * 100)])
    hopeless = Example(id="c", messages=[Message(role="assistant", content="word " * 100)])
    document = Document(id="d", text="raw")
    items = list(TruncateToTokens(max_tokens=50).transform([fits, long, hopeless, document]))
    assert items[0] is fits
    assert isinstance(items[1], Example)
    assert items[1].id == "b"
    assert isinstance(items[2], Rejection)
    assert (items[2].reason, items[2].record) == ("cannot_fit", hopeless)
    assert items[2].details == {"tokens": COUNTER.count_example(hopeless).total, "limit": 50}
    assert "keep_assistant=False" in items[2].message
    assert isinstance(items[3], Rejection)
    assert items[3].reason == "wrong_record_type"
    removed = COUNTER.count_example(long).total - COUNTER.count_example(items[1]).total
    assert items[4:] == [
        StepMetric(name="truncate.examples_truncated", value=1),
        StepMetric(name="truncate.tokens_removed", value=removed),
    ]


def test_the_step_keeps_the_transformer_contract() -> None:
    """check_transformer passes: accounting, determinism, no state kept on the step."""
    records = [
        Example(id=f"e{i}", messages=[Message(role="user", content="token " * (i * 10 + 1))])
        for i in range(600)  # more than one counting batch
    ]
    outputs = check_transformer(TruncateToTokens(max_tokens=64), records)
    assert [o.id for o in outputs if isinstance(o, Example)] == [r.id for r in records]


def test_utf8_prefix_never_cuts_inside_a_character() -> None:
    """A byte budget ending inside a multi-byte character drops that character whole."""
    text = "a😀b"  # 1 + 4 + 1 bytes
    assert [utf8_prefix(text, n) for n in range(7)] == ["", "a", "a", "a", "a", "a😀", "a😀b"]
    assert utf8_prefix("日本", 5) == "日"
    assert utf8_prefix("abc", 99) == "abc"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ConfigError),
        ({"max_tokens": 0}, ConfigError),
        ({"model": "gpt-5-ultra"}, UnknownModelError),
        ({"model": "gpt-4o-mini", "encoding": "cl100k_base"}, ConfigError),
    ],
)
def test_bad_settings_are_refused_when_built(kwargs: dict[str, object], error: type) -> None:
    """No limit, a non-positive budget, an unknown model or a conflicting encoding fail early."""
    with pytest.raises(error):
        TruncateToTokens(**kwargs)  # type: ignore[arg-type]
