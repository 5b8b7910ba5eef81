"""Per-host politeness: how many requests one host gets at once, and how often.

Each host has a number of slots (requests in flight at once) and a time
before which its next request may not start.  Taking a turn takes a slot,
books the next start time (the later of now and the booked time, plus the
host's delay) and waits until it; a server's ``Retry-After`` or a retry's
back-off pushes the host's next start time further, for every request to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from finetune_web.sources._http_errors import Stopped

__all__ = ["HostGate"]

_POLL_SECONDS = 0.2


class _Host:
    def __init__(self, slots: int, delay: float) -> None:
        self.slots = threading.BoundedSemaphore(slots)
        self.lock = threading.Lock()
        self.delay = delay
        self.next_start = 0.0


class HostGate:
    """Spaces the requests to each host (one object per read).

    Args:
        per_host: requests in flight to one host at most.
        min_delay: seconds between the starts of two requests to one host, at least.
        stop: set when the reader stops; waiting workers then raise :class:`Stopped`.
        sleep: how to wait; ``None`` waits on ``stop`` (so a stop ends the wait).
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        *,
        per_host: int,
        min_delay: float,
        stop: threading.Event,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_host = per_host
        self._min_delay = min_delay
        self._stop = stop
        self._sleep = sleep
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()

    def _host(self, host: str) -> _Host:
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                state = self._hosts[host] = _Host(self._per_host, self._min_delay)
            return state

    def wait(self, seconds: float) -> None:
        """Wait ``seconds`` (the injected sleep, else a wait that a stop ends).

        Raises:
            Stopped: the reader stopped.
        """
        if self._stop.is_set():
            raise Stopped
        if seconds > 0:
            if self._sleep is not None:
                self._sleep(seconds)
            else:
                self._stop.wait(seconds)
        if self._stop.is_set():
            raise Stopped

    def set_delay(self, host: str, seconds: float) -> None:
        """Raise the host's delay between request starts to ``seconds`` (never lowers it)."""
        state = self._host(host)
        with state.lock:
            state.delay = max(state.delay, seconds)

    def defer(self, host: str, seconds: float) -> None:
        """Let no request to ``host`` start for ``seconds`` from now."""
        state = self._host(host)
        with state.lock:
            state.next_start = max(state.next_start, self._clock() + seconds)

    @contextmanager
    def turn(self, host: str) -> Iterator[None]:
        """Hold one of the host's slots, from its booked start time until the block ends.

        Raises:
            Stopped: the reader stopped while waiting.
        """
        state = self._host(host)
        while not state.slots.acquire(timeout=_POLL_SECONDS):
            if self._stop.is_set():
                raise Stopped
        try:
            with state.lock:
                now = self._clock()
                start = max(now, state.next_start)
                state.next_start = start + state.delay
            self.wait(start - now)
            yield
        finally:
            state.slots.release()
