"""Read openai/evals samples (``{"input": [...], "ideal": ...}`` JSON Lines) as examples."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetune_web._types import StrPath
from finetune_web.errors import ErrorContext, RecordError, SourceError
from finetune_web.records import Example, Location, Message

__all__ = ["load_evals_jsonl"]

_MESSAGE_KEYS = frozenset(("role", "content", "name"))


def _messages(value: Any, context: ErrorContext) -> list[Message]:
    if isinstance(value, str):
        return [Message(role="user", content=value)]
    if not isinstance(value, list) or not value:
        raise RecordError(
            '"input" must be a prompt string or a non-empty list of chat messages',
            context,
            reason="invalid_input",
        )
    messages = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("content"), str):
            raise RecordError(
                f'every "input" message needs a role and a text content; got {item!r:.80}',
                context,
                reason="invalid_input",
            )
        try:
            messages.append(Message(**{k: v for k, v in item.items() if k in _MESSAGE_KEYS}))
        except (TypeError, ValueError) as exc:
            raise RecordError(f"invalid message: {exc}", context, reason="invalid_input") from exc
    return messages


def _ideal(value: Any, context: ErrorContext) -> list[str]:
    ideal = [value] if isinstance(value, str) else value
    if not isinstance(ideal, list) or not ideal or not all(isinstance(i, str) for i in ideal):
        raise RecordError(
            '"ideal" must be a string or a non-empty list of strings',
            context,
            reason="invalid_ideal",
        )
    return ideal


def load_evals_jsonl(path: StrPath) -> list[Example]:
    """Read an openai/evals samples file into evaluation examples.

    Each line ``{"input": [messages] | "prompt", "ideal": "answer" | [answers]}``
    becomes an :class:`~finetune_web.records.Example` whose messages are the
    input followed by the (first) ideal answer as the assistant message; a
    list of ideal answers is kept in ``metadata["ideal"]``, and the exact
    match and text metrics accept any of them.  Blank lines are skipped;
    other keys of a sample go to ``metadata``.

    Args:
        path: the ``.jsonl`` file.

    Returns:
        The examples, with ids ``<file name>#<index>`` and their file locations.

    Raises:
        SourceError: the file cannot be read.
        RecordError: a line is not a valid sample (the error names the line).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"cannot read the evals file: {exc}", ErrorContext(path=str(path))
        ) from exc
    examples: list[Example] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        index = len(examples)
        context = ErrorContext(path=str(path), line=line_number, index=index)
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"invalid JSON: {exc.msg}", context, reason="invalid_json") from exc
        if not isinstance(sample, dict) or "input" not in sample or "ideal" not in sample:
            raise RecordError(
                'an evals sample is a JSON object with "input" and "ideal"',
                context,
                reason="missing_field",
            )
        ideal = _ideal(sample["ideal"], context)
        metadata = {k: v for k, v in sample.items() if k not in ("input", "ideal")}
        if len(ideal) > 1:
            metadata["ideal"] = ideal
        examples.append(
            Example(
                messages=[
                    *_messages(sample["input"], context),
                    Message(role="assistant", content=ideal[0]),
                ],
                id=f"{source.name}#{index}",
                metadata=metadata,
                location=Location(origin=str(path), line=line_number, index=index),
            )
        )
    return examples
