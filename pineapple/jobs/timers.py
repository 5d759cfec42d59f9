"""One timer thread for the whole engine: timeouts, retry delays, retention.

The thread sleeps until the earliest deadline (or forever when there is
none), so an idle manager causes no wake-ups.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

from .clock import SystemClock

log = logging.getLogger("pineapple.jobs")


class TimerHandle:
    """A scheduled call; :meth:`cancel` makes it a no-op."""

    __slots__ = ("deadline", "callback", "cancelled", "_queue")

    def __init__(self, deadline: float, callback: Callable[[], None], queue: TimerQueue | None = None) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self._queue = queue

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self._queue is not None:
                self._queue._forget_cancelled()


class TimerQueue:
    """Calls functions at monotonic deadlines of ``clock``."""

    def __init__(self, clock: SystemClock, name: str = "pineapple-timers") -> None:
        self.clock = clock
        self._name = name
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._cancelled = 0
        clock.on_advance(self.run_due)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self.clock.monotonic() + max(0.0, delay), callback)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(deadline, callback, self)
        with self._cond:
            if self._closed:
                handle.cancel()
                return handle
            heapq.heappush(self._heap, (deadline, next(self._seq), handle))
            self._ensure_thread()
            if self._heap[0][2] is handle:
                # Only a new earliest deadline changes the thread's wait: a
                # job's timeout is mostly later than those already armed.
                self._cond.notify()
        return handle

    def run_due(self) -> int:
        """Run every timer whose deadline has passed; returns how many ran."""
        ran = 0
        for handle in self._pop_due():
            self._invoke(handle)
            ran += 1
        return ran

    def close(self) -> None:
        """Drop pending timers and stop the thread."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __len__(self) -> int:
        return sum(1 for _, _, h in self._heap if not h.cancelled)

    def _forget_cancelled(self) -> None:
        # Cancelled timers (e.g. the timeout of a job that finished in time)
        # would otherwise stay in the heap until their deadline: rebuild it
        # once they are the majority so memory stays flat under churn.
        with self._cond:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _pop_due(self) -> list[TimerHandle]:
        now = self.clock.monotonic()
        due = []
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                handle = heapq.heappop(self._heap)[2]
                if not handle.cancelled:
                    due.append(handle)
        return due

    @staticmethod
    def _invoke(handle: TimerHandle) -> None:
        if handle.cancelled:
            return
        try:
            handle.callback()
        except Exception:  # a bad timer must not kill the timer thread
            log.exception("timer callback failed")

    def _ensure_thread(self) -> None:
        # A fake clock fires timers from advance(); no thread needed.
        if self._thread is None and not self.clock.drives_timers:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._seconds_to_next() != 0.0:
                    self.clock.wait(self._cond, self._seconds_to_next())
                if self._closed:
                    return
            self.run_due()

    def _seconds_to_next(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self.clock.monotonic())
