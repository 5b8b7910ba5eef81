"""Token counting of a run's batches in helper processes, overlapped with the run.

tiktoken releases the GIL while it encodes, but a counting *thread* gains
nothing: between two texts it needs the GIL back and waits up to the switch
interval (5 ms) while the pipeline's Python code runs.  A helper *process*
has its own interpreter.  :class:`BatchCounting` sends each batch's texts to
a helper and reads the lengths back a batch later, while this process reads,
shapes and writes the other batches.  The counts are the ones in-process
counting gives.

Helpers are plain subprocesses running :mod:`finetune_web._count_worker`
with this interpreter and environment (so ``TIKTOKEN_CACHE_DIR`` applies).
Unlike ``multiprocessing`` (spawn or forkserver), they never import the
caller's ``__main__``, so a script without an ``if __name__ == "__main__"``
guard is not run twice, and they work on every platform.  Until a helper has
loaded its encodings (about a second), batches are counted in this process:
a short run never waits for one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from finetune_web._count_worker import receive, send
from finetune_web.errors import ErrorContext, StepError
from finetune_web.formats import ExampleTokens, PreparedBatch, TokenCounter
from finetune_web.records import Example

__all__ = ["BatchCounting", "usable_cpus"]

_WORKER = str(Path(__file__).with_name("_count_worker.py"))
# Runs the worker file as __main__ without importing finetune_web (it starts faster) and
# without the working directory on sys.path.
_BOOT = "import sys, runpy; del sys.path[0]; runpy.run_path(sys.argv.pop(1), run_name='__main__')"


def usable_cpus() -> int:
    """Return the number of CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class _Helper:
    """One helper process and the event set once it has loaded its encodings."""

    def __init__(self, names: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, _WORKER, *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.to_helper: IO[bytes] | None = self.process.stdin
        self.from_helper: IO[bytes] | None = self.process.stdout
        self.ready = threading.Event()
        from_helper, ready = self.from_helper, self.ready

        def wait_until_ready() -> None:
            if from_helper is not None and from_helper.read(1) == b"+":
                ready.set()

        threading.Thread(target=wait_until_ready, daemon=True).start()

    def close(self) -> None:
        if not self.ready.is_set():
            self.process.kill()  # still loading: it has done nothing worth waiting for
        if self.to_helper is not None:
            with contextlib.suppress(OSError):  # it exited already
                self.to_helper.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.from_helper is not None:
            self.from_helper.close()


class _Pending:
    """One submitted batch: its counts, or the helper that will send its lengths."""

    def __init__(
        self,
        counts: dict[str, list[ExampleTokens]] | None = None,
        prepared: dict[str, PreparedBatch] | None = None,
        helper: _Helper | None = None,
    ) -> None:
        self.counts = counts
        self.prepared = prepared
        self.helper = helper


class BatchCounting:
    """Counts batches of examples with several counters, in helper processes when asked.

    Use it as a context manager: :meth:`submit` batches, and take the
    :meth:`result` of the oldest one (results come in submission order).
    Keep about one batch in flight per helper (submit batch *k*, then take
    the result of *k - helpers*): a helper's answers wait in a pipe of
    limited size.

    Args:
        counters: the counters (one per encoding); results are keyed by encoding name.
        helpers: helper processes to count in; 0 counts in this process.
    """

    def __init__(self, counters: Iterable[TokenCounter], *, helpers: int = 0) -> None:
        self.counters = {counter.encoding_name: counter for counter in counters}
        self.helpers = max(0, helpers)
        self._started: list[_Helper] = []
        self._turn = 0
        self._queue: deque[_Pending] = deque()

    def __enter__(self) -> BatchCounting:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _next_helper(self) -> _Helper | None:
        if self.helpers and not self._started:
            try:
                self._started = [_Helper(sorted(self.counters)) for _ in range(self.helpers)]
            except OSError:
                self.helpers = 0  # no subprocesses here: count in this process
                return None
        if not self._started:
            return None
        helper = self._started[self._turn % len(self._started)]
        self._turn += 1
        return helper if helper.ready.is_set() else None

    def submit(self, examples: Sequence[Example]) -> None:
        """Queue the counting of a batch: sent to a ready helper, else done now.

        Raises:
            StepError: a helper process failed.
        """
        helper = self._next_helper()
        if helper is None or helper.to_helper is None:
            counts = {name: c.count_examples(examples) for name, c in self.counters.items()}
            self._queue.append(_Pending(counts=counts))
            return
        prepared = {name: counter.prepare(examples) for name, counter in self.counters.items()}
        try:
            send(helper.to_helper, [(name, batch.texts) for name, batch in prepared.items()])
        except OSError as exc:
            raise _broken(helper) from exc
        self._queue.append(_Pending(prepared=prepared, helper=helper))

    def result(self) -> dict[str, list[ExampleTokens]]:
        """Return the counts of the oldest submitted batch, by encoding name.

        Raises:
            StepError: a helper process failed.
        """
        pending = self._queue.popleft()
        if pending.counts is not None:
            return pending.counts
        helper, prepared = pending.helper, pending.prepared or {}
        try:
            if helper is None or helper.from_helper is None:
                raise EOFError("no helper")
            lengths = receive(helper.from_helper)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise _broken(helper) from exc
        return {
            name: batch.finish(found)
            for (name, batch), found in zip(prepared.items(), lengths, strict=True)
        }

    def close(self) -> None:
        """Stop the helper processes (each exits at the end of its input)."""
        started, self._started = self._started, []
        for helper in started:
            helper.close()


def _broken(helper: _Helper | None) -> StepError:
    code = helper.process.poll() if helper is not None else None
    return StepError(
        f"a token-counting helper process stopped (exit code {code}); run again with "
        "token_workers=0 to count in this process",
        ErrorContext(step="validate"),
    )
