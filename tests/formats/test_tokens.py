"""Tests for token counting, special-token detection and the tiktoken Tokenizer."""

from __future__ import annotations

import json
import pickle

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_web.errors import ConfigError
from finetune_web.formats import TiktokenTokenizer, TokenCounter
from finetune_web.interfaces import Tokenizer
from finetune_web.records import Example, Location, Message, Rejection, ToolCall
from tests.strategies import chat_examples


def _cookbook_count(encoding: tiktoken.Encoding, messages: list[dict[str, str]]) -> int:
    """The data-prep guide's formula, written out independently."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(encoding.encode(value))
            if key == "name":
                total += 1
    return total


def _example(*messages: Message, **kwargs: object) -> Example:
    return Example(messages=messages, **kwargs)  # type: ignore[arg-type]


PLAIN = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Héllo, wörld! 東京はどう?", "name": "alice"},
    {"role": "assistant", "content": "Fine."},
]


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_plain_messages_follow_the_cookbook_formula(encoding: str) -> None:
    """3 per message + encoded role/content/name + 1 per name + 3 priming, in both encodings."""
    counter = TokenCounter(encoding_name=encoding)
    example = _example(*(Message(**m) for m in PLAIN))  # type: ignore[arg-type]
    counted = counter.count_example(example)
    enc = tiktoken.get_encoding(encoding)
    assert counted.total == _cookbook_count(enc, PLAIN)
    assert counted.assistant == len(enc.encode("Fine."))
    assert counted.messages == 3


def test_weight_adds_nothing() -> None:
    """The weight flag is not text: an example counts the same with or without it."""
    counter = TokenCounter(encoding_name="o200k_base")
    plain = _example(Message(role="user", content="q"), Message(role="assistant", content="a"))
    weighted = _example(
        Message(role="user", content="q"), Message(role="assistant", content="a", weight=0)
    )
    assert counter.count_example(weighted) == counter.count_example(plain)


def test_tool_calls_tool_ids_and_tool_definitions_are_counted() -> None:
    """A call adds its encoded name and arguments; tool_call_id and tools JSON are encoded too."""
    counter = TokenCounter(encoding_name="o200k_base")
    enc = tiktoken.get_encoding("o200k_base")
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "W"}}]
    base = [Message(role="user", content="Weather?")]
    with_call = [
        *base,
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", content="sunny", tool_call_id="call_1"),
        Message(role="assistant", content="Sunny."),
    ]
    counted = counter.count_example(_example(*with_call, tools=tools))
    expected = _cookbook_count(
        enc,
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant"},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
            {"role": "assistant", "content": "Sunny."},
        ],
    )
    expected += len(enc.encode("get_weather")) + len(enc.encode('{"city": "Paris"}'))
    expected += len(enc.encode(json.dumps(tools, separators=(",", ":"))))
    assert counted.total == expected
    assistant = len(enc.encode("get_weather")) + len(enc.encode('{"city": "Paris"}'))
    assert counted.assistant == assistant + len(enc.encode("Sunny."))


def test_content_parts_count_their_text_only() -> None:
    """Text parts are encoded like plain content; an image part adds nothing."""
    counter = TokenCounter(encoding_name="o200k_base")
    parts = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": " this"},
    ]
    enc = tiktoken.get_encoding("o200k_base")
    with_parts = counter.count_example(
        _example(Message(role="user", content=parts), Message(role="assistant", content="A cat"))
    )
    with_empty = counter.count_example(
        _example(Message(role="user", content=""), Message(role="assistant", content="A cat"))
    )
    assert with_parts.total - with_empty.total == len(enc.encode("Describe")) + len(
        enc.encode(" this")
    )


def test_completion_template_counts_text_only() -> None:
    """Prompt/completion models count prompt + completion tokens with no message overhead."""
    counter = TokenCounter.for_model("davinci-002")
    enc = tiktoken.get_encoding("cl100k_base")
    example = _example(
        Message(role="user", content="2+2="), Message(role="assistant", content=" 4")
    )
    counted = counter.count_example(example)
    assert counted.total == len(enc.encode("2+2=")) + len(enc.encode(" 4"))
    assert counted.assistant == len(enc.encode(" 4"))


@settings(max_examples=40, deadline=None)
@given(st.lists(chat_examples(), min_size=1, max_size=6))
def test_batch_counts_equal_single_counts(examples: list[Example]) -> None:
    """Counting a batch gives exactly what counting each example alone gives."""
    counter = TokenCounter(encoding_name="o200k_base")
    assert counter.count_examples(examples) == [counter.count_example(e) for e in examples]


def test_count_stream_keeps_order_and_passes_rejections() -> None:
    """Rejections come out where they went in; examples are paired with their counts."""
    counter = TokenCounter(encoding_name="cl100k_base")
    examples = [
        _example(Message(role="user", content="q" * n), Message(role="assistant", content="a"))
        for n in range(1, 6)
    ]
    rejection = Rejection(record_id="x#2", step="read", reason="invalid_json", message="bad")
    stream: list[Example | Rejection] = [*examples[:2], rejection, *examples[2:]]
    out = list(counter.count_stream(stream, batch_size=2))
    assert out[2] is rejection
    pairs = [item for item in out if isinstance(item, tuple)]
    assert [pair[0] for pair in pairs] == examples
    assert [pair[1] for pair in pairs] == counter.count_examples(examples)


def test_counter_for_model_uses_the_table_encoding() -> None:
    """for_model picks the encoding from the table, also for fine-tuned names."""
    assert TokenCounter.for_model("gpt-4o-mini").encoding_name == "o200k_base"
    assert TokenCounter.for_model("ft:gpt-4.1-mini-2025-04-14:o:s:i").encoding_name == "o200k_base"
    assert TokenCounter.for_model("gpt-3.5-turbo-0613").encoding_name == "cl100k_base"


def test_unknown_encoding_is_a_config_error() -> None:
    """An encoding tiktoken does not know is refused when the counter is made."""
    with pytest.raises(ConfigError, match="unknown tiktoken encoding"):
        TokenCounter(encoding_name="o300k_base")


def test_counter_pickles_after_use() -> None:
    """The counter keeps no tiktoken object: it pickles and counts the same afterwards."""
    counter = TokenCounter(encoding_name="o200k_base")
    before = counter.count_text("hello world")
    copy = pickle.loads(pickle.dumps(counter))
    assert copy == counter
    assert copy.count_text("hello world") == before


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_find_special_tokens(encoding: str) -> None:
    """Scraped special tokens are found in both encodings, including <|fim_suffix|> on o200k."""
    counter = TokenCounter(encoding_name=encoding)
    text = "end <|endoftext|> middle <|fim_suffix|> and <|endoftext|> again"
    assert counter.find_special_tokens(text) == ("<|endoftext|>", "<|fim_suffix|>")
    assert counter.find_special_tokens("no markers here") == ()
    assert counter.find_special_tokens("a <|notatoken|> and <| endoftext |>") == ()


def test_find_special_tokens_in_example_looks_everywhere() -> None:
    """Special tokens in tool arguments, names of tools or content parts are found."""
    counter = TokenCounter(encoding_name="o200k_base")
    call = ToolCall(id="c", name="f", arguments='{"x": "<|endofprompt|>"}')
    example = _example(
        Message(role="user", content=[{"type": "text", "text": "<|fim_prefix|>"}]),
        Message(role="assistant", tool_calls=[call]),
        tools=[{"type": "function", "function": {"name": "f", "description": "<|endoftext|>"}}],
        location=Location(origin="x.jsonl", line=1, index=0),
    )
    assert counter.find_special_tokens_in(example) == (
        "<|endofprompt|>",
        "<|endoftext|>",
        "<|fim_prefix|>",
    )


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(["<|endoftext|>", "a<|fim_suffix|>b"]))
def test_tiktoken_tokenizer_round_trips(text: str) -> None:
    """TiktokenTokenizer is a Tokenizer and decode(encode(text)) == text, special strings too."""
    tokenizer = TiktokenTokenizer(name="o200k_base")
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_counter_exposes_its_tokenizer() -> None:
    """counter.tokenizer encodes like the counter counts."""
    counter = TokenCounter(encoding_name="cl100k_base")
    assert counter.tokenizer.name == "cl100k_base"
    assert len(counter.tokenizer.encode("some text here")) == counter.count_text("some text here")


def test_threaded_and_serial_encoding_agree() -> None:
    """Long texts take the threaded path; the counts equal single-threaded counting."""
    long_text = "Grüß dich, 東京! " * 400  # mean text length well above the threshold
    examples = [
        _example(
            Message(role="user", content=long_text * n), Message(role="assistant", content="ok")
        )
        for n in range(1, 6)
    ]
    threaded = TokenCounter(encoding_name="o200k_base", num_threads=2)
    serial = TokenCounter(encoding_name="o200k_base", num_threads=1)
    assert serial.count_examples(examples) == threaded.count_examples(examples)
    enc = tiktoken.get_encoding("o200k_base")
    assert threaded.count_examples(examples)[0].total == 3 + 2 * 3 + 2 + len(
        enc.encode(long_text)
    ) + len(enc.encode("ok"))
