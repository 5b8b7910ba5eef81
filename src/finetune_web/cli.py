"""The ``finetune-web`` command line.

Thin by design: it parses arguments, builds objects from the library, runs
them and prints.  It is the only module that reads ``os.environ``.

Exit codes: 0 success; 1 the data has errors (``validate`` found errors, or
``prepare`` wrote a training file with errors or, under ``--strict``,
rejected records); 2 bad usage, configuration or unreadable input.
``estimate`` exits 0 whenever it can compute an estimate and lists the
file's errors in its output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from finetune_web import __version__
from finetune_web._cli_models import add_model_commands, run_chat, run_eval
from finetune_web.config import load_config
from finetune_web.errors import FinetuneWebError
from finetune_web.formats import Estimate, ValidationReport, estimate_file, validate_file
from finetune_web.plugins import Family, Registry

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-web",
        description="Turn web data into fine-tuning datasets and fine-tuned models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="run a TOML pipeline config")
    prepare.add_argument("config", help="the TOML pipeline file")
    prepare.add_argument("--output", help="output directory (overrides [output] dir)")
    prepare.add_argument("--json", action="store_true", help="print the report as JSON")
    prepare.add_argument("--strict", action="store_true", help="exit 1 if any record was rejected")

    for name, text in (
        ("validate", "check a chat/DPO JSONL file the way the provider will"),
        ("estimate", "count tokens and estimate epochs and cost"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("file", help="the JSONL dataset")
        sub.add_argument("--model", required=True, help="base or fine-tuned model name")
        sub.add_argument("--json", action="store_true", help="print JSON with stable keys")
        if name == "estimate":
            sub.add_argument("--epochs", type=int, help="override the default epoch count")

    add_model_commands(commands)
    commands.add_parser("plugins", help="list the components available by name")
    return parser


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _issues_text(report: ValidationReport) -> list[str]:
    lines = [f"error {issue.code}: {issue.describe()}" for issue in report.errors]
    lines += [f"warning {issue.code}: {issue.describe()}" for issue in report.warnings]
    return lines


def _estimate_text(estimate: Estimate) -> list[str]:
    data = estimate.to_json()
    lines = [f"{data['examples']} examples, model {data['model']} ({data['encoding']})"]
    for label, key in (
        ("total tokens per example", "total_tokens"),
        ("assistant tokens per example", "assistant_tokens"),
        ("messages per example", "messages_per_example"),
    ):
        stats = data.get("distributions", {}).get(key)
        if stats:
            lines.append(
                f"{label}: min {stats['min']}, max {stats['max']}, mean {stats['mean']:.1f}, "
                f"median {stats['median']}, p10 {stats['p10']:.1f}, p90 {stats['p90']:.1f}"
            )
    lines.append(f"{data['over_limit']} example(s) over the model's limit will be truncated")
    lines.append(f"billed tokens per epoch: {data['billed_tokens_per_epoch']:,}")
    lines.append(f"epochs: {data['epochs']}")
    lines.append(f"billed tokens: {data['billed_tokens']:,}")
    cost = data["estimated_cost_usd"]
    lines.append(
        f"estimated cost: ${cost:.4f} (prices as of {data['prices_as_of']})"
        if cost is not None
        else "estimated cost: unknown (no per-token training price for this model)"
    )
    return lines


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    report = validate_file(args.file, args.model)
    if args.json:
        _print_json(report.to_json(), out)
    else:
        lines = _issues_text(report)
        lines.append(
            f"{args.file}: {report.examples} examples, {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s)"
        )
        out.write("\n".join(lines) + "\n")
    return 0 if report.ok else 1


def _estimate(args: argparse.Namespace, out: TextIO) -> int:
    report = validate_file(args.file, args.model)
    estimate = estimate_file(args.file, args.model, epochs=args.epochs)
    if args.json:
        data = estimate.to_json()
        data["errors"] = [issue.to_json() for issue in report.errors]
        data["warnings"] = [issue.to_json() for issue in report.warnings]
        _print_json(data, out)
    else:
        out.write("\n".join(_issues_text(report) + _estimate_text(estimate)) + "\n")
    return 0


def _prepare(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    output_dir = args.output if args.output is not None else config.output_dir
    report = config.pipeline.run(output_dir, models=config.models)
    if args.json:
        _print_json(report.to_json(), out)
    else:
        out.write(report.summary() + "\n")
    failed = report.validation is not None and bool(report.validation.get("errors"))
    return 1 if failed or (args.strict and report.rejected) else 0


def _plugins(out: TextIO) -> int:
    registry = Registry.discover()
    for family in Family:
        out.write(f"{family.value}: {', '.join(registry.names(family)) or '-'}\n")
    return 0


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Run the command line; return the exit code.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).
        out: where to print (default: standard output).
        stdin: where ``chat`` reads from (default: standard input).
    """
    stream = out if out is not None else sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args, stream)
        if args.command == "estimate":
            return _estimate(args, stream)
        if args.command == "prepare":
            return _prepare(args, stream)
        if args.command == "eval":
            return run_eval(args, stream)
        if args.command == "chat":
            return run_chat(args, stdin if stdin is not None else sys.stdin, stream)
        return _plugins(stream)
    except FinetuneWebError as exc:
        sys.stderr.write(f"finetune-web: error: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
