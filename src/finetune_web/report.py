"""What a pipeline run reports: per-step counts, written files, validation, cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["OutputFile", "RunReport", "StepReport"]


def _counts(value: Mapping[str, int]) -> dict[str, int]:
    return dict(value)


def _figures(value: Mapping[str, float]) -> dict[str, float]:
    return dict(value)


@attrs.frozen(kw_only=True)
class StepReport:
    """Counts of one step of a run.

    ``records_in == records_out + rejected`` for one-to-one steps; a step
    that expands records (one article into several examples) has more
    outputs than inputs, and every input is still accounted for.
    """

    name: str
    records_in: int
    records_out: int
    rejected: int
    reasons: dict[str, int] = attrs.field(factory=dict, converter=_counts)
    metrics: dict[str, float] = attrs.field(factory=dict, converter=_figures)

    def to_json(self) -> dict[str, Any]:
        """Return the counts as a JSON-ready dict."""
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class OutputFile:
    """A file a run wrote, with its content hash."""

    name: str
    path: str
    records: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """Return the file's facts as a JSON-ready dict (``path`` relative to the run dir)."""
        return {
            "name": self.name,
            "records": self.records,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


def _steps(value: tuple[StepReport, ...] | list[StepReport]) -> tuple[StepReport, ...]:
    return tuple(value)


def _files(value: tuple[OutputFile, ...] | list[OutputFile]) -> tuple[OutputFile, ...]:
    return tuple(value)


def _json_list(value: Any) -> tuple[dict[str, Any], ...]:
    return tuple(dict(v) for v in value)


@attrs.frozen(kw_only=True)
class RunReport:
    """The outcome of :meth:`Pipeline.run`.

    Attributes:
        steps: counts per step, source first.
        outputs: files written (train, validation, rejects...).
        validation: the provider-style validation of the training file
            (``to_json()`` form), or ``None`` when nothing was validated.
        estimates: token and cost estimates, one per requested model.
        pipeline_sha256: fingerprint of the pipeline's description.
        seed: the pipeline's seed.
        elapsed_s: wall time of the run (not written to report files, which
            stay byte-identical between runs).
    """

    steps: tuple[StepReport, ...] = attrs.field(converter=_steps)
    outputs: tuple[OutputFile, ...] = attrs.field(default=(), converter=_files)
    validation: dict[str, Any] | None = None
    estimates: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=_json_list)
    pipeline_sha256: str = ""
    seed: int = 0
    elapsed_s: float = attrs.field(default=0.0, eq=False)

    @property
    def rejected(self) -> int:
        """Total rejections over all steps."""
        return sum(step.rejected for step in self.steps)

    def output(self, name: str) -> OutputFile:
        """Return the written file called ``name`` (e.g. ``"train.jsonl"``).

        Raises:
            KeyError: the run wrote no such file.
        """
        for item in self.outputs:
            if item.name == name:
                return item
        raise KeyError(f"the run wrote no {name!r}; it wrote {[o.name for o in self.outputs]}")

    def to_json(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict (deterministic: no timings)."""
        return {
            "pipeline_sha256": self.pipeline_sha256,
            "seed": self.seed,
            "steps": [step.to_json() for step in self.steps],
            "outputs": [item.to_json() for item in self.outputs],
            "validation": self.validation,
            "estimates": list(self.estimates),
        }

    def summary(self) -> str:
        """Return a short human-readable summary of the run."""
        width = max((len(step.name) for step in self.steps), default=4)
        lines = [f"{'step':<{width}}  {'in':>8} {'out':>8} {'rejected':>8}  reasons"]
        for step in self.steps:
            reasons = ", ".join(f"{k}={v}" for k, v in step.reasons.items())
            shown = {k: v for k, v in step.metrics.items() if v}
            if shown:
                figures = ", ".join(f"{k}={v:g}" for k, v in shown.items())
                reasons = f"{reasons}; {figures}" if reasons else figures
            lines.append(
                f"{step.name:<{width}}  {step.records_in:>8} {step.records_out:>8} "
                f"{step.rejected:>8}  {reasons}"
            )
        for item in self.outputs:
            lines.append(f"wrote {item.path} ({item.records} records, {item.bytes:,} bytes)")
        if self.validation is not None:
            errors = len(self.validation.get("errors", ()))
            warnings = len(self.validation.get("warnings", ()))
            lines.append(f"validation: {errors} error(s), {warnings} warning(s)")
            for warning in self.validation.get("warnings", ())[:5]:
                lines.append(f"  warning: {warning.get('message', warning)}")
        for estimate in self.estimates:
            cost = estimate["estimated_cost_usd"]
            price = f"~${cost:.4f}" if cost is not None else "cost unknown"
            lines.append(
                f"{estimate['model']}: {estimate['billed_tokens_per_epoch']:,} tokens/epoch x "
                f"{estimate['epochs']} epochs = {estimate['billed_tokens']:,} billed tokens, "
                f"{price} (prices as of {estimate['prices_as_of']})"
            )
        if self.elapsed_s:
            lines.append(f"took {self.elapsed_s:.2f} s")
        return "\n".join(lines)
