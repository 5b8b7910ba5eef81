"""Teacher-forced scoring with a local model: log-likelihoods of replies, token loss of examples.

Each request becomes one row (its tokens, with labels on the tokens to
score and -100 elsewhere); rows are sorted by length, batched under a token
budget, padded at the end and run through :func:`forward_packed`.  Padding
after a row's last token cannot change its logits (attention is causal), so
a row scores the same alone or in a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from finetune_web.backends.local._batches import collate, forward_packed, token_stats
from finetune_web.backends.local._encode import IGNORE_INDEX
from finetune_web.records import Example, Message, Pack

if TYPE_CHECKING:
    from finetune_web.backends.local._load import LoadedModel

__all__ = ["TokenStats", "continuation_row", "example_row", "score_rows"]

#: Per row: summed loss (negative log-likelihood) over labelled tokens, argmax hits, tokens.
TokenStats = tuple[float, int, int]


def _row(ids: Sequence[int], labels: Sequence[int], key: str) -> Pack:
    return Pack(input_ids=ids, labels=labels, position_ids=range(len(ids)), example_ids=(key,))


def continuation_row(
    loaded: LoadedModel, context: Sequence[Message], continuation: str, key: str
) -> Pack:
    """Return the row scoring ``continuation`` as the assistant's reply to ``context``.

    The context is rendered with the chat template and its generation
    prompt; context and continuation are tokenized together and split after
    the context's own token count (as lm-evaluation-harness does), so a
    token merging across the boundary is scored once, with the continuation.
    A row longer than the model accepts loses tokens from its start.
    """
    text = loaded.encoder.render(context, generation_prompt=True)
    tokenizer = loaded.tokenizer
    context_length = len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    whole = tokenizer(text + continuation, add_special_tokens=False, verbose=False)
    ids: list[int] = list(whole["input_ids"])
    context_length = min(context_length, len(ids))
    labels = [IGNORE_INDEX] * context_length + ids[context_length:]
    overflow = len(ids) - loaded.max_length
    if overflow > 0:
        ids, labels = ids[overflow:], labels[overflow:]
    return _row(ids, labels, key)


def example_row(loaded: LoadedModel, example: Example) -> Pack:
    """Return the row of a whole example, labelled on its trained assistant tokens.

    An example longer than the model accepts loses tokens from its start, so
    its last answer is still scored.

    Raises:
        RecordError: the example has no assistant message to score.
    """
    tokenized = loaded.encoder.encode(example)
    start = max(0, len(tokenized.input_ids) - loaded.max_length)
    return _row(tokenized.input_ids[start:], tokenized.labels[start:], example.id)


def score_rows(loaded: LoadedModel, rows: Sequence[Pack], *, batch_tokens: int) -> list[TokenStats]:
    """Return ``(loss sum, correct, count)`` for each row, in input order.

    Rows are batched longest first so that a batch holds at most
    ``batch_tokens`` tokens (padding included); a longer row runs alone.
    """
    import torch

    order = sorted(range(len(rows)), key=lambda index: -len(rows[index].input_ids))
    results: list[TokenStats | None] = [None] * len(rows)
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        # A batch is as wide as its first (longest) row.
        if current and (len(current) + 1) * len(rows[current[0]].input_ids) <= batch_tokens:
            current.append(index)
        else:
            batches.append([index])
    with torch.inference_mode():
        for batch in batches:
            tensors = collate([rows[i] for i in batch], pad_token_id=loaded.pad_id)
            tensors = {name: value.to(loaded.device) for name, value in tensors.items()}
            logits = forward_packed(loaded.model, tensors)
            for position, index in enumerate(batch):
                loss, correct, count = token_stats(
                    logits[position : position + 1], tensors["labels"][position : position + 1]
                )
                results[index] = (float(loss.item()), correct, count)
    return [result if result is not None else (0.0, 0, 0) for result in results]
