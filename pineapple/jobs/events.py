"""Job events and their delivery to listeners, off the job threads.

Publishing never blocks: events go into a bounded buffer that one
dispatcher thread drains. A slow listener delays other listeners, never a
job; a failing one is logged. When the buffer is full the oldest events are
dropped (and counted) — a listener can always re-read a job's state.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, NamedTuple

log = logging.getLogger("pineapple.jobs")

STATE = "state"
PROGRESS = "progress"
LOG = "log"
REMOVED = "removed"


class JobEvent(NamedTuple):
    """``kind`` is one of ``state``, ``progress``, ``log``, ``removed``.

    ``data`` is the job summary for ``state``, ``{"fraction", "message"}`` for
    ``progress``, the line for ``log`` and None for ``removed``.
    """

    kind: str
    job_id: str
    data: Any


Listener = Callable[[JobEvent], None]


class EventBus:
    """Fan-out of :class:`JobEvent` to listeners on one dispatcher thread."""

    def __init__(self, capacity: int = 10_000, name: str = "pineapple-events") -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._buffer: deque[JobEvent] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._name = name
        self._closed = False
        self._busy = False
        self.dropped = 0

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        with self._cond:
            self._listeners = self._listeners + (listener,)
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, name=self._name, daemon=True)
                self._thread.start()
        return lambda: self._unsubscribe(listener)

    def publish(self, event: JobEvent) -> None:
        """Queue ``event`` for the listeners; returns at once."""
        if not self._listeners:
            return
        with self._cond:
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(event)
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was delivered (True) or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._buffer and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _unsubscribe(self, listener: Listener) -> None:
        with self._cond:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                while not self._buffer and not self._closed:
                    self._cond.wait()
                if not self._buffer:
                    return
                event = self._buffer.popleft()
                self._busy = True
            self._deliver(event)

    def _deliver(self, event: JobEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("job event listener %r failed", listener)
