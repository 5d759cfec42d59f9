"""The :class:`Job` base class: what module authors subclass.

Compatible with the WiFi Pineapple library's ``Job`` (``is_complete``,
``result``, ``error``, ``was_successful``, ``do_work(logger)``, ``stop()``)
and extended with an id, a state, progress, timestamps, attempts, a stable
``error_code`` and a bounded log tail.
"""
from __future__ import annotations

import logging
import sys
import weakref
from collections import deque
from typing import Any, Callable, Generic, Iterable, TypeVar

from ..errors import JOB_FAILED
from .state import ACTIVE_STATES, QUEUED, SUCCEEDED, Progress

TResult = TypeVar("TResult")
EventSink = Callable[["Job", str, Any], None]
Hook = Callable[["Job"], Any]

DEFAULT_LOG_LINES = 200


class Job(Generic[TResult]):
    """A unit of background work. Override :meth:`do_work` (and :meth:`stop`).

    Options (keyword arguments, or class attributes of a subclass):

    - ``timeout``: seconds a run may take; then :meth:`stop` is called and the
      job ends ``failed`` with ``error_code == "timeout"``.
    - ``max_retries`` / ``retry_delay``: re-run a failed job up to
      ``max_retries`` more times, ``retry_delay`` seconds apart.
    - ``resource``: jobs naming the same resource (e.g. ``"opkg"``) run one at
      a time, in submission order.
    - ``log_lines``: how many log lines the tail keeps (default 200).
    - ``on_success`` / ``on_failure``: hooks ``fn(job)`` run after the job's
      callbacks when it succeeded / did not (failed, cancelled). A failing
      hook is logged in the job's log and never changes the outcome.
    """

    job_type: str = ""
    timeout: float | None = None
    max_retries: int = 0
    retry_delay: float = 0.0
    resource: str | None = None

    # Every record the manager keeps is a Job: slots keep one at a few
    # hundred bytes, where an attribute dict of this many keys is ~1.6 KB
    # (CPython shares a dict's keys between instances only up to 30). A
    # subclass without __slots__ gets a __dict__ as before; "__dict__" here
    # lets any job take attributes of its own (e.g. an option given per
    # instance, which shadows the class attribute above).
    __slots__ = ("on_success", "on_failure", "hook_specs", "id", "is_complete", "result", "error", "error_code",
                 "state", "outcome", "progress", "created_at", "started_at", "finished_at", "attempts",
                 "stop_requested", "stop_reason", "log", "log_total", "parent_id", "child_id", "intent",
                 "_sink", "_saver", "_callbacks", "_retry_timer", "__dict__", "__weakref__")

    def __init__(self, *, timeout: float | None = None, max_retries: int | None = None,
                 retry_delay: float | None = None, resource: str | None = None,
                 log_lines: int = DEFAULT_LOG_LINES, on_success: list[Hook] | None = None,
                 on_failure: list[Hook] | None = None) -> None:
        self._set_options(timeout, max_retries, retry_delay, resource)
        self.on_success: list[Hook] = list(on_success or ())
        self.on_failure: list[Hook] = list(on_failure or ())
        self.hook_specs: dict | None = None  # JSON description of the hooks (socket API), kept in the record
        self.id: str | None = None
        self.is_complete: bool = False
        self.result: TResult | None = None
        self.error: str | None = None
        self.error_code: str | None = None
        self.state: str = QUEUED
        self.outcome: str | None = None
        self.progress: Progress = Progress()
        self.created_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.attempts: int = 0
        self.stop_requested: bool = False
        self.stop_reason: str | None = None  # "cancelled", "timeout" or "shutdown" once stop was asked
        self.log: LogTail = LogTail(maxlen=log_lines)
        self.log_total: int = 0
        self.parent_id: str | None = None
        self.child_id: str | None = None
        self.intent: dict | None = None  # see save_intent()
        self._sink: EventSink | None = None
        self._saver: Callable[[Job], bool] | None = None  # the manager's "write my record now"
        self._callbacks: Any = ()  # the manager's callbacks for this job, until they ran
        self._retry_timer: Any = None  # the manager's timer while a retry waits

    def _set_options(self, timeout: float | None, max_retries: int | None,
                     retry_delay: float | None, resource: str | None) -> None:
        # Only override class-level defaults when the caller gave a value.
        if timeout is not None:
            self.timeout = timeout
        if max_retries is not None:
            self.max_retries = max_retries
        if retry_delay is not None:
            self.retry_delay = retry_delay
        if resource is not None:
            self.resource = resource

    # ----------------------------------------------------------- to override
    def do_work(self, logger: logging.Logger) -> TResult:
        """Do the work and return the result. Raise to fail: a
        :class:`~pineapple.errors.JobError` sets ``error_code`` too."""
        raise NotImplementedError("override do_work(logger)")

    def stop(self) -> None:
        """Ask a running ``do_work`` to stop (cancel, timeout, shutdown).

        ``stop_requested`` is already True when this is called; long loops can
        simply check it. Override to interrupt blocking work (kill a process).
        """

    # --------------------------------------------------------------- queries
    @property
    def type(self) -> str:
        """The job type name (``job_type`` or the class name)."""
        return self.job_type or type(self).__name__

    @property
    def was_successful(self) -> bool:
        """True once the job finished without error (also inside callbacks)."""
        if self.outcome is not None:
            return self.outcome == SUCCEEDED
        return self.is_complete and self.error is None

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def params(self) -> dict:
        """The JSON-safe parameters that recreate this job (for restart)."""
        return {}

    def dedup_key(self) -> tuple | None:
        """Jobs with an equal non-None key are not queued twice while active."""
        return None

    # -------------------------------------------------------------- progress
    def set_progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress: ``fraction`` 0..1 (None: unknown) and a short message."""
        if fraction is not None:
            fraction = round(min(1.0, max(0.0, float(fraction))), 4)
        if message is None:
            message = self.progress.message
        self.progress = Progress(fraction, message)
        self._emit("progress", self.progress)

    def log_page(self, offset: int = 0, limit: int = 100) -> dict:
        """Log lines by absolute number (0 = the first line ever written).
        Lines older than the tail are gone: the page then starts at the
        oldest kept line and says ``truncated``."""
        first_kept = self.log_total - len(self.log)
        start = max(offset, first_kept)
        lines = self.log[start - first_kept:start - first_kept + max(0, limit)]
        return {"job_id": self.id, "offset": start, "lines": lines, "total": self.log_total,
                "next_offset": start + len(lines), "truncated": offset < first_kept}

    def add_log_line(self, line: str) -> None:
        """Append a line to the log tail (``do_work``'s logger does this)."""
        self.log.append(line)
        self.log_total += 1
        self._emit("log", line)

    def save_intent(self, intent: dict | None) -> bool:
        """Write down, in the job's journal record and before doing it, what
        the job is about to change outside this process (e.g. the packages an
        opkg run will install), so a restart after a crash can finish or undo
        it (docs/engine.md, "What happens after a crash"). ``intent`` is a
        JSON-safe dict; None once there is nothing left to undo.

        Returns True once the record is written (or when the manager keeps no
        journal: nothing could be recovered anyway), False when the journal
        is failing: then doing the work would leave a change no restart
        could find."""
        self.intent = intent
        saver = self._saver
        return saver(self) if saver is not None else True

    def _emit(self, kind: str, data: Any) -> None:
        sink = self._sink
        if sink is not None:
            sink(self, kind, data)

    # ------------------------------------------------------------- records
    def summary(self) -> dict:
        """What ``poll_job`` answers: the Pineapple front end's three fields
        (``is_complete``, ``result``, ``job_error``) plus state and progress."""
        return {
            "job_id": self.id,
            "type": self.type,
            "is_complete": self.is_complete,
            "result": jsonable(self.result),
            "job_error": self.error,
            "error_code": self.error_code,
            "state": self.state,
            "progress": self.progress.to_dict(),
        }

    def to_dict(self, log: bool = True) -> dict:
        """The full JSON-safe record (the journal stores exactly this)."""
        record = self.summary()
        record.update({
            "params": jsonable(self.params()),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "resource": self.resource,
            "parent_id": self.parent_id,
            "child_id": self.child_id,
            "hooks": self.hook_specs,
            "intent": self.intent,
            "log_total": self.log_total,
        })
        if log:
            record["log"] = list(self.log)
        return record

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state}>"


class RecordedJob(Job[Any]):
    """A job known only from its journal record (e.g. after a restart)."""

    __slots__ = ("_record_type", "_params")

    def __init__(self, record: dict) -> None:
        super().__init__()
        self._record_type = str(record.get("type") or "job")
        self._params = record.get("params") or {}
        self.id = record.get("job_id")
        for key in ("result", "error_code", "state", "created_at", "started_at",
                    "finished_at", "parent_id", "child_id", "timeout", "resource"):
            if key in record:
                setattr(self, key, record[key])
        self.error = record.get("job_error")
        self.hook_specs = record.get("hooks") if isinstance(record.get("hooks"), dict) else None
        self.intent = record.get("intent") if isinstance(record.get("intent"), dict) else None
        self.attempts = int(record.get("attempts") or 0)
        self.max_retries = int(record.get("max_retries") or 0)
        self.progress = _progress_from(record.get("progress"))
        self.log.extend(str(line) for line in record.get("log") or ())
        self.log_total = int(record.get("log_total") or len(self.log))
        self.is_complete = bool(record.get("is_complete"))
        self.outcome = self.state if self.is_complete else None

    @property
    def type(self) -> str:
        return self._record_type

    def params(self) -> dict:
        return dict(self._params)

    def do_work(self, logger: logging.Logger) -> Any:
        raise RuntimeError("a recorded job cannot run again; restart it instead")


class LogTail(list):
    """A job's log tail: the last ``maxlen`` lines (all, when None), oldest
    first. A list that drops its oldest lines as new ones come, as a
    ``deque(maxlen=...)`` would: an empty deque is ~600 bytes (one block of
    64 slots), a list of a finished job's few lines a fifth of that, and
    there is one per kept record."""

    __slots__ = ("maxlen",)

    def __init__(self, lines: Iterable[str] = (), maxlen: int | None = None) -> None:
        super().__init__()
        self.maxlen = maxlen
        self.extend(lines)

    def append(self, line: str) -> None:
        super().append(line)
        if self.maxlen is not None and len(self) > self.maxlen:
            del self[0]

    def extend(self, lines: Iterable[str]) -> None:
        super().extend(lines)
        if self.maxlen is not None and len(self) > self.maxlen:
            del self[:len(self) - self.maxlen]

    def __repr__(self) -> str:
        return f"LogTail({list(self)!r}, maxlen={self.maxlen!r})"


def _progress_from(value: Any) -> Progress:
    if not isinstance(value, dict):
        return Progress()
    fraction = value.get("fraction")
    fraction = float(fraction) if isinstance(fraction, (int, float)) else None
    return Progress(fraction, str(value.get("message") or ""))


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: containers converted, unknown objects as ``str``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        return [jsonable(v) for v in value]
    return str(value)


# Frames of JobLogger._log that logging's caller lookup must be told to skip:
# up to 3.10 it skips a fixed number of frames below the public method (ours
# is one of them); from 3.11 on it counts every frame outside logging.
_OWN_FRAMES = 1 if sys.version_info >= (3, 11) else 0


class JobLogger(logging.Logger):
    """The logger handed to ``do_work``: lines go to the job's log tail and,
    when the manager's logger is enabled for the level, to it as well.

    Built directly (not via ``logging.getLogger``) so a job's logger is never
    registered globally and is freed with the job. It refers to its job
    weakly: a job that keeps its logger (the opkg jobs do) would otherwise be
    a reference cycle, freed only by the next full garbage collection, and a
    burst of jobs would pile up as garbage (megabytes of RSS, never returned).
    """

    def __init__(self, job: Job, forward: logging.Logger, level: int = logging.DEBUG) -> None:
        super().__init__(f"{forward.name}.job", level)
        self.propagate = False
        self._job = weakref.ref(job)
        self._forward = forward

    def _log(self, level: int, msg: object, args: Any, exc_info: Any = None, extra: Any = None,
             stack_info: bool = False, stacklevel: int = 1) -> None:
        # The usual case, a plain line the manager's logger does not want:
        # straight to the tail, without the caller lookup and LogRecord that
        # logging builds for every call (a third of a short job's cost).
        if exc_info or extra or stack_info or self._forward.isEnabledFor(level):
            more = {"stacklevel": stacklevel + _OWN_FRAMES} if sys.version_info >= (3, 8) else {}
            super()._log(level, msg, args, exc_info, extra, stack_info, **more)
            return
        job = self._job()
        if job is not None:
            text = str(msg) % args if args else str(msg)
            job.add_log_line(f"{logging.getLevelName(level)}: {text}" if level >= logging.WARNING else text)

    def handle(self, record: logging.LogRecord) -> None:
        job = self._job()
        if job is None:
            return
        job.add_log_line(format_log_line(record))
        if self._forward.isEnabledFor(record.levelno):
            record.msg = f"[{job.id}] {record.getMessage()}"
            record.args = ()
            self._forward.handle(record)


def format_log_line(record: logging.LogRecord) -> str:
    """One tail line: the message, with the level for warnings and errors."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text = f"{text}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    if record.levelno >= logging.WARNING:
        text = f"{record.levelname}: {text}"
    return text


def error_from_exception(exc: BaseException) -> tuple[str, str, Any]:
    """(human message, stable code, partial result) for an exception from do_work."""
    code = getattr(exc, "code", None)
    message = str(exc) or type(exc).__name__
    if isinstance(code, str) and code:
        return message, code, getattr(exc, "result", None)
    return message, JOB_FAILED, None
