#!/usr/bin/env python3
"""Journal start-up cost against damage: a JobManager opening a journal of
50 good records followed by 0, 0.5 and 5 MB of junk lines (the mix a torn or
overwritten journal shows: text, JSON that is no record, records with wrong
field types).

Prints, per size, the start time (best of 3), the warning lines logged and
the time per MB; the clean journal is the baseline measured in the same
run. Targets: one warning whatever the damage, and time growing no faster
than the file (the 5 MB / 0.5 MB ratio stays near or under 10).

    python bench/journal_load.py
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pineapple.jobs import JobManager  # noqa: E402
from pineapple.jobs.store import JOURNAL_NAME  # noqa: E402

GOOD = {"job_id": "", "type": "install", "state": "succeeded", "is_complete": True, "result": {"installed": ["nmap"]},
        "job_error": None, "error_code": None, "progress": {"fraction": 1.0, "message": "done"},
        "params": {"packages": ["nmap"]}, "created_at": 1.0, "started_at": 2.0, "finished_at": 3.0, "attempts": 1,
        "max_retries": 0, "timeout": 600, "resource": "opkg", "parent_id": None, "child_id": None, "hooks": None,
        "log_total": 3, "log": ["Installing nmap", "Configuring nmap.", "done"]}
JUNK = (b"%06d junk line, not JSON \xff\xfe garbage garbage\n", b'{"job_id": %06d, "state": "queued", "x": 1}\n',
        b'{"job_id": "j%06d", "state": "running", "attempts": "x"}\n')


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def write_journal(path: str, junk_bytes: int) -> int:
    with open(path, "wb") as out:
        for i in range(50):
            out.write(json.dumps(dict(GOOD, job_id=f"good-{i}")).encode() + b"\n")
        written, i = 0, 0
        while written < junk_bytes:
            line = JUNK[i % 3] % i
            out.write(line)
            written += len(line)
            i += 1
    return os.path.getsize(path)


def start_time(junk_bytes: int) -> tuple[float, int, int]:
    best, warnings, size = float("inf"), 0, 0
    for _ in range(3):
        state = tempfile.mkdtemp(prefix="journal-bench-")
        try:
            size = write_journal(os.path.join(state, JOURNAL_NAME), junk_bytes)
            counter = Counter()
            logging.getLogger("pineapple.jobs").addHandler(counter)
            started = time.perf_counter()
            manager = JobManager(state_dir=state)
            best = min(best, time.perf_counter() - started)
            logging.getLogger("pineapple.jobs").removeHandler(counter)
            assert len(manager.list_jobs()) == 50
            manager.shutdown()
            warnings = counter.count
        finally:
            shutil.rmtree(state, ignore_errors=True)
    return best, warnings, size


def main() -> int:
    jobs_log = logging.getLogger("pineapple.jobs")
    jobs_log.propagate = False
    jobs_log.setLevel(logging.WARNING)  # JobManager() sets "pineapple" to ERROR (the library default)
    rows = [(label, *start_time(junk)) for label, junk in
            (("clean (baseline)", 0), ("0.5 MB junk", 512 * 1024), ("5 MB junk", 5 * 1024 * 1024))]
    print(f"{'journal':<18} {'size':>10} {'start':>9} {'warnings':>9} {'ms/MB':>8}")
    for label, seconds, warnings, size in rows:
        per_mb = seconds * 1000 / (size / 1e6)
        print(f"{label:<18} {size:>10,} {seconds * 1000:>7.1f}ms {warnings:>9} {per_mb:>8.1f}")
    small, large = rows[1], rows[2]
    print(f"5 MB / 0.5 MB: size x{large[3] / small[3]:.1f}, start time x{large[1] / small[1]:.1f}; "
          f"5 MB vs clean: x{large[1] / rows[0][1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
