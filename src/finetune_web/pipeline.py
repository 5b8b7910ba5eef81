"""The immutable, fluent Pipeline.

A pipeline is a description: a source, a tuple of steps, a seed and an
error policy.  Building one opens nothing and runs nothing; every method
returns a new pipeline.  Running is done by an executor (the
:class:`~finetune_web._executor.LocalExecutor` by default), so the same
description can be handed to another engine unchanged.

Example::

    report = (
        Pipeline.from_source(JsonSource("products.json"))
        .template(user="Describe {title}", assistant="{description}")
        .split(validation=0.1)
        .run("out/")
    )
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from finetune_web._executor import ErrorPolicy, LocalExecutor
from finetune_web._outputs import write_run
from finetune_web.errors import ConfigError
from finetune_web.interfaces import Source, Transformer, step_name
from finetune_web.plugins import Family, Registry
from finetune_web.records import Record, Rejection
from finetune_web.report import RunReport

__all__ = ["ErrorPolicy", "Pipeline", "describe_component"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def describe_component(component: object) -> dict[str, Any]:
    """Describe a source or step as JSON: its type and its public settings.

    A component with a ``describe()`` method describes itself; an attrs
    class is described by its fields, leaving out fields declared with
    ``repr=False`` (which is how secrets such as API keys are declared).
    """
    cls = type(component)
    description: dict[str, Any] = {"type": f"{cls.__module__}.{cls.__qualname__}"}
    own = getattr(component, "describe", None)
    if callable(own):
        description.update(_jsonable(own()))
    elif attrs.has(cls):
        for field in attrs.fields(cls):
            if field.repr is not False and not field.name.startswith("_"):
                description[field.name] = _jsonable(getattr(component, field.name))
    else:
        description["repr"] = repr(component)
    return description


def _check_source(source: object) -> Source:
    if not isinstance(source, Source):
        raise ConfigError(
            f"{type(source).__name__} is not a Source: it needs a read() method "
            "returning an iterator of records and rejections"
        )
    return source


def _check_steps(steps: tuple[object, ...]) -> tuple[Transformer, ...]:
    for position, step in enumerate(steps):
        if not isinstance(step, Transformer):
            raise ConfigError(
                f"step {position + 1} ({type(step).__name__}) is not a Transformer: it needs a "
                "transform(records) method returning an iterator of records and rejections"
            )
    return steps  # type: ignore[return-value]


@attrs.frozen(kw_only=True)
class Pipeline:
    """A source followed by steps; immutable, checked when built, lazy when run.

    Attributes:
        source: where records come from.
        steps: transformers applied in order.
        seed: default seed for seeded steps and recorded in the run manifest.
        error_policy: reject bad records (default) or stop at the first.
    """

    source: Source = attrs.field(converter=_check_source)
    steps: tuple[Transformer, ...] = attrs.field(default=(), converter=_check_steps)
    seed: int = 0
    error_policy: ErrorPolicy = ErrorPolicy.REJECT

    @classmethod
    def from_source(cls, source: Source, *, seed: int = 0) -> Pipeline:
        """Start a pipeline reading from ``source``.

        Raises:
            ConfigError: ``source`` does not implement :class:`Source`.
        """
        return cls(source=source, seed=seed)

    def then(self, *steps: Transformer) -> Pipeline:
        """Return a new pipeline with ``steps`` appended.

        Raises:
            ConfigError: a step does not implement :class:`Transformer`.
        """
        return attrs.evolve(self, steps=(*self.steps, *steps))

    def with_seed(self, seed: int) -> Pipeline:
        """Return a new pipeline with another seed."""
        return attrs.evolve(self, seed=seed)

    def on_error(self, policy: ErrorPolicy | str) -> Pipeline:
        """Return a new pipeline with another error policy (``"reject"`` or ``"raise"``)."""
        try:
            chosen = ErrorPolicy(policy)
        except ValueError:
            raise ConfigError(f"unknown error policy {policy!r}; use 'reject' or 'raise'") from None
        return attrs.evolve(self, error_policy=chosen)

    def step(self, name: str, /, **options: Any) -> Pipeline:
        """Append the built-in transform called ``name`` (as in TOML configs).

        Raises:
            ConfigError: the name or an option is unknown.
        """
        component = Registry.builtins().create(Family.TRANSFORMS, name, options)
        return self.then(component)  # type: ignore[arg-type]

    def template(
        self,
        *,
        user: str,
        assistant: str,
        system: str | None = None,
        list_separator: str = "; ",
        joins: Mapping[str, str] | None = None,
        max_chars: Mapping[str, int] | None = None,
    ) -> Pipeline:
        """Append a template step turning documents into chat examples.

        See :class:`~finetune_web.transforms.TemplateTransformer` for the syntax.
        """
        return self.step(
            "template",
            user=user,
            assistant=assistant,
            system=system,
            list_separator=list_separator,
            joins=dict(joins or {}),
            max_chars=dict(max_chars or {}),
        )

    def split(
        self, validation: float = 0.1, *, seed: int | None = None, group_key: str | None = None
    ) -> Pipeline:
        """Append a deterministic train/validation split (seed defaults to the pipeline's)."""
        return self.step(
            "split",
            validation=validation,
            seed=self.seed if seed is None else seed,
            group_key=group_key,
        )

    def map(self, fn: Callable[[Record], Record], *, name: str = "map") -> Pipeline:
        """Append a step applying ``fn`` to every record."""
        return self.step("map", fn=fn, name=name)

    def keep_if(
        self,
        predicate: Callable[[Record], bool],
        *,
        reason: str = "filtered",
        name: str = "keep_if",
    ) -> Pipeline:
        """Append a step keeping records for which ``predicate`` is true."""
        return self.step("keep_if", predicate=predicate, reason=reason, name=name)

    def describe(self) -> dict[str, Any]:
        """Return the pipeline as JSON-ready data (recorded in run manifests)."""
        return {
            "source": describe_component(self.source),
            "steps": [describe_component(step) for step in self.steps],
            "seed": self.seed,
            "error_policy": self.error_policy.value,
        }

    def fingerprint(self) -> str:
        """Return the sha256 of the canonical JSON of :meth:`describe`."""
        canonical = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def step_names(self) -> tuple[str, ...]:
        """Return the names steps have in reports, source first."""
        return (step_name(self.source), *(step_name(step) for step in self.steps))

    def stream(self, *, on_reject: Callable[[Rejection], None] | None = None) -> Iterator[Record]:
        """Run the pipeline lazily and yield its output records.

        Args:
            on_reject: called with each rejection; rejections are dropped when ``None``
                (use :meth:`run` to have them written to a file).
        """
        records, _ = LocalExecutor().stream(self, on_reject or (lambda _: None))
        return records

    def run(
        self,
        output_dir: str | os.PathLike[str],
        *,
        models: tuple[str, ...] = ("gpt-4o-mini",),
        overwrite: bool = True,
        token_workers: int = 0,
    ) -> RunReport:
        """Run the pipeline and write the dataset, rejects, report and manifest.

        Examples go to ``train.jsonl`` and ``validation.jsonl`` (by their
        split), preference pairs in DPO format, documents to
        ``documents.jsonl``; rejections to ``rejects.jsonl``.  The training
        file is validated against ``models[0]`` and costed for every model.

        Args:
            output_dir: directory to write into (created if needed).
            models: models to validate against and estimate cost for.
            overwrite: replace files already there; otherwise refuse.
            token_workers: tokenize in this many helper processes, overlapping
                with reading, shaping and writing (same results, sooner on a machine
                with spare cores: worth it for large datasets); 0, the default,
                tokenizes in this process.

        Returns:
            The run report (also written as ``report.json``).

        Raises:
            ConfigError: the directory holds a previous run and ``overwrite`` is false.
        """
        return write_run(
            self, Path(output_dir), models=models, overwrite=overwrite, token_workers=token_workers
        )
