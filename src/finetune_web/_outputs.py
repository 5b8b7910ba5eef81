"""Write a run's outputs: dataset files, rejects, report and manifest.

The last stage of a run validates and counts every example as it is
written (one tokenization pass per encoding), so the files on disk are
always accepted by the provider's checks: an example that would fail a job
(a special token inside its text, no assistant message) becomes a rejection
of the ``validate`` stage instead of a line of ``train.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from finetune_web._counting import BatchCounting
from finetune_web._executor import LocalExecutor, RunSpec, StepCounter
from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.formats import (
    EstimateBuilder,
    ExampleTokens,
    JsonlWriter,
    ModelSpec,
    TokenCounter,
    ValidationBuilder,
    example_to_json,
    preference_to_json,
    resolve_model,
)
from finetune_web.interfaces import HasInputFiles
from finetune_web.manifest import Manifest, file_digest
from finetune_web.records import Document, Example, Preference, Record, Rejection, Split
from finetune_web.report import OutputFile, RunReport

__all__ = ["OUTPUT_NAMES", "rejection_to_json", "write_run"]

#: Every file a run may write (checked before overwriting).
OUTPUT_NAMES = (
    "train.jsonl",
    "validation.jsonl",
    "documents.jsonl",
    "rejects.jsonl",
    "report.json",
    "manifest.json",
)
_BATCH = 256
_RECORD_CHARS = 20_000


def _record_json(record: object) -> Any:
    if isinstance(record, Example):
        return example_to_json(record)
    if isinstance(record, Preference):
        return preference_to_json(record)
    if isinstance(record, Document):
        return document_to_json(record)
    if isinstance(record, str) and len(record) > _RECORD_CHARS:
        return record[:_RECORD_CHARS] + f"... [{len(record) - _RECORD_CHARS:,} more characters]"
    return record


def document_to_json(document: Document) -> dict[str, Any]:
    """Return a document as a JSON-ready dict (id, text, data, metadata, location)."""
    out: dict[str, Any] = {"id": document.id}
    if document.text is not None:
        out["text"] = document.text
    if document.data is not None:
        out["data"] = document.data
    if document.metadata:
        out["metadata"] = document.metadata
    if document.location is not None:
        out["location"] = document.location.to_json()
    return out


def rejection_to_json(rejection: Rejection) -> dict[str, Any]:
    """Return a rejection as one ``rejects.jsonl`` object."""
    out: dict[str, Any] = {
        "step": rejection.step,
        "reason": rejection.reason,
        "record_id": rejection.record_id,
        "message": rejection.message,
    }
    if rejection.location is not None:
        out["location"] = rejection.location.to_json()
    if rejection.details:
        out["details"] = rejection.details
    if rejection.record is not None:
        out["record"] = _record_json(rejection.record)
    return out


def _as_example(record: Example | Preference) -> Example:
    if isinstance(record, Example):
        return record
    messages = (*record.messages, record.preferred, record.non_preferred)
    return Example(messages=messages, tools=record.tools, id=record.id)


def _batches(
    records: Iterable[Record], documents: JsonlWriter
) -> Iterator[list[Example | Preference]]:
    batch: list[Example | Preference] = []
    for record in records:
        if isinstance(record, Document):
            documents.write(document_to_json(record))
            continue
        batch.append(record)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _problem(example: Example, found: tuple[str, ...]) -> tuple[str, str] | None:
    if found:
        return (
            "special_token",
            f"contains special token(s) {', '.join(found)}, which make a fine-tuning job fail "
            "after upload; clean the text (e.g. with a clean step) or drop the record",
        )
    if not any(m.role == "assistant" for m in example.messages):
        return "example_missing_assistant_message", "has no assistant message to train on"
    return None


class _FinalStage:
    """Validates, counts and writes examples; one instance per run."""

    def __init__(self, specs: Sequence[ModelSpec], names: Sequence[str]) -> None:
        self.specs = specs
        self.counters = {spec.encoding: TokenCounter.for_model(spec) for spec in specs}
        self.primary = self.counters[specs[0].encoding]
        self.validation = ValidationBuilder(spec=specs[0], model=names[0], path="train.jsonl")
        self.estimates = [
            EstimateBuilder(spec=s, model=n) for s, n in zip(specs, names, strict=True)
        ]
        self.counter = StepCounter(name="validate")

    def run(
        self,
        batches: Iterable[list[Example | Preference]],
        writers: dict[Split, JsonlWriter],
        reject: Any,
        *,
        token_workers: int = 0,
    ) -> None:
        """Count, check and write every batch, in order.

        With ``token_workers`` > 0, batches are tokenized in that many helper
        processes while this process reads and shapes the next batches and
        writes the finished ones; results are identical, only faster on a
        machine with spare cores.
        """
        window = max(0, token_workers)
        with BatchCounting(self.counters.values(), helpers=window) as counting:
            pending: deque[tuple[list[Example | Preference], list[Example]]] = deque()
            for batch in batches:
                examples = [_as_example(record) for record in batch]
                counting.submit(examples)
                pending.append((batch, examples))
                if len(pending) > window:
                    self._write(*pending.popleft(), counting.result(), writers, reject)
            while pending:
                self._write(*pending.popleft(), counting.result(), writers, reject)

    def _write(
        self,
        batch: list[Example | Preference],
        examples: list[Example],
        counts: dict[str, list[ExampleTokens]],
        writers: dict[Split, JsonlWriter],
        reject: Any,
    ) -> None:
        for position, (record, example) in enumerate(zip(batch, examples, strict=True)):
            self.counter.records_in += 1
            found = self.primary.find_special_tokens_in(example)
            problem = _problem(example, found)
            if problem is not None:
                reason, message = problem
                where = example.location.describe() if example.location else record.id
                reject(
                    self.counter,
                    Rejection(
                        record_id=record.id,
                        step="validate",
                        reason=reason,
                        message=f"{where}: {message}",
                        location=record.location,
                        record=record,
                    ),
                )
                continue
            side = record.split or Split.TRAIN
            line = writers[side].write(
                example_to_json(record)
                if isinstance(record, Example)
                else preference_to_json(record)
            )
            self.counter.records_out += 1
            if side is Split.TRAIN:
                tokens = counts[self.specs[0].encoding][position]
                self.validation.add(example, tokens, line=line, special_tokens=found)
                for builder in self.estimates:
                    builder.add(counts[builder.spec.encoding][position])


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError("the output path is a file, not a directory", ErrorContext(path=str(out)))
    existing = [name for name in OUTPUT_NAMES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"the directory already holds {', '.join(existing)}; pass overwrite=True or choose "
            "another directory",
            ErrorContext(path=str(out)),
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in existing:
        (out / name).unlink()


def write_run(
    pipeline: RunSpec,
    out: Path,
    *,
    models: Sequence[str],
    overwrite: bool,
    token_workers: int = 0,
) -> RunReport:
    """Run ``pipeline`` and write everything into ``out`` (see :meth:`Pipeline.run`)."""
    if not models:
        raise ConfigError("give at least one model to validate the dataset against")
    specs = [resolve_model(model) for model in models]
    _check_target(out, overwrite)
    started = time.perf_counter()
    final = _FinalStage(specs, models)
    with ExitStack() as stack:
        rejects = stack.enter_context(JsonlWriter(out / "rejects.jsonl"))
        documents = stack.enter_context(JsonlWriter(out / "documents.jsonl", keep_empty=False))
        writers = {
            Split.TRAIN: stack.enter_context(JsonlWriter(out / "train.jsonl", keep_empty=False)),
            Split.VALIDATION: stack.enter_context(
                JsonlWriter(out / "validation.jsonl", keep_empty=False)
            ),
        }

        def sink(rejection: Rejection) -> None:
            rejects.write(rejection_to_json(rejection))

        def reject(counter: StepCounter, rejection: Rejection) -> None:
            counter.rejected += 1
            counter.reasons[rejection.reason] += 1
            sink(rejection)

        records, counters = LocalExecutor().stream(pipeline, sink)

        final.run(_batches(records, documents), writers, reject, token_workers=token_workers)
    written = [
        OutputFile(
            name=w.path.name, path=str(w.path), records=w.count, bytes=w.bytes, sha256=w.sha256
        )
        for w in (writers[Split.TRAIN], writers[Split.VALIDATION], documents, rejects)
        if w.kept
    ]
    validation = final.validation.build() if final.validation.examples else None
    estimates = [b.build().to_json() for b in final.estimates if b.examples]
    report = RunReport(
        steps=[counter.report() for counter in (*counters, final.counter)],
        outputs=written,
        validation=validation.to_json() if validation is not None else None,
        estimates=estimates,
        pipeline_sha256=pipeline.fingerprint(),
        seed=pipeline.seed,
        elapsed_s=time.perf_counter() - started,
    )
    _write_json(out / "report.json", report.to_json())
    source = pipeline.source
    inputs = (
        [file_digest(path) for path in source.input_files()]
        if isinstance(source, HasInputFiles)
        else []
    )
    Manifest(
        pipeline=pipeline.describe(),
        pipeline_sha256=report.pipeline_sha256,
        seed=pipeline.seed,
        inputs=inputs,
        outputs=written,
    ).write(out / "manifest.json")
    return report


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
