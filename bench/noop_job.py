"""The no-op job type bench/daemon.py declares in the daemon's config
(``config job_type 'bench_noop'``, handler ``noop_job:noop``)."""
from __future__ import annotations


def noop(job, n: int = 0) -> dict:
    """Does nothing but log a line and answer its number."""
    return {"n": n}
