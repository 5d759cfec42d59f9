"""Job events and their delivery to listeners, off the job threads.

Publishing never blocks: events go into a bounded buffer that one
dispatcher thread drains. A slow listener delays other listeners, never a
job; a failing one is logged. When the buffer is full the oldest events are
dropped (and counted) — a listener can always re-read a job's state.

An *inline* listener (``subscribe(listener, inline=True)``) is called on
the publishing thread instead, in publish order: for a listener that only
hands the event over (the socket server appends it to a queue and wakes its
loop), which then costs no thread switch per event. It must be quick and
never block; the dispatcher thread is started only for the others.
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
        self._inline: tuple[Listener, ...] = ()
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
        return bool(self._listeners or self._inline)

    def subscribe(self, listener: Listener, inline: bool = False) -> Callable[[], None]:
        """Add a listener (``inline``: called on the publishing thread, see
        above); returns the function that removes it."""
        with self._cond:
            if inline:
                self._inline = self._inline + (listener,)
                return lambda: self._unsubscribe(listener)
            self._listeners = self._listeners + (listener,)
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, name=self._name, daemon=True)
                self._thread.start()
        return lambda: self._unsubscribe(listener)

    def publish(self, event: JobEvent) -> None:
        """Queue ``event`` for the listeners; returns at once."""
        for listener in self._inline:
            self._call(listener, event)
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
            self._inline = tuple(x for x in self._inline if x is not listener)

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
            self._call(listener, event)

    @staticmethod
    def _call(listener: Listener, event: JobEvent) -> None:
        try:
            listener(event)
        except Exception:
            log.exception("job event listener %r failed", listener)
