"""A small bounded pool of daemon threads for module handlers.

Not :class:`concurrent.futures.ThreadPoolExecutor`: its worker threads are
joined at interpreter exit, so one handler stuck on a hung subprocess would
keep a module from ever exiting after SIGTERM. Here workers are daemon
threads, started only when needed, and the queue of waiting requests is
bounded so a burst is refused ("busy") instead of piling up in RAM.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Tuple

Task = Tuple[Callable[..., Any], Tuple[Any, ...]]


class WorkerPool:
    """Run tasks on at most ``max_workers`` threads; at most ``max_pending``
    more wait for a free worker."""

    def __init__(self, max_workers: int, max_pending: int, name: str, logger: logging.Logger) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.max_pending = max_pending
        self._name = name
        self._log = logger
        self._queue: deque[Task] = deque()
        self._cond = threading.Condition()
        self._threads = 0
        self._idle = 0
        self._active = 0
        self._closed = False

    @property
    def active(self) -> int:
        """Tasks running now."""
        with self._cond:
            return self._active

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)``; False (nothing queued) when closed or full."""
        with self._cond:
            # Tasks a free worker will take at once do not count as waiting.
            free = self.max_workers - self._active
            if self._closed or len(self._queue) >= self.max_pending + max(free, 0):
                return False
            self._queue.append((fn, args))
            if len(self._queue) > self._idle and self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()
            self._cond.notify()
            return True

    def close(self, grace: float) -> tuple[list[Task], int]:
        """Stop taking tasks; wait up to ``grace`` seconds for running ones.
        Returns the tasks that never started and how many are still running."""
        with self._cond:
            self._closed = True
            never_started = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
            deadline = time.monotonic() + grace
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return never_started, self._active

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._queue and not self._closed:
                    self._cond.wait()
                self._idle -= 1
                if not self._queue:  # closed and drained
                    self._threads -= 1
                    return
                fn, args = self._queue.popleft()
                self._active += 1
            try:
                fn(*args)
            except Exception:  # a task's own errors are its business; the worker lives on
                self._log.exception("module worker task failed")
            finally:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()
