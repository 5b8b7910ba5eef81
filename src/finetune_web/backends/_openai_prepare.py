"""Write a run's training files and refuse to upload invalid ones.

Supervised runs write chat JSONL (prompt/completion JSONL for the legacy
babbage-002 / davinci-002), DPO runs write preference JSONL.  Every file is
validated with the foundation validator before anything is sent: a file
with errors raises :class:`~finetune_web.errors.ValidationError` listing
them, and warnings are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from finetune_web.errors import ConfigError, ErrorContext, UnknownModelError, ValidationError
from finetune_web.formats import (
    MIN_EXAMPLES,
    ValidationReport,
    preference_to_example,
    read_dpo_jsonl,
    resolve_model,
    validate_examples,
    validate_file,
    write_chat_jsonl,
    write_completion_jsonl,
    write_dpo_jsonl,
)
from finetune_web.records import Example, Preference, Rejection

__all__ = ["file_kind", "prepare_file", "write_training_file"]

log = logging.getLogger("finetune_web.backends.openai")


def file_kind(method: str, model: str) -> str:
    """Return the file format of a run: ``dpo``, ``completion`` (legacy models) or ``chat``."""
    if method == "dpo":
        return "dpo"
    try:
        return resolve_model(model).format
    except UnknownModelError:
        return "chat"  # prepare_file reports the unknown model with a hint


def _examples(records: Iterable[object], path: Path) -> Iterator[Example]:
    for record in records:
        if isinstance(record, Example):
            yield record
        elif isinstance(record, Preference):
            yield preference_to_example(record)
        else:
            raise ConfigError(
                f"supervised fine-tuning takes Example records, not {type(record).__name__}",
                ErrorContext(path=str(path)),
            )


def _preferences(records: Iterable[object], path: Path) -> Iterator[Preference]:
    for record in records:
        if not isinstance(record, Preference):
            raise ConfigError(
                f"DPO fine-tuning takes Preference records, not {type(record).__name__}",
                ErrorContext(path=str(path)),
            )
        yield record


def write_training_file(records: Iterable[object], path: Path, kind: str) -> int:
    """Write records as one training file.

    Args:
        records: examples (supervised) or preference pairs (DPO).
        path: the file to write (atomically).
        kind: ``chat``, ``completion`` or ``dpo``.

    Returns:
        The number of records written.

    Raises:
        ConfigError: a record of the wrong kind for the method.
    """
    if kind == "dpo":
        return write_dpo_jsonl(_preferences(records, path), path).count
    if kind == "completion":
        return write_completion_jsonl(_examples(records, path), path).count
    return write_chat_jsonl(_examples(records, path), path).count


def _dpo_examples(path: Path) -> Iterator[Example | Rejection]:
    for item in read_dpo_jsonl(path):
        yield preference_to_example(item) if isinstance(item, Preference) else item


def prepare_file(path: Path, *, role: str, method: str, model: str) -> ValidationReport:
    """Validate one training or validation file for ``model``; log its warnings.

    Args:
        path: the file.
        role: ``train`` (at least 10 examples) or ``validation`` (at least 1).
        method: ``supervised`` or ``dpo`` (the file's format).
        model: the model whose limits apply.

    Returns:
        The report (no errors).

    Raises:
        ValidationError: the file has errors; nothing was uploaded.
        UnknownModelError: ``model`` is not in the model table (use ``validate_as``).
    """
    try:
        spec = resolve_model(model)
    except UnknownModelError as exc:
        raise UnknownModelError(
            f"{exc.message}; for a provider's own model pass validate_as='<a known model with "
            "the same limits>' to the backend",
            exc.context,
        ) from exc
    minimum = MIN_EXAMPLES if role == "train" else 1
    if method == "dpo":
        report = validate_examples(_dpo_examples(path), spec, path=path, min_examples=minimum)
    else:
        report = validate_file(path, spec, min_examples=minimum)
    for issue in report.warnings:
        log.warning("%s", issue.message)
    if not report.ok:
        shown = "; ".join(issue.message for issue in report.errors[:10])
        more = f" (and {len(report.errors) - 10} more)" if len(report.errors) > 10 else ""
        raise ValidationError(
            f"refusing to upload the {role} file: {len(report.errors)} error(s) for "
            f"{spec.name}: {shown}{more}",
            ErrorContext(path=str(path)),
        )
    return report
