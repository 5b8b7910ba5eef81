"""Check a training file the way the fine-tuning service will, before uploading it.

:func:`validate_file` streams the file once and keeps a few integers per
example.  Errors make the upload or the job fail; warnings are worth reading.

Error codes: every reader/record reason (``invalid_json``, ``data_type``,
``missing_messages_list``, ``message_missing_key``, ...; see
:mod:`finetune_web.formats.chat`), ``special_token``, ``empty_file`` and
``too_few_examples``.

Warning codes: ``over_token_limit``, ``model_shut_down``,
``model_shutdown_soon``, ``job_creation_ended``, ``job_creation_ending``,
``few_examples``, ``missing_system_message``, ``missing_user_message``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import attrs

from finetune_web._types import StrPath
from finetune_web.errors import ErrorContext, ValidationError
from finetune_web.formats._jsonl import context_of
from finetune_web.formats.chat import read_training_file
from finetune_web.formats.models import (
    JOB_CREATION_ENDS,
    ModelSpec,
    job_creation_warning,
    resolve_model,
    shutdown_warning,
)
from finetune_web.formats.tokens import ExampleTokens, TokenCounter
from finetune_web.records import Example, Location, Rejection

__all__ = [
    "MIN_EXAMPLES",
    "RECOMMENDED_EXAMPLES",
    "Issue",
    "ValidationBuilder",
    "ValidationReport",
    "validate_examples",
    "validate_file",
]

#: The service refuses files with fewer examples.
MIN_EXAMPLES = 10
#: OpenAI recommends at least this many examples.
RECOMMENDED_EXAMPLES = 50
_NAMED = 20  # lines named in a summary warning


@attrs.frozen(kw_only=True)
class Issue:
    """One problem found in a training file.

    Attributes:
        code: a stable, machine-readable code.
        message: what is wrong, where, and what to do.
        line: the 1-based line, when the issue is about one line.
        index: the 0-based record position, when the issue is about one record.
        path: the file.
    """

    code: str
    message: str
    line: int | None = None
    index: int | None = None
    path: str | None = None

    def describe(self) -> str:
        """Return the message (it already names the file and line when there is one)."""
        return self.message

    def to_json(self) -> dict[str, Any]:
        """Return ``{code, message, line, index, path}`` (unknown parts as ``None``)."""
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class ValidationReport:
    """The result of validating a training file.

    Attributes:
        model: the model the file was checked for.
        path: the file, when one was read.
        examples: the records read as examples (including those with errors).
        errors: problems that make the upload or the job fail.
        warnings: problems worth a look.
    """

    model: str
    path: str | None
    examples: int
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict: model, path, examples, ok, errors, warnings."""
        return {
            "model": self.model,
            "path": self.path,
            "examples": self.examples,
            "ok": self.ok,
            "errors": [issue.to_json() for issue in self.errors],
            "warnings": [issue.to_json() for issue in self.warnings],
        }

    def raise_for_errors(self) -> None:
        """Raise if the report has errors.

        Raises:
            ValidationError: naming the error count and the first few errors.
        """
        if self.ok:
            return
        shown = "; ".join(issue.message for issue in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        raise ValidationError(
            f"{len(self.errors)} error(s) for {self.model}: {shown}{more}",
            ErrorContext(path=self.path),
        )


def _located(code: str, message: str, location: Location | None, path: str | None) -> Issue:
    return Issue(
        code=code,
        message=message,
        line=location.line if location else None,
        index=location.index if location else None,
        path=location.origin if location else path,
    )


def _issue(code: str, message: str, location: Location | None, path: str | None) -> Issue:
    where = context_of(location).describe()
    return _located(code, f"{where}: {message}" if where else message, location, path)


def _file_issue(code: str, message: str, path: str | None) -> Issue:
    return Issue(code=code, message=f"{path}: {message}" if path else message, path=path)


def _named(places: list[str], count: int) -> str:
    more = f" and {count - len(places)} more" if count > len(places) else ""
    return ", ".join(places) + more


def _model_warnings(spec: ModelSpec, today: date, path: str | None) -> list[Issue]:
    found = []
    shutdown = shutdown_warning(spec, today)
    if shutdown is not None:
        gone = spec.shutdown_date is not None and spec.shutdown_date <= today
        found.append(
            Issue(
                code="model_shut_down" if gone else "model_shutdown_soon",
                message=shutdown,
                path=path,
            )
        )
    ending = job_creation_warning(today)
    if ending is not None:
        code = "job_creation_ended" if today >= JOB_CREATION_ENDS else "job_creation_ending"
        found.append(Issue(code=code, message=ending, path=path))
    return found


@attrs.define
class ValidationBuilder:
    """Checks examples one at a time, then builds a :class:`ValidationReport`.

    It keeps a few integers per example and the issues found, never the
    examples, so a pipeline can validate a file while it writes it.

    Attributes:
        spec: the model checked for.
        model: the name shown in the report (defaults to ``spec.name``).
        path: the file the examples are (or will be) in.
        min_examples: fewer examples is an error.
        today: the date for shutdown warnings; the system date when ``None``.
    """

    spec: ModelSpec
    model: str = ""
    path: str | None = None
    min_examples: int = MIN_EXAMPLES
    today: date | None = None
    _counter: TokenCounter = attrs.field(init=False)
    _errors: list[Issue] = attrs.field(factory=list, init=False)
    _examples: int = attrs.field(default=0, init=False)
    _rejected: int = attrs.field(default=0, init=False)
    _over: int = attrs.field(default=0, init=False)
    _over_places: list[str] = attrs.field(factory=list, init=False)
    _no_system: int = attrs.field(default=0, init=False)
    _no_user: int = attrs.field(default=0, init=False)

    @_counter.default
    def _make_counter(self) -> TokenCounter:
        return TokenCounter.for_model(self.spec)

    @property
    def examples(self) -> int:
        """The number of examples added so far."""
        return self._examples

    def add_rejection(self, rejection: Rejection) -> None:
        """Record a line that could not be read as an example (an error)."""
        self._rejected += 1
        self._errors.append(
            _located(rejection.reason, rejection.message, rejection.location, self.path)
        )

    def add(
        self,
        example: Example,
        tokens: ExampleTokens,
        *,
        line: int | None = None,
        special_tokens: tuple[str, ...] | None = None,
    ) -> None:
        """Check one example, given its token counts.

        Args:
            example: the example.
            tokens: its counts (from this model's :class:`TokenCounter`).
            line: its line in :attr:`path`, when that differs from ``example.location``
                (e.g. the example is being written to a new file).
            special_tokens: the special tokens this model's counter already found in
                the example, when the caller has looked; ``None`` to look here.
        """
        index = self._examples
        self._examples += 1
        location = example.location
        if line is not None and self.path is not None:
            location = Location(origin=self.path, line=line, index=index)
        found = (
            self._counter.find_special_tokens_in(example)
            if special_tokens is None
            else special_tokens
        )
        if found:
            message = (
                f"contains special token(s) {', '.join(found)}: OpenAI fails the job after "
                "upload; remove them from the text (scraped pages often hold them)"
            )
            self._errors.append(_issue("special_token", message, location, self.path))
        if tokens.total > self.spec.max_tokens_per_example:
            self._over += 1
            if len(self._over_places) < _NAMED:
                known = location.line if location else None
                self._over_places.append(f"record #{index}" if known is None else f"line {known}")
        roles = {message.role for message in example.messages}
        self._no_system += "system" not in roles and "developer" not in roles
        self._no_user += "user" not in roles

    def build(self) -> ValidationReport:
        """Return the report of everything added so far (file-level checks included)."""
        spec, where, examples = self.spec, self.path, self._examples
        errors = list(self._errors)
        if examples + self._rejected == 0:
            errors.append(_file_issue("empty_file", "no examples (no non-blank line)", where))
        elif examples < self.min_examples:
            message = f"{examples} example(s); the service needs at least {self.min_examples}"
            errors.append(_file_issue("too_few_examples", message, where))
        warnings = _model_warnings(spec, self.today or date.today(), where)
        if self.min_examples <= examples < RECOMMENDED_EXAMPLES:
            message = f"{examples} examples; OpenAI recommends at least {RECOMMENDED_EXAMPLES}"
            warnings.append(_file_issue("few_examples", message, where))
        if self._over:
            message = (
                f"{self._over} example(s) over {spec.name}'s {spec.max_tokens_per_example:,}-token "
                f"limit will be cut from the end during training: "
                f"{_named(self._over_places, self._over)}"
            )
            warnings.append(_file_issue("over_token_limit", message, where))
        if spec.format == "chat" and self._no_system:
            message = f"{self._no_system} example(s) have no system message"
            warnings.append(_file_issue("missing_system_message", message, where))
        if spec.format == "chat" and self._no_user:
            message = f"{self._no_user} example(s) have no user message"
            warnings.append(_file_issue("missing_user_message", message, where))
        return ValidationReport(
            model=self.model or spec.name,
            path=where,
            examples=examples,
            errors=tuple(errors),
            warnings=tuple(warnings),
        )


def validate_examples(
    records: Iterable[Example | Rejection],
    model: str | ModelSpec,
    *,
    today: date | None = None,
    min_examples: int = MIN_EXAMPLES,
    path: StrPath | None = None,
    batch_size: int = 256,
) -> ValidationReport:
    """Check a stream of examples (and the rejections of their reader) for a model.

    Args:
        records: examples and rejections, e.g. from :func:`~finetune_web.formats.read_chat_jsonl`.
        model: a model name (snapshots and ``ft:`` names resolve) or spec.
        today: the date for shutdown warnings; the system date when ``None``.
        min_examples: fewer examples is an error (the service's minimum is 10).
        path: the file the records come from, named in file-level issues.
        batch_size: examples tokenized per batch (the most held in memory).

    Returns:
        The report; check ``report.ok`` or call ``report.raise_for_errors()``.

    Raises:
        UnknownModelError: the model is not in the table.
    """
    spec = resolve_model(model) if isinstance(model, str) else model
    builder = ValidationBuilder(
        spec=spec,
        model=model if isinstance(model, str) else spec.name,
        path=None if path is None else str(path),
        min_examples=min_examples,
        today=today,
    )
    for item in TokenCounter.for_model(spec).count_stream(records, batch_size=batch_size):
        if isinstance(item, Rejection):
            builder.add_rejection(item)
        else:
            builder.add(*item)
    return builder.build()


def validate_file(
    path: StrPath,
    model: str | ModelSpec,
    *,
    today: date | None = None,
    min_examples: int = MIN_EXAMPLES,
    encoding: str | None = None,
) -> ValidationReport:
    """Check a JSONL training file for a model, streaming it once.

    The file is read in the model's format (chat, or prompt/completion for
    babbage-002 / davinci-002).

    Args:
        path: the file.
        model: a model name (snapshots and ``ft:`` names resolve) or spec.
        today: the date for shutdown warnings; the system date when ``None``.
        min_examples: fewer examples is an error (the service's minimum is 10).
        encoding: the file's codec; detected when ``None``.

    Returns:
        The report; check ``report.ok`` or call ``report.raise_for_errors()``.

    Raises:
        SourceError: the file cannot be opened.
        UnknownModelError: the model is not in the table.
    """
    spec = resolve_model(model) if isinstance(model, str) else model
    records = read_training_file(path, format=spec.format, encoding=encoding)
    return validate_examples(records, model, today=today, min_examples=min_examples, path=path)
