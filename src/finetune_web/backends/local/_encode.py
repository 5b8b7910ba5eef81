"""Chat examples to token ids, with labels on the assistant's tokens only.

The whole conversation is rendered once with the tokenizer's chat template
and tokenized once, so the ids are exactly those the model sees at
inference.  Each trained assistant turn is located as a character span:
it starts where the conversation up to it, rendered with the generation
prompt, ends, and it ends where the conversation including it ends.  A token
is trained on (its label is its id) when its characters fall in such a span;
every other token is labelled -100.  An assistant message with ``weight`` 0
is context only, as in OpenAI's chat fine-tuning format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from finetune_web.errors import ErrorContext, RecordError
from finetune_web.formats.chat import message_to_json
from finetune_web.records import Example, Message, Tokenized

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["IGNORE_INDEX", "ChatEncoder", "message_dicts"]

#: The label of a token that is not trained on.
IGNORE_INDEX = -100


def message_dicts(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Return ``messages`` as the plain dicts chat templates expect.

    They are the OpenAI JSON of each message, without ``weight`` (a training
    option, not part of the conversation) and with ``""`` for absent content.
    """
    rendered: list[dict[str, Any]] = []
    for message in messages:
        item = message_to_json(message)
        item.pop("weight", None)
        item.setdefault("content", "")
        rendered.append(item)
    return rendered


@attrs.frozen
class ChatEncoder:
    """Encodes chat examples with a Hugging Face tokenizer and its chat template.

    Attributes:
        tokenizer: a fast tokenizer (offsets are needed) with a chat template.
    """

    tokenizer: PreTrainedTokenizerBase = attrs.field(repr=False)

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        generation_prompt: bool = False,
    ) -> str:
        """Return the conversation as text, rendered with the chat template."""
        text = self.tokenizer.apply_chat_template(
            message_dicts(messages),
            tools=list(tools) if tools else None,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )
        if not isinstance(text, str):  # pragma: no cover - tokenize=False returns text
            raise TypeError(f"chat template returned {type(text).__name__}, not text")
        return text

    def encode(self, example: Example) -> Tokenized:
        """Return ``example`` as token ids with labels on its trained assistant turns.

        Raises:
            RecordError: reason ``no_assistant`` when no assistant message is
                trained on (all have weight 0, or there is none);
                ``template_mismatch`` when the chat template renders a
                conversation's beginning differently from the whole, so turns
                cannot be located.
        """
        messages = example.messages
        tools = example.tools
        full = self.render(messages, tools=tools)
        spans: list[tuple[int, int]] = []
        for index, message in enumerate(messages):
            if message.role != "assistant" or message.weight == 0:
                continue
            before = self.render(messages[:index], tools=tools, generation_prompt=True)
            through = self.render(messages[: index + 1], tools=tools)
            if not full.startswith(before) or not full.startswith(through):
                raise RecordError(
                    f"example {example.id}: the chat template renders the conversation up to "
                    f"message {index} differently from the whole conversation, so the "
                    "assistant's tokens cannot be located; use a template that renders "
                    "prefixes consistently",
                    ErrorContext(record_id=example.id),
                    reason="template_mismatch",
                )
            spans.append((len(before), len(through)))
        if not spans:
            raise RecordError(
                f"example {example.id} has no assistant message to train on "
                "(none, or all have weight 0)",
                ErrorContext(record_id=example.id),
                reason="no_assistant",
            )
        encoded = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(encoded["input_ids"])
        offsets: list[tuple[int, int]] = list(encoded["offset_mapping"])
        labels = [IGNORE_INDEX] * len(ids)
        span_index = 0
        for position, (start, end) in enumerate(offsets):
            while span_index < len(spans) and start >= spans[span_index][1]:
                span_index += 1
            if span_index == len(spans):
                break
            low, high = spans[span_index]
            if end > low and start < high:
                labels[position] = ids[position]
        return Tokenized(id=example.id, input_ids=ids, labels=labels)

    def encode_prompt(
        self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] | None = None
    ) -> list[int]:
        """Return the ids of ``messages`` followed by the assistant's generation prompt."""
        text = self.render(messages, tools=tools, generation_prompt=True)
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids
