"""A bounded pool of worker threads fed by a queue, with exclusive resources:
the one pool of the library (the engine's jobs, the module framework's
request handlers). A base module: it imports nothing of pineapple.

Jobs that name the same resource run one at a time, in submission order;
the others run beside them. A resource is held from the moment its job
enters the ready queue until that job's run returns, so a later job on the
same resource can never overtake an earlier one.

Two lanes, one pool: jobs without a resource run on at most ``size``
threads; a job holding its resource never waits for one of those — it
gets a thread of its own. So long jobs (a capture, a sniffer that never
ends) filling every general thread cannot keep an opkg job waiting, and
the thread count stays bounded: at most ``size`` plus one per resource in
use (``opkg`` is usually the only one). Idle threads beyond ``size`` exit.

The pool runs anything with a ``resource`` (None for none) and an ``id``:
the engine's jobs, and :class:`Task` (a plain call) for the module
framework's request handlers, which also bound their queue
(``max_pending``, :meth:`offer`). One pool mechanism for the whole library.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

# Anything with ``resource`` (a name, or None) and ``id``: an engine Job or a Task.
Work = Any

log = logging.getLogger("pineapple.jobs")


class Task:
    """A plain call for the pool: ``fn(*args)``, no resource."""

    __slots__ = ("fn", "args")
    resource = None

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    @property
    def id(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def __call__(self) -> None:
        self.fn(*self.args)


def run_task(task: Task) -> None:
    """The ``run`` of a pool of :class:`Task`: the call itself."""
    task()


class WorkerPool:
    """Runs ``run(job)`` on at most ``size`` threads, started as work arrives.

    ``max_pending`` bounds how many jobs without a resource may wait for a
    thread (None: no bound); only :meth:`offer` applies it."""

    def __init__(self, run: Callable[[Work], None], size: int = 2, name: str = "pineapple-worker",
                 max_pending: int | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self._run = run
        self.size = size
        self.max_pending = max_pending
        self._name = name
        self._ready: deque[Work] = deque()  # jobs without a resource, ready to run
        self._ready_exclusive: deque[Work] = deque()  # jobs holding their resource, ready to run
        self._busy_general = 0  # threads running a job without a resource (at most size)
        self._busy_exclusive = 0  # threads running a job that holds its resource
        self._lanes: dict[str, deque[Work]] = {}  # waiting jobs behind a busy resource
        self._held: set[str] = set()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._started = 0  # workers ever started, for their names
        self._closed = False

    def submit(self, job: Work) -> None:
        """Queue ``job``; it runs when a worker and its resource are free."""
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is closed")
            if job.resource is None or job.resource not in self._held:
                self._make_ready(job)
            else:
                self._lanes.setdefault(job.resource, deque()).append(job)

    def offer(self, job: Work) -> bool:
        """Queue ``job`` unless the pool is closed or ``max_pending`` jobs
        already wait for a thread; False (nothing queued) then."""
        with self._cond:
            waiting = len(self._ready) - max(0, self.size - self._busy_general)
            if self._closed or (self.max_pending is not None and waiting >= self.max_pending):
                return False
            self.submit(job)  # the condition's lock is re-entrant
            return True

    def withdraw(self, job: Work) -> bool:
        """Take a job that has not started out of the queue (False if it has)."""
        with self._cond:
            lane = self._lanes.get(job.resource or "")
            if lane is not None and job in lane:
                lane.remove(job)
                if not lane:
                    del self._lanes[job.resource]
                return True
            ready = self._ready_exclusive if job.resource is not None else self._ready
            if job in ready:
                ready.remove(job)
                self._release(job.resource)
                return True
            return False

    def pending(self) -> int:
        """Jobs waiting to start."""
        with self._cond:
            return len(self._ready) + len(self._ready_exclusive) + sum(len(lane) for lane in self._lanes.values())

    def close(self) -> list[Work]:
        """Stop taking work; returns the jobs that never started. Running jobs
        finish on their threads, which then exit."""
        with self._cond:
            self._closed = True
            leftover = list(self._ready) + list(self._ready_exclusive)
            for lane in self._lanes.values():
                leftover.extend(lane)
            self._ready.clear()
            self._ready_exclusive.clear()
            self._lanes.clear()
            self._cond.notify_all()
        return leftover

    def resize(self, size: int) -> None:
        """Run jobs without a resource on at most ``size`` threads from now
        on: more start as work waits; surplus threads exit when their current
        job returns."""
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        with self._cond:
            self.size = size
            while self._startable() > self._idle and len(self._threads) < self._cap():
                self._start_worker()
            self._cond.notify_all()  # idle surplus workers wake up and exit

    def join(self, timeout: float | None = None) -> None:
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(timeout)

    @property
    def busy(self) -> int:
        """Jobs running now."""
        with self._cond:
            return self._busy_general + self._busy_exclusive

    @property
    def thread_count(self) -> int:
        return sum(1 for t in self._threads if t.is_alive())

    # ----------------------------------------------------------- internals
    def _make_ready(self, job: Work) -> None:
        if job.resource is not None:
            self._held.add(job.resource)
            self._ready_exclusive.append(job)
        else:
            self._ready.append(job)
        self._wake_worker()

    def _startable(self) -> int:
        """Ready jobs that may start now (lock held): every one holding its
        resource, the others while fewer than ``size`` of them run."""
        return len(self._ready_exclusive) + min(len(self._ready), max(0, self.size - self._busy_general))

    def _cap(self) -> int:
        """Threads allowed now (lock held): ``size``, plus one per job that
        holds its resource (running or ready: at most one per resource)."""
        return self.size + self._busy_exclusive + len(self._ready_exclusive)

    def _wake_worker(self) -> None:
        # Woken workers only count as busy once they run, so compare the
        # startable jobs against the idle ones rather than testing "anyone idle?".
        if self._startable() > self._idle and len(self._threads) < self._cap():
            self._start_worker()
        else:
            self._cond.notify()

    def _release(self, resource: str | None, wake: bool = True) -> None:
        """``resource`` is free: its next job becomes ready. ``wake=False``
        when the calling worker is about to take a job itself (it finds
        this one first): waking another thread for it costs a futex wake and
        a thread switch per job and gains nothing."""
        if resource is None:
            return
        lane = self._lanes.get(resource)
        if lane:
            self._ready_exclusive.append(lane.popleft())  # the resource passes straight on
            if not lane:
                del self._lanes[resource]
            if wake:
                self._wake_worker()
        else:
            self._held.discard(resource)

    def _start_worker(self) -> None:
        self._started += 1
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        try:
            while True:
                job = self._next_job()
                if job is None:
                    return
                try:
                    self._run(job)
                except Exception:  # run() answers for its job; a worker never dies of it
                    log.exception("worker: running job %s failed", job.id)
                finally:
                    with self._cond:
                        if job.resource is None:
                            self._busy_general -= 1
                        else:
                            self._busy_exclusive -= 1
                        self._release(job.resource, wake=False)  # _next_job takes it first, on this thread
        finally:
            self._retire(threading.current_thread())

    def _retire(self, thread: threading.Thread) -> None:
        """A worker ends: forget it, and start a replacement if work is
        waiting (a worker killed by something run() could not catch)."""
        with self._cond:
            if thread not in self._threads:
                return  # a surplus worker after a resize, already forgotten
            self._threads.remove(thread)
            if not self._closed and self._startable():
                log.error("worker %s ended with jobs waiting; starting another", thread.name)
                self._wake_worker()

    def _next_job(self) -> Work | None:
        with self._cond:
            while True:
                if self._ready_exclusive:
                    self._busy_exclusive += 1
                    return self._ready_exclusive.popleft()
                if self._ready and self._busy_general < self.size:
                    self._busy_general += 1
                    return self._ready.popleft()
                if self._closed:
                    return None
                if self._surplus():
                    self._threads.remove(threading.current_thread())
                    return None
                self._idle += 1
                self._cond.wait()
                self._idle -= 1

    def _surplus(self) -> bool:
        # Lock held, this thread idle: more threads than the general lane
        # (size) plus the busy exclusive ones (the pool shrank, or an
        # exclusive job just ended): this one is one too many.
        return len(self._threads) > self.size + self._busy_exclusive
