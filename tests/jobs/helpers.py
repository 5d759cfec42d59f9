"""Small job classes the engine tests share."""
from __future__ import annotations

import threading
import time

from pineapple.errors import JobError
from pineapple.jobs import Job

WAIT = 10.0  # real seconds any test waits for a thread at most


class ReturnJob(Job):
    def __init__(self, value=None, **kw):
        super().__init__(**kw)
        self.value = value

    def do_work(self, logger):
        logger.info("returning %r", self.value)
        return self.value


class FailJob(Job):
    def __init__(self, message="boom", code=None, **kw):
        super().__init__(**kw)
        self.message, self.code = message, code

    def do_work(self, logger):
        if self.code:
            raise JobError(self.message, self.code)
        raise RuntimeError(self.message)


class BlockingJob(Job):
    """Runs until released (or stopped, when ``obey_stop``)."""

    def __init__(self, obey_stop=True, **kw):
        super().__init__(**kw)
        self.started = threading.Event()
        self.release = threading.Event()
        self.obey_stop = obey_stop
        self.stop_calls = 0

    def do_work(self, logger):
        self.started.set()
        assert self.release.wait(WAIT), "BlockingJob was never released"
        return "released"

    def stop(self):
        self.stop_calls += 1
        if self.obey_stop:
            self.release.set()


class IntervalJob(Job):
    """Records when it ran (monotonic start, end) into a shared list."""

    def __init__(self, record, index, duration=0.002, barrier=None, **kw):
        super().__init__(**kw)
        self.record, self.index, self.duration, self.barrier = record, index, duration, barrier

    def do_work(self, logger):
        start = time.monotonic()
        if self.barrier is not None:
            self.barrier.wait(WAIT)
        time.sleep(self.duration)  # the "work": a real job takes time
        self.record.append((self.index, self.resource, start, time.monotonic()))
