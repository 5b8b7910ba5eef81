"""The eval and chat commands against a real local OpenAI-compatible HTTP server."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice

from finetune_web.cli import main


def _completion(model: str, content: str) -> bytes:
    body = ChatCompletion(
        id="chatcmpl-test",
        object="chat.completion",
        created=0,
        model=model,
        choices=[
            Choice(
                index=0,
                finish_reason="stop",
                message=ChatCompletionMessage(role="assistant", content=content),
            )
        ],
    )
    return json.dumps(body.model_dump(mode="json")).encode()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A chat-completions server on 127.0.0.1: model "tuned" repeats the prompt's last word,
    any other model answers "no idea"; it records every request body."""
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(payload)
            last = payload["messages"][-1]["content"]
            answer = last.split()[-1] if payload["model"] == "tuned" else "no idea"
            data = _completion(payload["model"], answer)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-local")
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "heldout.jsonl"
    rows = [
        {"input": [{"role": "user", "content": f"Repeat the word {w}"}], "ideal": w}
        for w in ("apple", "pear", "plum", "fig", "kiwi", "lime")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _compare_argv(tmp_path: Path, url: str) -> list[str]:
    """The eval command line comparing "tuned" with "base" on exact match."""
    data, report = str(_data(tmp_path)), str(tmp_path / "report")
    options = {"--model": "tuned", "--baseline": "base", "--data": data, "--metric": "exact_match"}
    options |= {"--out": report, "--base-url": url}
    return ["eval", *(part for pair in options.items() for part in pair)]


def test_eval_compares_a_model_with_its_baseline(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """eval scores both models on the same examples and writes the HTML/Markdown report."""
    url, requests = server
    out = io.StringIO()
    code = main(
        [*_compare_argv(tmp_path, url), "--json"],
        out=out,
    )
    assert code == 0
    summary = json.loads(out.getvalue())
    (metric,) = summary["metrics"]
    assert (metric["base"], metric["tuned"], metric["difference"]) == (0.0, 1.0, 1.0)
    assert (tmp_path / "report" / "eval_report.html").is_file()
    assert sorted(r["model"] for r in requests) == ["base"] * 6 + ["tuned"] * 6


def test_eval_without_baseline_prints_scores_and_uses_the_cache(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """eval of one model prints its scores; a second run with a cache sends no request."""
    url, requests = server
    argv = [
        "eval",
        "--model",
        "tuned",
        "--data",
        str(_data(tmp_path)),
        "--metric",
        "exact_match",
        "--base-url",
        url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    ]
    out = io.StringIO()
    assert main(argv, out=out) == 0
    assert json.loads(out.getvalue())["scores"] == {"exact_match": 1.0}
    sent = len(requests)
    assert main(argv, out=io.StringIO()) == 0
    assert len(requests) == sent == 6


def test_chat_keeps_the_conversation(server: tuple[str, list[dict[str, Any]]]) -> None:
    """chat sends the whole conversation, system message first, and prints each reply."""
    url, requests = server
    out = io.StringIO()
    code = main(
        ["chat", "--model", "tuned", "--system", "Be brief.", "--base-url", url],
        out=out,
        stdin=io.StringIO("say hello\n\nsay goodbye\n"),
    )
    assert code == 0
    assert out.getvalue() == "hello\ngoodbye\n"
    assert [m["role"] for m in requests[-1]["messages"]] == ["system", "user", "assistant", "user"]


def test_eval_adds_scores_to_the_model_registry(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """With --registry, the evaluated model's scores land in its registry entry."""
    from finetune_web import FineTunedModel
    from finetune_web.registry import ModelRegistry

    url, _ = server
    registry = ModelRegistry(tmp_path / "models.db")
    registry.register(FineTunedModel(model_id="tuned", base_model="base", backend="openai"))
    argv = [*_compare_argv(tmp_path, url), "--registry", str(tmp_path / "models.db")]
    assert main(argv, out=io.StringIO()) == 0
    entry = registry.get("tuned")
    assert {score.metric: score.score for score in entry.scores} == {"exact_match": 1.0}
