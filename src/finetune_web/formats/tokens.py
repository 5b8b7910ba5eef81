"""Token counting for fine-tuning examples, as OpenAI's chat data-prep guide counts.

For a chat example the count is, per message, 3 tokens plus the encoded
length of its role, content and (when present) name, plus 1 more for a name;
then 3 tokens per example for the reply priming.  This reproduces the
numbers of OpenAI's ``Chat_finetuning_data_prep`` notebook exactly.

Beyond that notebook (OpenAI publishes no formula for these, so the counts
are an approximation):

- ``weight`` is a training flag, not text: it adds nothing.
- each tool call adds the encoded length of its function name and arguments;
  a tool message's ``tool_call_id`` is encoded like any other value.
- ``tools`` definitions add the encoded length of their compact JSON.
- content parts add the encoded length of each text part; images add nothing.

Prompt/completion examples (``template="completion"``) count only the
encoded prompt and completion, with no per-message overhead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence

import attrs
import tiktoken

from finetune_web._types import ROLES
from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.formats.models import ModelFormat, ModelSpec, resolve_model
from finetune_web.records import Example, Rejection

__all__ = [
    "OPENAI_SPECIAL_TOKENS",
    "ExampleTokens",
    "PreparedBatch",
    "TiktokenTokenizer",
    "TokenCounter",
    "example_texts",
]

#: Special-token strings that fail an OpenAI job whatever the model's encoding.
OPENAI_SPECIAL_TOKENS = frozenset(
    ("<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>")
)

#: Mean text length (characters) from which a batch is encoded on several threads.
_THREADED_MEAN_CHARS = 2048

_SPECIAL_SHAPE = re.compile(r"<\|[^<>|\s]{1,64}\|>")


def _load_encoding(name: str) -> tiktoken.Encoding:
    """Return a tiktoken encoding (tiktoken keeps its own cache of loaded encodings)."""
    try:
        return tiktoken.get_encoding(name)
    except (ValueError, OSError) as exc:
        raise ConfigError(
            f"cannot load tiktoken encoding {name!r}: {exc}. tiktoken downloads its BPE files on "
            "first use: run once with internet access, or set TIKTOKEN_CACHE_DIR to a folder "
            "that holds them",
            ErrorContext(source="tiktoken"),
        ) from exc


def _check_encoding(_: object, __: attrs.Attribute[str], value: str) -> None:
    known = tiktoken.list_encoding_names()
    if value not in known:
        raise ConfigError(f"unknown tiktoken encoding {value!r}; expected one of {sorted(known)}")


@attrs.frozen(kw_only=True)
class TiktokenTokenizer:
    """The :class:`~finetune_web.interfaces.Tokenizer` of a tiktoken encoding.

    ``encode`` treats special-token strings as plain text, so
    ``decode(encode(text)) == text`` for every string.

    Attributes:
        name: the encoding name, e.g. ``o200k_base``.
    """

    name: str = attrs.field(validator=_check_encoding)

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text``."""
        return _load_encoding(self.name).encode_ordinary(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Return the text of ``ids``."""
        return _load_encoding(self.name).decode(list(ids))


@attrs.frozen(kw_only=True)
class ExampleTokens:
    """Token counts of one example.

    Attributes:
        total: every token the service counts (and bills) for the example.
        assistant: tokens of the assistant messages' content and tool calls.
        messages: the number of messages.
    """

    total: int
    assistant: int
    messages: int


def _tools_json(example: Example) -> str | None:
    if not example.tools:
        return None
    return json.dumps(list(example.tools), ensure_ascii=False, separators=(",", ":"))


def _texts(example: Example) -> Iterator[tuple[str, bool]]:
    """Yield every text of an example that is encoded, with "is assistant output"."""
    for message in example.messages:
        mine = message.role == "assistant"
        content = message.content
        if isinstance(content, str):
            yield content, mine
        elif content is not None:
            for part in content:
                text = part.get("text")
                if isinstance(text, str):
                    yield text, mine
        if message.name is not None:
            yield message.name, False
        if message.tool_call_id is not None:
            yield message.tool_call_id, False
        for call in message.tool_calls:
            yield call.name, mine
            yield call.arguments, mine
    tools = _tools_json(example)
    if tools is not None:
        yield tools, False


def example_texts(example: Example) -> Iterator[str]:
    """Yield every text of an example that the tokenizer sees (roles excepted).

    Args:
        example: the example.

    Returns:
        Contents, text parts, names, tool-call ids, function names and
        arguments, and the compact JSON of the tool definitions.
    """
    for text, _ in _texts(example):
        yield text


@attrs.frozen(kw_only=True)
class PreparedBatch:
    """The texts of a batch of examples to encode, and how to add their counts up.

    Attributes:
        fixed: per example, the overhead tokens (message framing, reply priming).
        owners: per text, ``2 * example number`` plus 1 when it is assistant output.
        texts: the texts to encode, in order.
        messages: per example, its number of messages.
    """

    fixed: tuple[int, ...]
    owners: tuple[int, ...]
    texts: tuple[str, ...]
    messages: tuple[int, ...]

    def finish(self, lengths: Sequence[int]) -> list[ExampleTokens]:
        """Return each example's counts, given the token count of each text.

        Raises:
            ValueError: ``lengths`` does not match ``texts``.
        """
        totals = list(self.fixed)
        assistant = [0] * len(totals)
        for owner, count in zip(self.owners, lengths, strict=True):
            totals[owner >> 1] += count
            if owner & 1:
                assistant[owner >> 1] += count
        return [
            ExampleTokens(total=total, assistant=mine, messages=n)
            for total, mine, n in zip(totals, assistant, self.messages, strict=True)
        ]


@attrs.frozen(kw_only=True)
class TokenCounter:
    """Counts the tokens of fine-tuning examples with one tiktoken encoding.

    Build one with :meth:`for_model` (the usual way) or from an encoding name.
    The counter holds only names and numbers, so it pickles; the tiktoken
    encoding is loaded on first use.

    Attributes:
        encoding_name: the tiktoken encoding, e.g. ``o200k_base``.
        template: ``chat`` counts message overheads; ``completion`` counts text only.
        tokens_per_message: overhead of each chat message.
        tokens_per_name: extra overhead of a message with a ``name``.
        reply_priming: overhead of each chat example.
        num_threads: threads tiktoken uses to encode a batch.
    """

    encoding_name: str = attrs.field(validator=_check_encoding)
    template: ModelFormat = "chat"
    tokens_per_message: int = 3
    tokens_per_name: int = 1
    reply_priming: int = 3
    num_threads: int = 2

    @classmethod
    def for_model(cls, model: str | ModelSpec) -> TokenCounter:
        """Return the counter of a model (its encoding and file format).

        Raises:
            UnknownModelError: the model name is not in the model table.
        """
        spec = resolve_model(model) if isinstance(model, str) else model
        return cls(encoding_name=spec.encoding, template=spec.format)

    @property
    def encoding(self) -> tiktoken.Encoding:
        """The tiktoken encoding (loaded on first use).

        Raises:
            ConfigError: the encoding's files cannot be loaded.
        """
        return _load_encoding(self.encoding_name)

    @property
    def tokenizer(self) -> TiktokenTokenizer:
        """This counter's encoding as a :class:`~finetune_web.interfaces.Tokenizer`."""
        return TiktokenTokenizer(name=self.encoding_name)

    def count_text(self, text: str) -> int:
        """Return the number of tokens of ``text`` (special tokens counted as plain text)."""
        return len(self.encoding.encode_ordinary(text))

    def count_example(self, example: Example) -> ExampleTokens:
        """Return the token counts of one example."""
        return self.count_examples([example])[0]

    def count_examples(self, examples: Sequence[Example]) -> list[ExampleTokens]:
        """Return the token counts of a batch of examples, in order.

        The texts of the whole batch are gathered and encoded together, with
        ``num_threads`` threads (tiktoken's ``encode_ordinary_batch``) when
        they are long enough for threads to pay off.
        """
        batch = self.prepare(examples)
        return batch.finish(self._lengths(list(batch.texts)))

    def prepare(self, examples: Sequence[Example]) -> PreparedBatch:
        """Gather the texts of a batch to encode, and the fixed overheads of each example.

        Use it to encode elsewhere (e.g. in another process), then call
        :meth:`PreparedBatch.finish` with the token count of each text.
        """
        encoding = self.encoding
        chat = self.template == "chat"
        role_tokens = {role: len(encoding.encode_ordinary(role)) for role in ROLES}
        totals: list[int] = []
        texts: list[str] = []
        owners: list[int] = []  # 2 * example number, + 1 for assistant output
        for number, example in enumerate(examples):
            fixed = 0
            if chat:
                fixed = self.reply_priming
                for message in example.messages:
                    fixed += self.tokens_per_message + role_tokens[message.role]
                    if message.name is not None:
                        fixed += self.tokens_per_name
            totals.append(fixed)
            for text, mine in _texts(example):
                if text:
                    texts.append(text)
                    owners.append(2 * number + mine)
        return PreparedBatch(
            fixed=tuple(totals),
            owners=tuple(owners),
            texts=tuple(texts),
            messages=tuple(len(example.messages) for example in examples),
        )

    def _lengths(self, texts: list[str]) -> list[int]:
        """Return the token count of each text, threaded when the texts are long enough.

        tiktoken's ``encode_ordinary_batch`` runs one thread-pool task per
        text; for short texts that overhead costs more than the second thread
        gains, so those are encoded in this thread.
        """
        encoding = self.encoding
        chars = sum(map(len, texts))
        if self.num_threads > 1 and chars >= _THREADED_MEAN_CHARS * len(texts) > 0:
            encoded = encoding.encode_ordinary_batch(texts, num_threads=self.num_threads)
            return [len(tokens) for tokens in encoded]
        return [len(encoding.encode_ordinary(text)) for text in texts]

    def count_stream(
        self, records: Iterable[Example | Rejection], *, batch_size: int = 256
    ) -> Iterator[tuple[Example, ExampleTokens] | Rejection]:
        """Count a stream of examples in batches, passing rejections through in order.

        Args:
            records: examples and rejections, e.g. from a file reader.
            batch_size: examples encoded per tiktoken call; at most this many
                are held in memory.

        Returns:
            An iterator of ``(example, tokens)`` pairs and the rejections, in input order.
        """
        pending: list[Example | Rejection] = []
        examples: list[Example] = []
        for record in records:
            pending.append(record)
            if isinstance(record, Example):
                examples.append(record)
                if len(examples) >= batch_size:
                    yield from self._flush(pending, examples)
                    pending, examples = [], []
        yield from self._flush(pending, examples)

    def _flush(
        self, pending: list[Example | Rejection], examples: list[Example]
    ) -> Iterator[tuple[Example, ExampleTokens] | Rejection]:
        counts = iter(self.count_examples(examples))
        for record in pending:
            yield (record, next(counts)) if isinstance(record, Example) else record

    def find_special_tokens(self, text: str) -> tuple[str, ...]:
        """Return the special-token strings (e.g. ``<|endoftext|>``) found in ``text``.

        Both the encoding's own special tokens and :data:`OPENAI_SPECIAL_TOKENS`
        are looked for: scraped text holding one makes a fine-tuning job fail
        after upload.

        Returns:
            The distinct tokens found, sorted; ``()`` when there are none.
        """
        if "<|" not in text:
            return ()
        special = self.encoding.special_tokens_set | OPENAI_SPECIAL_TOKENS
        return tuple(sorted({token for token in _SPECIAL_SHAPE.findall(text) if token in special}))

    def find_special_tokens_in(self, example: Example) -> tuple[str, ...]:
        """Return the special-token strings found in any text of ``example``, sorted."""
        found: set[str] = set()
        for text, _ in _texts(example):
            if "<|" in text:
                found.update(self.find_special_tokens(text))
        return tuple(sorted(found))
