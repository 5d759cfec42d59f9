"""The job journal: job records that survive a daemon restart.

Records are appended as JSON lines to ``STATE_DIR/jobs.journal``; the last
line for an id wins and a tombstone line removes it. When the file grows
past its bound it is compacted: the live records are written to a temporary
file which atomically replaces the journal. Keep ``STATE_DIR`` on a
RAM-backed filesystem on devices (e.g. ``/var/run``) so flash is not worn.

Loading never fails because of the file's content: a corrupt or truncated
line is skipped with a warning.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading

log = logging.getLogger("pineapple.jobs")

JOURNAL_NAME = "jobs.journal"
LOCK_NAME = "jobs.lock"


class JournalBusy(OSError):
    """Another process (or manager) has this state directory open."""
DEFAULT_MAX_BYTES = 512 * 1024


class JobJournal:
    """Append-only, self-compacting store of job records keyed by ``id``."""

    def __init__(self, state_dir: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dir = os.fspath(state_dir)
        self.path = os.path.join(self.dir, JOURNAL_NAME)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._live: dict[str, str] = {}  # id -> its latest line, for compaction
        self._size = 0
        self._live_bytes = 0
        self._file = None
        self._lock_fd: int | None = None
        self.skipped = 0

    def load(self) -> list[dict]:
        """Read the journal (skipping bad lines) and open it for appending.
        Returns the latest record of every live job, oldest first."""
        os.makedirs(self.dir, exist_ok=True)
        self._take_lock()
        records = self._read_records()
        self._live = {job_id: _dumps(rec) for job_id, rec in records.items()}
        self._live_bytes = sum(len(line) + 1 for line in self._live.values())
        self._rewrite()
        return list(records.values())

    def write(self, record: dict) -> None:
        """Save ``record`` (a job's ``to_dict()``), replacing its previous one."""
        line = _dumps(record)
        with self._lock:
            old = self._live.get(record["job_id"])
            self._live_bytes += len(line) - (len(old) if old is not None else -1)
            self._live[record["job_id"]] = line
            self._append(line)

    def remove(self, job_id: str) -> None:
        """Forget a job (no-op when unknown)."""
        with self._lock:
            old = self._live.pop(job_id, None)
            if old is not None:
                self._live_bytes -= len(old) + 1
                self._append(_dumps({"job_id": job_id, "removed": True}))

    def close(self) -> None:
        """Stop writing and release the state directory."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __len__(self) -> int:
        return len(self._live)

    # ----------------------------------------------------------- internals
    def _take_lock(self) -> None:
        # Two writers would interleave and compact each other's records away.
        fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(f"state directory {self.dir} is in use by another job manager") from None
        self._lock_fd = fd

    def _append(self, line: str) -> None:
        if self._file is None:
            return  # not loaded or closed: nothing is persisted
        data = line + "\n"
        self._file.write(data)
        self._file.flush()  # one write() per record: a crash tears at most the last line
        self._size += len(data)
        if self._size > self._bound():
            self._rewrite()

    def _bound(self) -> int:
        return max(self.max_bytes, 2 * self._live_bytes)

    def _rewrite(self) -> None:
        """Compaction: write the live lines to a temp file, fsync, rename."""
        if self._file is not None:
            self._file.close()
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            for line in self._live.values():
                out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        self._size = os.path.getsize(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def _read_records(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return records
        for number, line in enumerate(raw.split(b"\n"), 1):
            if line.strip():
                self._apply_line(records, line, number)
        return records

    def _apply_line(self, records: dict[str, dict], line: bytes, number: int) -> None:
        try:
            record = json.loads(line)
            job_id = record["job_id"]
            if not isinstance(job_id, str) or not job_id:
                raise ValueError("bad id")
        except (ValueError, KeyError, TypeError):
            self.skipped += 1
            log.warning("journal %s: skipping corrupt record on line %d", self.path, number)
            return
        if record.get("removed"):
            records.pop(job_id, None)
        else:
            records[job_id] = record


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
