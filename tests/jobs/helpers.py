"""Small job classes the engine tests share."""
from __future__ import annotations

import errno
import os
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



class FlakyDisk:
    """A journal writer (``JobJournal.writer``) that fails like a full disk
    once :meth:`fail` is called: it writes ``torn`` bytes of the data first
    (the torn line a real ENOSPC in mid-record leaves), then raises."""

    def __init__(self, torn=7):
        self.error = None
        self.torn = torn
        self.failures = 0

    def fail(self, code=errno.ENOSPC):
        self.error = OSError(code, os.strerror(code))

    def heal(self):
        self.error = None

    def __call__(self, fd, data):
        if self.error is None:
            return os.write(fd, data)
        self.failures += 1
        if self.torn and len(data) > self.torn:
            os.write(fd, bytes(data[:self.torn]))
        raise self.error


class KeyedJob(ReturnJob):
    """A job with a dedup key: an equal active job is answered instead."""

    def __init__(self, key, value=None, **kw):
        super().__init__(value, **kw)
        self.key = key

    def dedup_key(self):
        return ("keyed", self.key)
