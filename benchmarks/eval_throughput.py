"""Evaluation throughput: concurrent requests against one at a time, on a slow local server.

What is measured
----------------
A fake OpenAI-compatible chat completions server runs in this process
(``http.server.ThreadingHTTPServer`` on 127.0.0.1, one thread per
connection).  Each request waits ``--latency`` seconds (default 0.2) before
answering with a ``ChatCompletion`` body built from the openai SDK's own
types; the answer ("The answer is X.") is a fixed function of the prompt,
so both runs must score the same.

The 230 AR-LSAT prompts of ``../shared/realdata/ar_lsat.jsonl`` are scored
with :class:`MultipleChoiceEvaluator` on an :class:`OpenAIChatModel`
pointing at that server, with no cache, twice:

1. **ours**: ``concurrency=16`` (16 requests in flight, a thread pool over
   one HTTP client that keeps its connections alive);
2. **sequential**: the same model with ``concurrency=1``: one request at a
   time over one kept-alive connection, i.e. the plain loop an evaluator
   without batching would run, minus the cost of opening a client per call
   (which would only make the loop slower).

A third run with an on-disk cache shows a re-run costs no request.  When
``../shared/realdata`` is absent, 230 synthetic five-option prompts are
generated instead (the output says ``"data": "synthetic"``).

The last line is one JSON object: ``requests_per_s`` (ours),
``sequential_requests_per_s``, ``speedup``, ``scores_identical`` (same
per-example scores), and the settings.  Goal: speedup >= 10.

Run it (about 50 seconds, most of it the sequential run)::

    .venv/bin/python benchmarks/eval_throughput.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionUsage

from finetune_web.evaluation import MultipleChoiceEvaluator, OpenAIChatModel, load_evals_jsonl
from finetune_web.records import EvalResult, Example, Message

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"


def answer_for(prompt: str) -> str:
    """The server's fixed answer to a prompt: a letter picked by the prompt's hash."""
    letter = "ABCDE"[hashlib.sha256(prompt.encode()).digest()[0] % 5]
    return f"The answer is {letter}."


def _body(content: str, model: str) -> bytes:
    completion = ChatCompletion(
        id="chatcmpl-bench",
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=0,
                finish_reason="stop",
                message=ChatCompletionMessage(role="assistant", content=content),
            )
        ],
        usage=CompletionUsage(prompt_tokens=100, completion_tokens=5, total_tokens=105),
    )
    return json.dumps(completion.model_dump(mode="json")).encode()


@contextmanager
def fake_server(latency: float) -> Iterator[tuple[str, list[int]]]:
    """Run the fake endpoint; yield its base URL and a one-item request counter."""
    counter = [0]
    bodies: dict[str, bytes] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep connections alive, as real endpoints do

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
            # algorithm and delayed ACKs add ~40 ms to every response.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                counter[0] += 1
            time.sleep(latency)
            content = answer_for(request["messages"][-1]["content"])
            with lock:  # five distinct bodies: build each once, keep the server's CPU share low
                body = bodies.get(content) or bodies.setdefault(
                    content, _body(content, request["model"])
                )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", counter
    finally:
        server.shutdown()
        server.server_close()


def synthetic_examples(n: int) -> list[Example]:
    """``n`` five-option questions with a fixed answer each (when the real data is absent)."""
    examples = []
    for k in range(n):
        options = " ".join(f"{letter}. option {letter.lower()}{k}" for letter in "ABCDE")
        examples.append(
            Example(
                messages=[
                    Message(role="system", content="Answer with the letter of one option."),
                    Message(role="user", content=f"Synthetic question {k}? {options}"),
                    Message(role="assistant", content="ABCDE"[k % 5]),
                ],
                id=f"synthetic#{k}",
            )
        )
    return examples


def timed(model: OpenAIChatModel, examples: list[Example]) -> tuple[EvalResult, float]:
    """Score the examples; return the result and the seconds it took."""
    start = time.perf_counter()
    result = MultipleChoiceEvaluator().evaluate(model, examples)
    return result, time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per response")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--n", type=int, default=230, help="prompts (synthetic data only)")
    args = parser.parse_args()

    path = REALDATA / "ar_lsat.jsonl"
    if path.is_file():
        examples, data = load_evals_jsonl(path), "ar_lsat"
    else:
        print(f"{path} is absent: using {args.n} synthetic prompts instead")
        examples, data = synthetic_examples(args.n), "synthetic"
    n = len(examples)

    with fake_server(args.latency) as (base_url, counter):

        def model(concurrency: int, cache_dir: Path | None = None) -> OpenAIChatModel:
            return OpenAIChatModel(
                model="fake-model",
                base_url=base_url,
                api_key="unused-local-key",
                concurrency=concurrency,
                cache_dir=cache_dir,
            )

        ours, seconds = timed(model(args.concurrency), examples)
        sequential, sequential_seconds = timed(model(1), examples)
        with tempfile.TemporaryDirectory() as folder:
            timed(model(args.concurrency, Path(folder)), examples)
            before = counter[0]
            cached, cached_seconds = timed(model(args.concurrency, Path(folder)), examples)
            cached_requests = counter[0] - before

    identical = ours.per_example == sequential.per_example == cached.per_example
    rate, sequential_rate = n / seconds, n / sequential_seconds
    print(f"{n} prompts ({data}), {args.latency * 1000:.0f} ms per response")
    print(f"{'run':<28}{'seconds':>9}{'req/s':>9}{'accuracy':>10}")
    for label, result, secs in (
        (f"ours (concurrency {args.concurrency})", ours, seconds),
        ("sequential (concurrency 1)", sequential, sequential_seconds),
        ("cached re-run", cached, cached_seconds),
    ):
        print(f"{label:<28}{secs:>9.2f}{n / secs:>9.1f}{result.score:>10.4f}")
    print(f"cached re-run sent {cached_requests} requests")
    figures = {
        "requests_per_s": round(rate, 2),
        "sequential_requests_per_s": round(sequential_rate, 2),
        "speedup": round(rate / sequential_rate, 2),
        "scores_identical": identical,
        "seconds": round(seconds, 3),
        "sequential_seconds": round(sequential_seconds, 3),
        "cached_rerun_requests": cached_requests,
        "cached_rerun_seconds": round(cached_seconds, 3),
        "accuracy": ours.score,
        "unparseable": ours.details["unparseable"],
        "prompts": n,
        "data": data,
        "latency_ms": round(args.latency * 1000),
        "concurrency": args.concurrency,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
