"""The job journal: job records that survive a daemon restart.

Records are appended as JSON lines to ``STATE_DIR/jobs.journal``; the last
line for an id wins and a tombstone line removes it. When the file grows
past its bound it is compacted: the live records are written to a temporary
file which atomically replaces the journal. Keep ``STATE_DIR`` on a
RAM-backed filesystem on devices (e.g. ``/var/run``) so flash is not worn.

Loading never fails because of the file's content: a line that is not JSON,
is torn, or fails the record check (``validate``) is skipped, and one
warning says how many were.

Writing never raises because of the disk. The journal has three modes:

- ``ok``: every record is appended as it is written;
- ``failing``: a write failed (ENOSPC, EIO, ...). The records written since
  are kept in memory and :meth:`JobJournal.write` answers False; every
  ``retry_interval`` seconds a write (or :meth:`JobJournal.retry`) tries to
  rewrite the whole journal, and the journal is ``ok`` again once that works;
- ``memory``: the state directory could not be written when it was opened
  (read-only filesystem, no permission). The journal that was there is read,
  nothing is ever written.

A record on disk is not kept in memory too: the journal knows where each
job's latest line is in the file (offset and length) and a rewrite
(compaction, or the way back from ``failing``) reads those lines back from
the open file. Only a record not yet on disk (``failing``, or before the
journal is opened) is held as its encoded line.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pineapple.jobs")

JOURNAL_NAME = "jobs.journal"
LOCK_NAME = "jobs.lock"
DEFAULT_MAX_BYTES = 512 * 1024
RETRY_INTERVAL = 2.0  # seconds between attempts to write a failing journal again

OK, FAILING, MEMORY = "ok", "failing", "memory"
# A state directory that refuses writes for good: run in memory (anything else is retried).
_READ_ONLY_ERRNOS = frozenset((errno.EROFS, errno.EACCES, errno.EPERM))
_DETAILED_SKIPS = 5  # skipped lines described one by one (at debug level)


class JournalBusy(OSError):
    """Another process (or manager) has this state directory open."""


class UnsavableRecord(ValueError):
    """A record that cannot be encoded as JSON (e.g. an infinite number)."""


class JobJournal:
    """Append-only, self-compacting store of job records keyed by ``job_id``.

    :param validate: ``validate(record)`` returns why a loaded record cannot
        be used (it is then skipped), or None.
    :param monotonic: the clock that paces retries of a failing journal.
    :param writer: ``os.write``; tests pass one that fails like a full disk.
    """

    def __init__(self, state_dir: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES, *,
                 validate: Callable[[dict], str | None] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 retry_interval: float = RETRY_INTERVAL, writer: Callable[[int, bytes], int] = os.write) -> None:
        self.dir = os.fspath(state_dir)
        self.path = os.path.join(self.dir, JOURNAL_NAME)
        self.max_bytes = max_bytes
        self.retry_interval = retry_interval
        self.mode = OK
        self.error: str | None = None  # why the journal is failing / in memory
        self.failing_since: float | None = None  # wall clock, for stats
        self.skipped = 0
        self._validate = validate
        self._monotonic = monotonic
        self.writer = writer  # tests swap in one that fails like a full disk
        self._lock = threading.Lock()
        self._live: dict[str, int] = {}  # id -> length of its latest line, oldest job first
        self._at: dict[str, int] = {}  # id -> where that line starts in the file (when it is on disk)
        self._pending: dict[str, bytes] = {}  # id -> its latest line while that is not on disk
        self._size = 0
        self._live_bytes = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._next_retry = 0.0

    # ------------------------------------------------------------ public
    def load(self) -> list[dict]:
        """Read the journal (skipping bad lines) and open it for appending.
        Returns the latest record of every live job, oldest first.

        Raises :class:`JournalBusy` when another manager holds the directory
        and ``OSError`` when it cannot be a directory at all; a read-only one
        gives ``memory`` mode instead."""
        if self._prepare_dir():
            self._take_lock()
        records = self._read_records()
        for job_id, record in list(records.items()):
            try:
                line = _record_line(record)
            except UnsavableRecord:  # e.g. nested too deep to write back
                del records[job_id]
                self.skipped += 1
                continue
            self._live[job_id] = len(line)
            if self.mode != MEMORY:
                self._pending[job_id] = line
        self._live_bytes = sum(length + 1 for length in self._live.values())
        if self.mode == OK:
            with self._lock:
                self._resync(opening=True)
        return list(records.values())

    def write(self, record: dict) -> bool:
        """Save ``record`` (a job's ``to_dict()``), replacing its previous one.

        True when it is on disk (or the journal is in ``memory`` mode); False
        when the journal is failing (the record is kept in memory and written
        once the journal works again). Raises :class:`UnsavableRecord` for a
        record JSON cannot carry; the journal is then unchanged."""
        line = _record_line(record)
        with self._lock:
            self._keep(record["job_id"], line)
            return self._append(line, record["job_id"])

    def add(self, record: dict) -> bool:
        """Save the first record of a new job, all or nothing: when it
        cannot be written (False) the journal forgets it, so a refused job
        leaves no trace. Raises :class:`UnsavableRecord` like :meth:`write`."""
        line = _record_line(record)
        with self._lock:
            self._keep(record["job_id"], line)
            if self._append(line, record["job_id"]):
                return True
            self._forget(record["job_id"])
            return False

    def remove(self, job_id: str) -> None:
        """Forget a job (no-op when unknown). Never raises."""
        with self._lock:
            if self._forget(job_id):
                self._append(_encode({"job_id": job_id, "removed": True}))

    def retry(self) -> bool:
        """Try now to write a failing journal again; True when it is ``ok``."""
        with self._lock:
            if self.mode == FAILING and self._lock_fd is not None:
                self._resync()
            return self.mode != FAILING

    def status(self) -> dict[str, Any]:
        """``{"state": "ok" | "failing" | "memory", "path", "records", "error",
        "failing_since", "skipped"}`` for ``stats``."""
        return {"state": self.mode, "path": self.path, "records": len(self._live), "error": self.error,
                "failing_since": self.failing_since, "skipped": self.skipped}

    def close(self) -> None:
        """Write what a failing journal still owes (one last try), stop
        writing and release the state directory."""
        with self._lock:
            if self.mode == FAILING and self._lock_fd is not None:
                self._resync()
            self._close_fd()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __len__(self) -> int:
        return len(self._live)

    # ----------------------------------------------------------- opening
    def _prepare_dir(self) -> bool:
        """Create the directory; False (and ``memory`` mode) when it is read-only."""
        try:
            os.makedirs(self.dir, exist_ok=True)
            return True
        except OSError as exc:
            if exc.errno not in _READ_ONLY_ERRNOS:
                raise
            self._go_memory(exc)
            return False

    def _take_lock(self) -> None:
        # Two writers would interleave and compact each other's records away.
        path = os.path.join(self.dir, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in _READ_ONLY_ERRNOS:
                raise
            self._go_memory(exc)
            try:  # a read-only directory can still be locked against a second reader
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(f"state directory {self.dir} is in use by another job manager") from None
        self._lock_fd = fd

    def _go_memory(self, exc: OSError) -> None:
        self.mode, self.error = MEMORY, _describe(exc)
        log.warning("journal %s cannot be written (%s): job records are kept IN MEMORY ONLY and will be "
                    "lost when the daemon stops; make the state directory writable and restart",
                    self.path, self.error)

    # ----------------------------------------------------------- writing
    def _keep(self, job_id: str, line: bytes) -> None:
        """``line`` is ``job_id``'s latest record; held in memory until
        :meth:`_append` has it on disk (never in ``memory`` mode: nothing
        is ever written then)."""
        old = self._live.get(job_id)
        self._live_bytes += len(line) - (old if old is not None else -1)
        self._live[job_id] = len(line)
        self._at.pop(job_id, None)
        if self.mode != MEMORY:
            self._pending[job_id] = line

    def _forget(self, job_id: str) -> bool:
        length = self._live.pop(job_id, None)
        self._at.pop(job_id, None)
        self._pending.pop(job_id, None)
        if length is None:
            return False
        self._live_bytes -= length + 1
        return True

    def _append(self, line: bytes, job_id: str | None = None) -> bool:
        """Append ``line`` (``job_id``'s latest record, or a tombstone)."""
        if self.mode == MEMORY:
            return True
        if self._lock_fd is None:
            return False  # not loaded, or closed: nothing is persisted
        if self.mode == FAILING:
            if self._monotonic() >= self._next_retry:
                self._resync()
            return self.mode == OK
        data = line + b"\n"
        try:
            self._write_all(self._fd, data)
        except OSError as exc:  # a torn line may be left: only a full rewrite repairs it
            self._fail(exc)
            return False
        if job_id is not None:
            self._at[job_id] = self._size
            self._pending.pop(job_id, None)
        self._size += len(data)
        if self._size > self._bound():
            self._resync()  # the record itself is on disk whatever compaction does
        return True

    def _bound(self) -> int:
        return max(self.max_bytes, 2 * self._live_bytes)

    def _resync(self, opening: bool = False) -> None:
        """Compaction, and the way back from ``failing``: write the live lines
        to a temporary file, fsync, rename over the journal, reopen. Lock held."""
        tmp = self.path + ".tmp"
        replaced = False
        try:
            lines = self._live_lines()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                self._write_all(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            replaced = True
            # From here on the lines are where the new file has them, whatever fails next.
            self._at, self._pending, offset = {}, {}, 0
            for job_id, line in zip(self._live, lines):
                self._at[job_id] = offset
                offset += len(line)
            del lines
            self._close_fd()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            if not replaced:
                _unlink_quietly(tmp)  # a half-written copy would only eat the space we lack
            if opening and exc.errno in _READ_ONLY_ERRNOS:
                self._go_memory(exc)
            else:
                self._fail(exc)
            return
        if self.mode == FAILING:
            log.warning("journal %s is written again (%d job records saved)", self.path, len(self._live))
        self.mode, self.error, self.failing_since = OK, None, None

    def _live_lines(self) -> list[bytes]:
        """Every live record's latest line with its newline, oldest job
        first: from memory if it is not on disk, else read back from the
        journal. A line that cannot be read back (the file was deleted or
        changed behind our back) is dropped, with an error: the job's next
        record is written as usual, and a crash would lose that one."""
        reader, opened = self._fd, None
        lost = []
        lines = []
        try:
            for job_id, length in self._live.items():
                line = self._pending.get(job_id)
                if line is not None:
                    lines.append(line + b"\n")
                    continue
                if reader is None and opened is None:
                    try:
                        reader = opened = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                    except OSError:
                        opened = -1  # tried: every line on disk is lost
                line = self._read_line(reader, job_id, length) if reader is not None else None
                if line is None:
                    lost.append(job_id)
                else:
                    lines.append(line)
        finally:
            if opened is not None and opened >= 0:
                os.close(opened)
        for job_id in lost:
            self._forget(job_id)
        if lost:
            log.error("journal %s: %d job record(s) could not be read back from the file and are no longer "
                      "saved (was it changed by another program?); first: %s", self.path, len(lost), lost[0])
        return lines

    def _read_line(self, fd: int, job_id: str, length: int) -> bytes | None:
        """``job_id``'s line (with its newline) at its offset, or None when
        the file does not hold one there. Every record line starts with its
        job_id (:func:`_record_line`) and ends where its length says."""
        offset = self._at.get(job_id)
        if offset is None:
            return None
        try:
            data = os.pread(fd, length + 1, offset)
        except OSError:
            return None
        if len(data) != length + 1 or not data.endswith(b"\n") or not data.startswith(_LINE_HEAD):
            return None
        return data

    def _write_all(self, fd: int | None, data: bytes) -> None:
        if fd is None:
            raise OSError(errno.EBADF, "journal is not open")
        view = memoryview(data)
        while view:
            written = self.writer(fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write returned 0")
            view = view[written:]

    def _fail(self, exc: OSError) -> None:
        self._next_retry = self._monotonic() + self.retry_interval
        if self.mode == FAILING:
            self.error = _describe(exc)
            return
        self.mode, self.error, self.failing_since = FAILING, _describe(exc), time.time()
        log.error("journal %s cannot be written (%s): job records are kept in memory, new jobs are refused "
                  "(journal_unavailable); retrying every %gs", self.path, self.error, self.retry_interval)

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    # ----------------------------------------------------------- reading
    def _read_records(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        skips: list[str] = []
        try:
            with open(self.path, "rb") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        self._apply_line(records, line, number, skips)
        except FileNotFoundError:
            return records
        except OSError as exc:  # unreadable: never overwrite what might still be recovered
            log.error("journal %s cannot be read (%s)", self.path, _describe(exc))
            if self.mode != MEMORY:
                self._go_memory(exc)
        if self.skipped:
            log.warning("journal %s: skipped %d unreadable or invalid record line(s) (first: %s)",
                        self.path, self.skipped, skips[0])
        return records

    def _apply_line(self, records: dict[str, dict], line: bytes, number: int, skips: list[str]) -> None:
        problem = None
        record: Any = None
        if not line.startswith(b"{"):  # junk is skipped without paying for a JSON parse
            problem = "not a JSON object"
        else:
            try:
                record = json.loads(line, parse_float=_finite_float, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                problem = "not valid JSON"
        if problem is None:
            problem = self._problem(record)
        if problem is not None:
            self.skipped += 1
            if len(skips) < _DETAILED_SKIPS:
                skips.append(f"line {number}: {problem}")
                log.debug("journal %s: skipping line %d: %s", self.path, number, problem)
            return
        if record.get("removed") is True:
            records.pop(record["job_id"], None)
        else:
            records[record["job_id"]] = record

    def _problem(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            return "not a JSON object"
        job_id = record.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            return "no job_id"
        if record.get("removed") is True:
            return None
        if self._validate is not None:
            return self._validate(record)
        return None


_LINE_HEAD = b'{"job_id":'  # how every record line starts
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)  # built once


def _encode(record: dict) -> bytes:
    """One journal line (without its newline), UTF-8."""
    try:
        return _ENCODER.encode(record).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON's \\u escapes can carry it
        return json.dumps(record, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (ValueError, TypeError, RecursionError) as exc:
        raise UnsavableRecord(f"the job record cannot be saved as JSON: {exc}") from None


def _record_line(record: dict) -> bytes:
    """A record's line, its job_id first (how a line read back is checked)."""
    if next(iter(record)) != "job_id":
        record = {"job_id": record["job_id"], **record}
    return _encode(record)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999: JSON cannot write it back
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _describe(exc: OSError) -> str:
    """``ENOSPC: No space left on device``."""
    if exc.errno is None:
        return str(exc)
    return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror or os.strerror(exc.errno)}"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
