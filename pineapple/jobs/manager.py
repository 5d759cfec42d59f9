"""The :class:`JobManager`: runs jobs on a bounded worker pool and keeps
their records until they are pruned.

Compatible with the WiFi Pineapple library's JobManager (``execute_job``,
``get_job``, ``prune_completed_jobs``, ``remove_job``) and fixed: a bounded
pool instead of a thread per job, timeouts, retries, isolated callbacks,
events, automatic pruning and an optional journal that survives restarts.

Surprising behaviour worth knowing (see docs/engine.md):

- ``is_complete`` becomes True only after every callback has run, so a
  poller never sees "done" while post-install work is still going on.
  Inside a callback ``job.outcome`` and ``job.was_successful`` are already
  final while ``job.state`` still reads ``running``.
- Cancel and timeout call ``job.stop()``; a job that ignores it keeps its
  worker thread (and resource) until ``do_work`` returns, but its record is
  finished as cancelled / timed out after ``stop_grace`` seconds.
- After a restart, jobs that were queued or running come back
  ``interrupted`` (complete, with an error) and are pruned like the others.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Callable, NamedTuple

from .. import errors
from ..workers import WorkerPool
from .clock import SystemClock
from .events import REMOVED, STATE, EventBus, JobEvent, Listener
from .job import Job, JobLogger, RecordedJob, error_from_exception
from .job_runner import RunnerMap
from .records import record_problem
from .state import ACTIVE_STATES, CANCELLED, FAILED, HELD, INTERRUPTED, QUEUED, RUNNING, SUCCEEDED
from .store import RETRY_INTERVAL, JobJournal, UnsavableRecord
from .timers import TimerHandle, TimerQueue

Callback = Callable[[Job], None]

# Running totals kept by the manager (see JobManager.totals)
TOTALS = ("submitted", SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)

# Why a running job was asked to stop -> (final state, error code, message)
_STOPPED_LOG = {errors.CANCELLED: "cancelled", errors.TIMEOUT: "timed out"}
_STOP_OUTCOMES = {
    "cancelled": (CANCELLED, errors.CANCELLED, "cancelled"),
    "shutdown": (CANCELLED, errors.CANCELLED, "cancelled: the job manager shut down"),
    "timeout": (FAILED, errors.TIMEOUT, "timed out after {timeout:g}s"),
}


_KEEP: Any = object()  # set_limits: "leave this limit as it is"


class Submission(NamedTuple):
    """What :meth:`JobManager.submit` answers: the id, and whether an equal
    job was already queued or running (then ``job_id`` is that job's)."""

    job_id: str
    duplicate: bool


def new_job_id() -> str:
    """A random (version 4) UUID string, without importing ``uuid``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class JobManager:
    """Runs :class:`Job` objects in the background and tracks them by id.

    :param name: the manager's name (``name``), also its logger's name (as in
        the Pineapple library); with a ``module`` the logger is the module's
        (``NAME.jobs`` under it), so job lines land in the module's log.
    :param log_level: level of that logger.
    :param module: a Pineapple ``Module``; when given, ``poll_job`` and
        ``check_background_job`` actions (the same answer: Hak5 front ends
        poll both) and a shutdown handler are registered on it.
    :param workers: threads for jobs without a ``resource`` (started on
        demand). Jobs holding a resource (the opkg jobs) never wait for
        these: each gets a thread of its own, so at most ``workers`` plus
        one per resource in use run at once (see :mod:`.pool`).
    :param retention: seconds a finished job is kept (None: forever).
    :param max_finished: finished jobs kept at most, oldest dropped first.
    :param max_queued: jobs waiting to start at most (then ``queue_full``);
        None (the default, as Hak5's library): no limit. The daemon sets one.
    :param state_dir: where the journal lives; None keeps records in memory only.
    :param clock: time source (tests pass a :class:`FakeClock`).
    :param stop_grace: seconds a stopped job gets before its record is finished anyway.
    """

    def __init__(self, name: str = "pineapple", log_level: int = logging.ERROR, module: Any = None, *,
                 workers: int = 4, retention: float | None = 600.0, max_finished: int | None = 50,
                 max_queued: int | None = None, state_dir: str | os.PathLike | None = None,
                 clock: SystemClock | None = None, stop_grace: float = 10.0,
                 journal_max_bytes: int | None = None) -> None:
        self.name = name
        module_logger = getattr(module, "logger", None)
        self.logger = (module_logger.getChild("jobs") if isinstance(module_logger, logging.Logger)
                       else logging.getLogger(name))
        self.logger.setLevel(log_level)
        self.clock = clock or SystemClock()
        self.retention = retention
        self.max_finished = max_finished
        self.max_queued = max_queued
        self.stop_grace = stop_grace
        self.events = EventBus()
        self.timers = TimerQueue(self.clock)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._active_keys: dict[tuple, str] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()
        self._expiry: TimerHandle | None = None
        self._held: set[str] = set()  # ids of held jobs: they count against max_queued
        self._totals = dict.fromkeys(TOTALS, 0)
        self._journal_retry: TimerHandle | None = None
        self._closing = False
        self._journal: JobJournal | None = None
        self._pool = WorkerPool(self._run, workers)
        self._job_hooks = (self._on_job_event, self._save_now)
        self._journal = self._open_journal(state_dir, journal_max_bytes)
        if module is not None:
            self._attach_module(module)

    # ================================================================ submit
    def execute_job(self, job: Job, callbacks: Iterable[Callback] | None = None) -> str:
        """Queue ``job`` and return its id. ``callbacks`` run, in order, after
        the job finishes (whatever its outcome); each is isolated."""
        return self.submit(job, callbacks).job_id

    def submit(self, job: Job, callbacks: Iterable[Callback] | None = None, hold: bool = False) -> Submission:
        """Like :meth:`execute_job`, but says whether an equal active job
        (same :meth:`Job.dedup_key`) was found and reused instead. With
        ``hold`` the job waits in state ``held`` until :meth:`release_job`."""
        with self._lock:
            self._check_accepting()
            duplicate = self._active_duplicate(job)
            if duplicate is not None:
                return Submission(duplicate, True)
            self._register(job, callbacks, HELD if hold else QUEUED)
            self._totals["submitted"] += 1
            if hold:
                self._held.add(job.id)
            else:
                self._pool.submit(job)
        return Submission(job.id, False)

    def hold_job(self, job_id: str) -> bool:
        """Keep a queued job from starting until :meth:`release_job`.
        False when it is not waiting to start (running, finished, unknown)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != QUEUED or job.stop_requested or not self._unqueue(job):
                return False  # already held too: nothing was done
            self._transition(job, HELD)
            return True

    def release_job(self, job_id: str) -> bool:
        """Let a held job run (it queues behind the jobs already waiting).
        False when the job is not held."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != HELD:
                return False
            self._transition(job, QUEUED)
            self._pool.submit(job)
            return True

    def restart_job(self, job_id: str, build: Callable[[Job], Job]) -> Submission:
        """Run a finished job again, as a new job built by ``build(old_job)``.

        The new record names its parent (``parent_id``) and the old one its
        child (``child_id``). Answered by an equal active job instead (a
        duplicate), that job becomes the child, and names the old one as its
        parent unless it has one already. Raises ``unknown_job``, or
        ``job_active`` for a job that is still queued, held or running."""
        old = self._finished_job(job_id)
        new = build(old)
        new.parent_id = old.id
        submission = self.submit(new)
        with self._lock:
            child = self._jobs.get(submission.job_id)
            if child is not None and child.parent_id is None:
                child.parent_id = old.id
                self._save(child)
            old.child_id = submission.job_id
            self._save(old)
        return submission

    # ================================================================ query
    def get_job(self, job_id: str, remove_if_complete: bool = True) -> Job | None:
        """The job with ``job_id`` or None. With ``remove_if_complete`` (the
        default, as in the Pineapple library) a completed job is removed as it
        is returned; an active job is never removed here."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and remove_if_complete and job.is_complete:
                self._drop(job_id)
            return job

    def list_jobs(self, state: str | Iterable[str] | None = None) -> list[Job]:
        """Jobs, newest first; ``state`` filters by one state or several."""
        wanted = {state} if isinstance(state, str) else (set(state) if state is not None else None)
        with self._lock:
            jobs = list(self._jobs.values())
        return [job for job in reversed(jobs) if wanted is None or job.state in wanted]

    def waiting(self) -> int:
        """Jobs waiting to start (queued or held): what ``max_queued`` bounds."""
        with self._lock:
            return self._pool.pending() + len(self._held)

    def totals(self) -> dict[str, int]:
        """Running totals since this manager started: jobs ``submitted``
        (duplicates answered with another job's id are not counted) and jobs
        that ended ``succeeded``, ``failed``, ``cancelled`` or ``interrupted``
        (a retried job counts once, when it ends). All submitted jobs have
        ended when ``submitted`` equals the sum of the other four."""
        with self._lock:
            return dict(self._totals)

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        counts: dict[str, int] = {}
        with self._lock:
            for job in self._jobs.values():
                counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is complete and return it.

        Raises :class:`~pineapple.errors.JobError` (``unknown_job``) for an
        unknown id and :class:`TimeoutError` when ``timeout`` (real seconds)
        passes first."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:
                raise errors.JobError(f"no job with id {job_id!r}", errors.UNKNOWN_JOB)
            if not self._changed.wait_for(lambda: job.is_complete, timeout):
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout}s")
            return job

    # ============================================================== control
    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or held job at once, or ask a running one to stop.

        Returns True when the job was active (it will end ``cancelled``),
        False when it is unknown or already finished."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.outcome is not None:
                return False
            if job.state == RUNNING:
                self._request_stop(job, "cancelled")
                return True
            job.stop_requested = True
            if job.state != HELD and not self._unqueue(job):
                return True  # a worker just took it: _run sees stop_requested
        self._finish(job, CANCELLED, "cancelled before it started", errors.CANCELLED)
        return True

    def stop_job(self, job: Job | None = None, job_id: str | None = None) -> bool:
        """Hak5's name for :meth:`cancel_job`, taking the job or its id.
        A job that already finished is left alone (Hak5's called its
        ``stop()`` again). ValueError when neither is given."""
        if job is None and job_id is None:
            raise ValueError("stop_job needs a job or a job_id")
        job_id = job_id if job_id is not None else job.id  # type: ignore[union-attr]
        return job_id is not None and self.cancel_job(job_id)

    @property
    def jobs(self) -> RunnerMap:
        """Every job this manager knows (until pruned), by id, in submission
        order, each as a :class:`~pineapple.jobs.job_runner.JobRunner`
        (``.job``, ``.running``): Hak5's ``JobManager.jobs``, live."""
        return RunnerMap(self)

    def remove_job(self, job_id: str) -> bool:
        """Forget a job. Returns True if it existed, False for an unknown id
        (never raises). A queued or running job is cancelled first."""
        if not self.cancel_job(job_id) and job_id not in self._jobs:
            return False
        with self._lock:
            self._drop(job_id)
        return True

    def prune_completed_jobs(self) -> int:
        """Remove every completed job now; returns how many were removed."""
        with self._lock:
            done = [job_id for job_id, job in self._jobs.items() if job.is_complete]
            for job_id in done:
                self._drop(job_id)
            return len(done)

    def add_listener(self, listener: Listener, inline: bool = False) -> Callable[[], None]:
        """Subscribe to :class:`~pineapple.jobs.events.JobEvent` (state,
        progress, log, removed). Listeners run on one dispatcher thread, never
        on a job's thread; an ``inline`` one is called where the event
        happens (a job's thread, or under the manager's lock): it must only
        hand the event over, never block or call the manager. Returns the
        function that unsubscribes."""
        return self.events.subscribe(listener, inline)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop accepting jobs and finish.

        Jobs still waiting to start end ``interrupted``. With ``wait`` the
        running jobs get ``timeout`` seconds (None: as long as they need) to
        finish; whatever still runs then is cancelled and given
        ``stop_grace`` seconds. Without ``wait`` running jobs are cancelled at
        once and the call does not wait for them. The journal is then closed.
        """
        try:
            with self._lock:
                self._closing = True
                leftover = self._pool.close() + [job for job in self._jobs.values() if job.state == HELD]
                for job in leftover:
                    self._interrupt(job, "the job manager shut down before the job started")
                    self._totals[INTERRUPTED] += 1
            if wait and not self._wait_idle(timeout):
                self.stop_running("shutdown")
                self._wait_idle(self.stop_grace + 1.0)
            elif not wait:
                self.stop_running("shutdown")
        finally:  # whatever failed above, the threads stop and the journal is released
            self.events.close(timeout=2.0)
            self.timers.close()
            if self._journal is not None:
                self._journal.close()

    def pending_recoveries(self) -> list[Job]:
        """Jobs read back from the journal whose record still names an
        :attr:`Job.intent`: work outside this process that a crash may have
        left half done. Oldest first. Close each with :meth:`record_recovery`."""
        with self._lock:
            return [job for job in self._jobs.values() if isinstance(job, RecordedJob) and job.intent is not None]

    def record_recovery(self, job_id: str, report: dict, summary: str) -> None:
        """Close the recovery of a job from :meth:`pending_recoveries`: its
        ``result["recovery"]`` becomes ``report``, ``summary`` is added to
        its error and log, and its intent is cleared (saved at once)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.result = {**(job.result if isinstance(job.result, dict) else {}), "recovery": report}
            job.error = f"{job.error}\n{summary}" if job.error else summary
            job.add_log_line(summary)
            job.intent = None
            self._save(job)
            self._changed.notify_all()

    def journal_status(self) -> dict[str, Any]:
        """The journal's health for ``stats``: ``state`` is ``ok``,
        ``failing`` (records kept in memory, submits refused until it can be
        written), ``memory`` (read-only state directory: nothing survives a
        restart) or ``off`` (no ``state_dir``); see :mod:`pineapple.jobs.store`."""
        if self._journal is None:
            return {"state": "off", "path": None, "records": 0, "error": None, "failing_since": None,
                    "skipped": 0}
        return self._journal.status()

    def set_limits(self, *, workers: int | None = None, retention: Any = _KEEP, max_finished: Any = _KEEP,
                   max_queued: int | None = None, stop_grace: float | None = None,
                   journal_max_bytes: int | None = None) -> None:
        """Change limits while jobs run (the daemon's reload). Arguments left
        out stay as they are; ``retention``/``max_finished`` may be None
        (no limit). Shorter retention or fewer finished jobs prune at once;
        a smaller pool lets running jobs finish (surplus threads then exit)."""
        with self._lock:
            if workers is not None:
                self._pool.resize(workers)
            if max_queued is not None:
                self.max_queued = max_queued
            if stop_grace is not None:
                self.stop_grace = stop_grace
            if journal_max_bytes is not None and self._journal is not None:
                self._journal.max_bytes = journal_max_bytes
            if retention is not _KEEP or max_finished is not _KEEP:
                self.retention = self.retention if retention is _KEEP else retention
                self.max_finished = self.max_finished if max_finished is _KEEP else max_finished
                self._reapply_retention()

    def _reapply_retention(self) -> None:
        """Lock held: prune by the new limits and re-arm the expiry timer."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        while self.max_finished is not None and len(self._finished) > self.max_finished:
            self._drop(next(iter(self._finished)))
        if self.retention is not None and self._finished:
            self._expire()
        self._schedule_expiry()

    @property
    def thread_count(self) -> int:
        """Worker threads alive (the pool size is the bound)."""
        return self._pool.thread_count

    @property
    def workers(self) -> int:
        return self._pool.size

    # ============================================================ internals
    def _finished_job(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise errors.JobError(f"no job with id {job_id!r}", errors.UNKNOWN_JOB)
        if not job.is_complete:
            raise errors.JobError(f"job {job_id} is {job.state}; only a finished job can be restarted",
                                  errors.JOB_ACTIVE)
        return job

    def _check_accepting(self) -> None:
        if self._closing:
            raise errors.JobError("the job manager is shutting down", errors.SHUTTING_DOWN)
        if self.max_queued is not None and self._pool.pending() + len(self._held) >= self.max_queued:
            raise errors.JobError(f"too many queued jobs (limit {self.max_queued})", errors.QUEUE_FULL)

    def _active_duplicate(self, job: Job) -> str | None:
        key = job.dedup_key()
        return None if key is None else self._active_keys.get(key)

    def _register(self, job: Job, callbacks: Iterable[Callback] | None, state: str) -> None:
        """Give ``job`` an id and its first record. Atomic: the record is
        saved before anything refers to the job, so a refusal leaves no trace."""
        if job.id is not None:
            raise ValueError("this job object was already submitted")
        key = job.dedup_key()
        job.id, job.created_at, job.state = new_job_id(), self.clock.time(), state
        try:
            self._save_first_record(job)
        except BaseException:
            job.id = job.created_at = None
            raise
        job._callbacks = tuple(callbacks) if callbacks else ()
        job._sink, job._saver = self._job_hooks  # one bound method each for every job, not two per job
        if key is not None:
            self._active_keys[key] = job.id
        self._jobs[job.id] = job
        self.events.publish(JobEvent(STATE, job.id, job.summary()))
        self._changed.notify_all()

    def _save_first_record(self, job: Job) -> None:
        """Only a job whose record is on disk is accepted: its id must answer after a crash."""
        if self._journal is None:
            return
        try:
            saved = self._journal.add(job.to_dict())
        except UnsavableRecord as exc:
            raise errors.JobError(str(exc), errors.INVALID_FIELD) from None
        if not saved:
            self._schedule_journal_retry()
            raise errors.JobError(
                f"the job was not accepted: its record cannot be saved in {self._journal.dir} "
                f"({self._journal.error}); free space there and submit again", errors.JOURNAL_UNAVAILABLE)

    def _transition(self, job: Job, state: str) -> None:
        """Set the state, save the record and tell listeners. Lock held."""
        if job.state == HELD:
            self._held.discard(job.id)
        elif state == HELD:
            self._held.add(job.id)
        job.state = state
        if job.id not in self._jobs:
            return  # removed meanwhile: nothing to save or announce
        self._save(job)
        self.events.publish(JobEvent(STATE, job.id, job.summary()))
        self._changed.notify_all()

    def _save(self, job: Job) -> bool:
        """Write the job's record; False when it is not on disk. Never
        raises: a failing journal keeps the record in memory and is retried
        (see store.py)."""
        if self._journal is None or job.id not in self._jobs:
            return True
        try:
            saved = self._journal.write(job.to_dict())
        except Exception:  # an unsavable record (or a bug) must not kill the caller's thread
            self.logger.exception("cannot save the record of job %s", job.id)
            return False
        if not saved:
            self._schedule_journal_retry()
        return saved

    def _save_now(self, job: Job) -> bool:
        """:meth:`Job.save_intent`: the record, written before the job goes on."""
        with self._lock:
            return self._save(job)

    def _schedule_journal_retry(self) -> None:
        # A failing journal heals on the next write; this timer heals it when none comes.
        if self._journal_retry is None and not self._closing:
            self._journal_retry = self.timers.call_later(RETRY_INTERVAL, self._retry_journal)

    def _retry_journal(self) -> None:
        with self._lock:
            self._journal_retry = None
            if self._journal is not None and not self._journal.retry():
                self._schedule_journal_retry()

    def _on_job_event(self, job: Job, kind: str, data: Any) -> None:
        if self.events.has_listeners and job.id in self._jobs:
            self.events.publish(JobEvent(kind, job.id, data))

    # ---------------------------------------------------------------- running
    def _run(self, job: Job) -> None:
        """Worker thread: one attempt of ``job``. Whatever goes wrong, the
        job ends with an answer and the worker lives on."""
        try:
            self._attempt(job)
        except Exception as exc:
            self.logger.exception("internal error running job %s", job.id)
            self._close_after_bug(job, exc)

    def _attempt(self, job: Job) -> None:
        with self._lock:
            if job.outcome is not None or job.state != QUEUED:
                return
            if job.stop_requested:
                cancelled_early = True
            else:
                cancelled_early = False
                self._start_attempt(job)
        if cancelled_early:
            self._finish(job, CANCELLED, "cancelled before it started", errors.CANCELLED)
            return
        timer = self._arm_timeout(job)
        result, error, code = self._call_do_work(job)
        if timer is not None:
            timer.cancel()
        self._after_attempt(job, result, error, code)

    def _start_attempt(self, job: Job) -> None:
        job.attempts += 1
        job.started_at = self.clock.time()
        job.error = job.error_code = None
        self._transition(job, RUNNING)

    def _arm_timeout(self, job: Job) -> TimerHandle | None:
        if not job.timeout:
            return None
        return self.timers.call_later(job.timeout, lambda: self._request_stop(job, "timeout"))

    def _call_do_work(self, job: Job) -> tuple[Any, str | None, str | None]:
        logger = JobLogger(job, self.logger)
        try:
            result = job.do_work(logger)
        except (Exception, SystemExit) as exc:  # sys.exit() in a job ends the job, not the worker
            message, code, partial = error_from_exception(exc)
            if code in _STOPPED_LOG:  # a stop is no failure: the log says what the state and code say
                logger.warning("job %s: %s", _STOPPED_LOG[code], message)
            else:
                logger.error("job failed: %s", message)
            return partial, message, code
        if job.error:  # the Pineapple style: do_work set self.error itself
            return result, job.error, job.error_code or errors.JOB_FAILED
        return result, None, None

    def _after_attempt(self, job: Job, result: Any, error: str | None, code: str | None) -> None:
        with self._lock:
            # do_work returned: whatever it set out to change, it has finished or undone itself.
            had_intent, job.intent = job.intent is not None, None
            if job.outcome is not None:
                if had_intent:
                    self._save(job)  # the record closed by the stop-grace timer still named the intent
                return  # already finished by the stop-grace timer
            reason = job.stop_reason
            if reason is None and error is not None and job.attempts <= job.max_retries:
                self._schedule_retry(job, error)
                return
        if reason is not None:
            state, stop_code, message = _STOP_OUTCOMES[reason]
            if code != stop_code or not error:  # keep the job's own words when it reports the stop itself
                error = message.format(timeout=job.timeout or 0)
            self._finish(job, state, error, stop_code, result)
        else:
            self._finish(job, FAILED if error else SUCCEEDED, error, code, result)

    def _schedule_retry(self, job: Job, error: str) -> None:
        job.add_log_line(f"attempt {job.attempts} failed: {error}; retrying in {job.retry_delay:g}s")
        job.error = job.error_code = None
        self._transition(job, QUEUED)
        if job.retry_delay <= 0:
            self._pool.submit(job)
            return
        job._retry_timer = self.timers.call_later(
            job.retry_delay, lambda: self._requeue(job))

    def _requeue(self, job: Job) -> None:
        with self._lock:
            job._retry_timer = None
            if job.outcome is None and not job.stop_requested and not self._closing:
                self._pool.submit(job)

    def _unqueue(self, job: Job) -> bool:
        """Take a queued job out of the pool or its retry wait."""
        retry: TimerHandle | None = getattr(job, "_retry_timer", None)
        if retry is not None:
            retry.cancel()
            job._retry_timer = None
            return True
        return self._pool.withdraw(job)

    # --------------------------------------------------------------- stopping
    def _request_stop(self, job: Job, reason: str) -> None:
        with self._lock:
            if job.state != RUNNING or job.outcome is not None or job.stop_reason:
                return
            job.stop_reason = reason
            job.stop_requested = True
        job.add_log_line(f"stop requested ({reason})")
        try:
            job.stop()
        except Exception:
            self.logger.exception("stop() of job %s failed", job.id)
        self.timers.call_later(self.stop_grace, lambda: self._stop_overdue(job, reason))

    def _stop_overdue(self, job: Job, reason: str) -> None:
        with self._lock:
            if job.outcome is not None:
                return
        state, code, message = _STOP_OUTCOMES[reason]
        message = message.format(timeout=job.timeout or 0)
        job.add_log_line(f"job did not stop within {self.stop_grace:g}s; its record is closed")
        self._finish(job, state, f"{message} (the job did not stop within {self.stop_grace:g}s)", code)

    def stop_running(self, reason: str = "shutdown") -> None:
        """Ask every running job to stop now (they end ``cancelled``)."""
        with self._lock:
            running = [job for job in self._jobs.values() if job.state == RUNNING]
        for job in running:
            self._request_stop(job, reason)

    def _wait_idle(self, timeout: float | None) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: not any(job.outcome is None and job.state == RUNNING for job in self._jobs.values()),
                timeout)

    # -------------------------------------------------------------- finishing
    def _finish(self, job: Job, state: str, error: str | None, code: str | None, result: Any = None) -> None:
        """Record the outcome, run the callbacks, then mark the job complete."""
        with self._lock:
            if job.outcome is not None:
                return
            job.outcome = state
            job.result, job.error, job.error_code = result, error, code
            job.finished_at = self.clock.time()
            if state == SUCCEEDED:
                job.set_progress(1.0)
        self._run_callbacks(job)
        self.logger.info("job %s (%s) %s%s", job.id, job.type, state, f": {code}" if code else "")
        with self._lock:
            self._complete(job, state)

    def _complete(self, job: Job, state: str) -> None:
        """Lock held: the job is complete; counted in the totals only now, so
        a client that sees every submitted job counted finds each complete."""
        job.is_complete = True
        job._callbacks = ()  # they ran: what they refer to need not live as long as the record
        self._totals[state] += 1
        self._release_key(job)
        self._transition(job, state)
        if job.id in self._jobs:
            self._track_finished(job.id)

    def _run_callbacks(self, job: Job) -> None:
        """Callbacks, then the success or failure hooks; each isolated."""
        hooks = job.on_success if job.outcome == SUCCEEDED else job.on_failure
        for kind, callback in [*(("callback", c) for c in getattr(job, "_callbacks", ())),
                               *(("hook", h) for h in hooks)]:
            try:
                callback(job)
            except Exception as exc:
                name = getattr(callback, "__name__", callback)
                job.add_log_line(f"ERROR: {kind} {name!s} failed: {exc}")
                if kind == "hook":  # a hook failing is an outcome (exit status...), not a bug: one line
                    self.logger.warning("hook %s of job %s (%s) failed: %s", name, job.id, job.type, exc)
                else:
                    self.logger.exception("%s of job %s failed", kind, job.id)

    def _close_after_bug(self, job: Job, exc: Exception) -> None:
        """Finish a job whose run hit a bug in the engine (or in its own
        options): failed with ``internal_error``, never left running."""
        message = f"internal error: {type(exc).__name__}: {exc}"
        try:
            self._finish(job, FAILED, message, errors.INTERNAL_ERROR)
        except Exception:
            self.logger.exception("cannot finish job %s", job.id)
        with self._lock:
            if job.is_complete:
                return
            if job.outcome is None:
                job.outcome, job.error, job.error_code = FAILED, message, errors.INTERNAL_ERROR
                job.finished_at = self.clock.time()
            self._complete(job, job.outcome)

    def _interrupt(self, job: Job, why: str) -> None:
        """Close the record of a job that will never run. Lock held."""
        job.outcome = INTERRUPTED
        job.error, job.error_code = f"interrupted: {why}", errors.INTERRUPTED
        job.finished_at = self.clock.time()
        job.is_complete = True
        self._release_key(job)
        self._transition(job, INTERRUPTED)
        self._track_finished(job.id)

    def _release_key(self, job: Job) -> None:
        key = job.dedup_key()
        if key is not None and self._active_keys.get(key) == job.id:
            del self._active_keys[key]

    # ---------------------------------------------------------------- pruning
    def _track_finished(self, job_id: str) -> None:
        """Keep finished jobs for ``retention`` seconds and at most ``max_finished``."""
        self._finished[job_id] = self.clock.monotonic()
        while self.max_finished is not None and len(self._finished) > self.max_finished:
            self._drop(next(iter(self._finished)))
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        # One timer for the oldest finished job; no polling loop.
        if self._expiry is not None or not self._finished or self.retention is None:
            return
        oldest = next(iter(self._finished.values()))
        self._expiry = self.timers.call_at(oldest + self.retention, self._expire)

    def _expire(self) -> None:
        with self._lock:
            self._expiry = None
            deadline = self.clock.monotonic() - (self.retention or 0)
            while self._finished and next(iter(self._finished.values())) <= deadline:
                self._drop(next(iter(self._finished)))
            self._schedule_expiry()

    def _drop(self, job_id: str) -> None:
        """Forget a job record everywhere. Lock held."""
        job = self._jobs.pop(job_id, None)
        self._finished.pop(job_id, None)
        self._held.discard(job_id)
        if job is None:
            return
        job._sink = None
        self._release_key(job)
        if self._journal is not None:
            self._journal.remove(job_id)
        self.events.publish(JobEvent(REMOVED, job_id, None))

    # ---------------------------------------------------------------- journal
    def _open_journal(self, state_dir: str | os.PathLike | None, max_bytes: int | None) -> JobJournal | None:
        if state_dir is None:
            return None
        self._journal = JobJournal(state_dir, **({"max_bytes": max_bytes} if max_bytes else {}),
                                   validate=record_problem, monotonic=self.clock.monotonic)
        for record in self._journal.load():
            try:
                job = RecordedJob(record)
            except Exception as exc:  # record_problem should have caught it; never stop the start
                self.logger.warning("journal: skipping the record of job %r: %s", record.get("job_id"), exc)
                continue
            self._restore(job)
        return self._journal

    def _restore(self, job: RecordedJob) -> None:
        with self._lock:
            self._jobs[job.id] = job
            if job.state not in ACTIVE_STATES:
                job.is_complete, job.outcome = True, job.state  # a final state is final, whatever the flag said
                self._track_finished(job.id)
                return
            was, job.outcome = job.state, None
            self._interrupt(job, f"pineapple-jobd stopped while the job was {was}; submit it again")
            self.logger.warning("job %s was %s when the daemon stopped: now interrupted", job.id, was)

    # ----------------------------------------------------------------- module
    def _attach_module(self, module: Any) -> None:
        module.register_action_handler("poll_job", self._poll_job_action)
        # Several Hak5 front ends (nmap, tcpdump, hcxdumptool) poll this name in
        # their uninstall dialog and no backend registers it: answer it as poll_job.
        module.register_action_handler("check_background_job", self._poll_job_action)
        module.register_shutdown_handler(lambda *_: self.shutdown(wait=False))

    def _poll_job_action(self, request: Any) -> Any:
        job_id = getattr(request, "job_id", None)
        remove = bool(getattr(request, "remove_if_complete", True))
        job = self.get_job(job_id, remove_if_complete=remove) if isinstance(job_id, str) else None
        if job is None:
            # Pineapple front ends never read "error": an error answer would make
            # them poll forever. A complete job with an error ends their loop.
            return {"is_complete": True, "result": None,
                    "job_error": f"no job with id {job_id!r}: it finished and was removed, or was lost"}
        summary = job.summary()
        return {key: summary[key] for key in ("is_complete", "result", "job_error")}
