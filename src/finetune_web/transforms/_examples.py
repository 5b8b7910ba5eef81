"""Shared pieces of the steps that turn documents into chat examples.

Used by :mod:`~finetune_web.transforms.article_qa`,
:mod:`~finetune_web.transforms.product` and
:mod:`~finetune_web.transforms.passages`: option validators, the check
of a ``str.format`` prompt template, the rejections of a document and of a record
that is not one, and the assembly of the messages of one example.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection
from typing import Any

import attrs

from finetune_web.errors import ConfigError
from finetune_web.records import Document, Message, Record, Rejection
from finetune_web.transforms._text import reject

__all__ = [
    "at_least",
    "chat_messages",
    "check_prompt",
    "not_a_document",
    "refuse",
]


def at_least(minimum: int) -> Callable[[object, attrs.Attribute[Any], int | None], None]:
    """Return an attrs validator: an integer option (or ``None``) is at least ``minimum``."""

    def check(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{attribute.name} must be an integer >= {minimum}, not {value!r}")

    return check


def check_prompt(
    option: str, template: str, *, allowed: Collection[str], required: Collection[str] = ()
) -> tuple[str, ...]:
    """Check a ``str.format`` template and return the placeholders it uses.

    Args:
        option: the option's name, for the error message.
        template: e.g. ``"What is {heading}?"``; ``{{`` and ``}}`` are literal braces.
        allowed: the placeholders the step fills.
        required: placeholders the template must use.

    Raises:
        ConfigError: a brace is unmatched, a placeholder is unknown or has a
            format spec, or a required one is absent.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{option} {template!r} is not a valid template ({exc}); "
            "write {{ or }} for a literal brace"
        ) from exc
    names: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            raise ConfigError(
                f"{option} {template!r} has placeholder {{{name}}}; "
                f"use only {', '.join('{' + a + '}' for a in sorted(allowed))}"
            )
        names.append(name)
    missing = sorted(set(required) - set(names))
    if missing:
        raise ConfigError(
            f"{option} {template!r} must use {', '.join('{' + m + '}' for m in missing)}"
        )
    return tuple(names)


def not_a_document(step: str, record: Record) -> Rejection:
    """Return the ``wrong_record_type`` rejection of an example or preference."""
    return reject(
        step,
        record,
        "wrong_record_type",
        f"{type(record).__name__} given; this step reads documents (put it before any step "
        "that makes examples)",
    )


def refuse(
    step: str, document: Document, reason: str, message: str, details: dict[str, Any]
) -> Rejection:
    """Return the rejection of ``document``, keeping its data (else its text) in ``record``.

    Args:
        step: the rejecting step's name.
        document: the document rejected.
        reason: the reason code.
        message: what is wrong and what to do (prefixed with the document's id and location).
        details: facts for the reader of the rejects file.
    """
    content = document.data if document.data is not None else document.text
    return attrs.evolve(reject(step, document, reason, message, details), record=content)


def chat_messages(system: str | None, user: str, assistant: str) -> tuple[Message, ...]:
    """Return ``system`` (when given and not empty), ``user`` and ``assistant`` messages."""
    messages = [Message(role="user", content=user), Message(role="assistant", content=assistant)]
    if system:
        messages.insert(0, Message(role="system", content=system))
    return tuple(messages)
