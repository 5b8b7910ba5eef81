"""The ``eval`` and ``chat`` commands of ``finetune-web``.

A model is reached over an OpenAI-compatible API, or run locally with
transformers when it is named ``local:<id or directory>`` or is an existing
directory (a PEFT adapter directory brings its base model along).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from finetune_web.errors import ConfigError, ErrorContext
from finetune_web.formats import read_chat_jsonl
from finetune_web.interfaces import Evaluator
from finetune_web.plugins import Family, Registry
from finetune_web.records import Example, Message, Rejection

__all__ = ["LOCAL_PREFIX", "add_model_commands", "local_model_name", "run_chat", "run_eval"]


def add_model_commands(commands: Any) -> None:
    """Add the ``eval`` and ``chat`` sub-commands to an argparse sub-parser group."""
    evaluate = commands.add_parser(
        "eval", help="score a model (against a baseline) on held-out data"
    )
    evaluate.add_argument(
        "--model",
        required=True,
        help="the model to evaluate (ft:..., or local:DIR for a local one)",
    )
    evaluate.add_argument(
        "--baseline", help="the model to compare with (e.g. its base model, local:DIR)"
    )
    evaluate.add_argument("--data", required=True, help="chat JSONL or openai/evals JSONL")
    evaluate.add_argument(
        "--metric",
        action="append",
        required=True,
        help="evaluator names, comma-separated or repeated: exact_match, multiple_choice, "
        "bleu, ... (local models also: loglik_acc, loglik_acc_norm, token_loss, token_accuracy)",
    )
    evaluate.add_argument("--general", help="general held-out data for a retention check")
    evaluate.add_argument("--out", default="eval-report", help="report directory")
    evaluate.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument(
        "--registry", help="a model registry file: scores are added to the models registered there"
    )
    _add_endpoint_options(evaluate)
    _add_local_options(evaluate)

    chat = commands.add_parser("chat", help="chat with a model (one reply per input line)")
    chat.add_argument(
        "--model", required=True, help="the model (a fine-tuned ft:... id, or local:DIR)"
    )
    chat.add_argument("--system", help="a system message sent first")
    _add_endpoint_options(chat)
    _add_local_options(chat)


def _add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="an OpenAI-compatible API root (default: OpenAI)")
    parser.add_argument("--cache-dir", help="cache replies on disk so re-runs cost nothing")


def _add_local_options(parser: argparse.ArgumentParser) -> None:
    local = parser.add_argument_group("local models (--model local:DIR)")
    local.add_argument("--adapter", help="a PEFT adapter directory to load on top of --model")
    local.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    local.add_argument(
        "--max-new-tokens", type=int, default=256, help="the longest reply in tokens (256)"
    )


#: The prefix naming a model run locally with transformers.
LOCAL_PREFIX = "local:"


def local_model_name(name: str) -> str | None:
    """Return the id or directory of a local model spec, or ``None`` for an API model.

    ``local:<id or directory>`` is local, and so is an existing directory.
    """
    if name.startswith(LOCAL_PREFIX):
        return name[len(LOCAL_PREFIX) :]
    return name if Path(name).is_dir() else None


def _chat_model(
    name: str, args: argparse.Namespace, *, progress: bool, adapter: str | None = None
) -> Any:
    local = local_model_name(name)
    if local is not None:
        from finetune_web.backends.local.chat import LocalChatModel

        return LocalChatModel(
            model=local,
            adapter=adapter,
            device=args.device,
            max_new_tokens=args.max_new_tokens,
        )
    if adapter is not None:
        raise ConfigError(
            f"--adapter needs a local model; name it local:<directory or id>, not {name!r}"
        )
    from finetune_web.evaluation import OpenAIChatModel, StderrProgress

    return OpenAIChatModel(
        model=name,
        base_url=args.base_url,
        cache_dir=getattr(args, "cache_dir", None),
        progress=StderrProgress(label=name) if progress else None,
    )


def read_eval_data(path: str) -> list[Example]:
    """Read held-out examples: openai/evals JSONL (``input``/``ideal``) or chat JSONL.

    Raises:
        ConfigError: a line cannot be read (the message names file and line).
    """
    from finetune_web.evaluation import load_evals_jsonl

    with Path(path).open("rb") as handle:
        first = handle.readline()
    if b'"ideal"' in first:
        return load_evals_jsonl(path)
    examples: list[Example] = []
    for item in read_chat_jsonl(path):
        if isinstance(item, Rejection):
            raise ConfigError(item.message, ErrorContext(path=path, step="eval"))
        examples.append(item)
    return examples


def _evaluators(names: Sequence[str]) -> list[Evaluator]:
    registry = Registry.discover()
    wanted = [name.strip() for given in names for name in given.split(",") if name.strip()]
    return [registry.create(Family.EVALUATORS, name, {}) for name in wanted]  # type: ignore[misc]


def run_eval(args: argparse.Namespace, out: TextIO) -> int:
    """Evaluate ``--model`` (and ``--baseline``) on ``--data``; write the report."""
    from finetune_web.evaluation import compare, write_report

    examples = read_eval_data(args.data)
    evaluators = _evaluators(args.metric)
    tuned = _chat_model(args.model, args, progress=True, adapter=args.adapter)
    if args.baseline is None:
        scores = {}
        for evaluator in evaluators:
            result = evaluator.evaluate(tuned, examples)
            scores[result.metric] = result.score
        model_id = tuned.model_id
        data: dict[str, Any] = {"model": model_id, "examples": len(examples), "scores": scores}
        _record_scores(args.registry, {model_id: scores})
        out.write(json.dumps(data, indent=2) + "\n" if args.json else _scores_text(data))
        return 0
    general = read_eval_data(args.general) if args.general else None
    comparison = compare(
        _chat_model(args.baseline, args, progress=True),
        tuned,
        examples,
        evaluators,
        seed=args.seed,
        general=general,
    )
    files = write_report(comparison, args.out)
    _record_scores(args.registry, comparison.scores())
    summary = comparison.to_json()
    if args.json:
        out.write(json.dumps(summary, indent=2) + "\n")
    else:
        out.write(f"report: {files.html} and {files.markdown}\n")
        for metric in summary.get("metrics", []):
            out.write(f"{json.dumps(metric)}\n")
    return 0


def _record_scores(path: str | None, scores: dict[str, dict[str, float]]) -> None:
    """Add each model's scores to its registry entry; models not registered are skipped."""
    if path is None:
        return
    from finetune_web.registry import ModelNotFoundError, ModelRegistry

    registry = ModelRegistry(path)
    for model_id, figures in scores.items():
        try:
            registry.add_scores(model_id, figures)
        except ModelNotFoundError:
            continue


def _scores_text(data: dict[str, Any]) -> str:
    lines = [f"{data['model']} on {data['examples']} examples:"]
    lines += [f"  {metric}: {score:.4f}" for metric, score in data["scores"].items()]
    return "\n".join(lines) + "\n"


def run_chat(args: argparse.Namespace, source: TextIO, out: TextIO) -> int:
    """Read user lines from ``source`` and print the model's replies, keeping the conversation."""
    model = _chat_model(args.model, args, progress=False, adapter=args.adapter)
    messages: list[Message] = []
    if args.system:
        messages.append(Message(role="system", content=args.system))
    for line in source:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        messages.append(Message(role="user", content=text))
        reply = model.complete(messages)
        messages.append(reply)
        out.write(f"{reply.text}\n")
        out.flush()
    return 0
