"""Clocks: the real one, and a fake one tests move by hand.

Everything in the engine that depends on time (timestamps, timeouts, retry
delays, retention) asks a clock, so tests pin time instead of sleeping.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SystemClock:
    """Wall time for timestamps, monotonic time for deadlines."""

    drives_timers = False

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Block on ``cond`` (held by the caller) for at most ``timeout`` seconds."""
        cond.wait(timeout)

    def on_advance(self, hook: Callable[[], None]) -> None:
        """Real time advances by itself: nothing to register."""


class FakeClock(SystemClock):
    """A clock that only moves when :meth:`advance` is called.

    Timers registered on a :class:`~pineapple.jobs.timers.TimerQueue` that uses
    this clock fire synchronously inside ``advance``, in the caller's thread,
    so a test knows they have run when ``advance`` returns. Blocking waits
    (``wait``) still use real time: the fake clock only controls deadlines.
    """

    drives_timers = True

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def on_advance(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def advance(self, seconds: float) -> None:
        """Move time forward and run whatever has become due."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._wall += seconds
            self._mono += seconds
        for hook in list(self._hooks):
            hook()
