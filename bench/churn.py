#!/usr/bin/env python3
"""Churn benchmark: 20,000 trivial jobs through a JobManager.

Prints RSS before and after, the peak number of live threads, and the same
figures for the thread-per-job manager module authors use today (the
baseline, measured in the same run). Targets: RSS growth under 2 MiB and
threads never above the pool size plus a small constant.

    python bench/churn.py [--jobs 20000] [--workers 2] [--skip-baseline]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._measure import mib, rss_kib, thread_count  # noqa: E402
from bench.legacy import LegacyJobManager  # noqa: E402
from pineapple.jobs import Job, JobManager  # noqa: E402


class Sleepy(Job):
    """A job that takes real time (10 ms), so jobs pile up."""

    def do_work(self, logger):
        time.sleep(0.01)


def burst(manager, jobs: int, done) -> int:
    """Submit ``jobs`` 10 ms jobs at once; the peak number of live threads."""
    ids = [manager.execute_job(Sleepy()) for _ in range(jobs)]
    peak = thread_count()
    while not done(ids[-1]):
        peak = max(peak, thread_count())
        time.sleep(0.002)
    return peak


class Trivial(Job):
    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    def do_work(self, logger):
        logger.info("job %d", self.value)
        return self.value * 2


def run_pineapple(jobs: int, workers: int, state_dir: str | None) -> dict:
    manager = JobManager("churn", workers=workers, state_dir=state_dir)
    peak = _pump(manager, 200, lambda job_id: manager.wait(job_id, 60))
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    peak = max(peak, _pump(manager, jobs, lambda job_id: manager.wait(job_id, 60)))
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_kib()
    kept = len(manager.list_jobs())
    manager.shutdown()
    return {"before": before, "after": after, "peak_threads": peak, "seconds": elapsed, "kept": kept}


def run_legacy(jobs: int) -> dict:
    manager = LegacyJobManager()
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()

    def wait(job_id: str) -> None:
        while not manager.jobs[job_id].is_complete:
            time.sleep(0.001)

    peak = _pump(manager, jobs, wait)
    elapsed = time.perf_counter() - started
    time.sleep(0.2)
    gc.collect()
    return {"before": before, "after": rss_kib(), "peak_threads": peak, "seconds": elapsed,
            "kept": len(manager.jobs)}


def _pump(manager, jobs: int, wait) -> int:
    """Submit ``jobs`` jobs in batches of 500, sampling live threads."""
    peak = thread_count()
    last = None
    for i in range(jobs):
        last = manager.execute_job(Trivial(i))
        if i % 50 == 0:
            peak = max(peak, thread_count())
        if i % 500 == 499:
            wait(last)
    if last is not None:
        wait(last)
    return max(peak, thread_count())


def report(name: str, figures: dict, workers: int | None) -> None:
    growth = figures["after"] - figures["before"]
    print(f"{name}:")
    print(f"  RSS before {mib(figures['before'])}, after {mib(figures['after'])}, growth {growth / 1024:+.2f} MiB")
    bound = f" (pool {workers} + main + timer + events = {workers + 3})" if workers else ""
    print(f"  peak live threads {figures['peak_threads']}{bound}")
    print(f"  records kept {figures['kept']}, {figures['seconds']:.2f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--state-dir", default=None, help="journal directory (default: none)")
    parser.add_argument("--burst", type=int, default=500, help="10 ms jobs submitted at once (default 500)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    ours = run_pineapple(args.jobs, args.workers, args.state_dir)
    report(f"pineapple.jobs.JobManager, {args.jobs} jobs, {args.workers} workers", ours, args.workers)
    manager = JobManager("burst", workers=args.workers, max_queued=args.burst + 1)
    ours["burst_threads"] = burst(manager, args.burst, lambda i: manager.get_job(i, False).is_complete)
    manager.shutdown()
    print(f"  a burst of {args.burst} 10 ms jobs: peak live threads {ours['burst_threads']}")
    growth = (ours["after"] - ours["before"]) / 1024
    ok = growth < 2.0 and max(ours["peak_threads"], ours["burst_threads"]) <= args.workers + 3
    if not args.skip_baseline:
        legacy = run_legacy(args.jobs)
        report(f"baseline: thread-per-job manager, {args.jobs} jobs", legacy, None)
        old = LegacyJobManager()
        legacy["burst_threads"] = burst(old, args.burst, lambda i: old.jobs[i].is_complete)
        print(f"  a burst of {args.burst} 10 ms jobs: peak live threads {legacy['burst_threads']}")
        lg = (legacy["after"] - legacy["before"]) / 1024
        print(f"ratios (ours / baseline): RSS growth {growth:+.2f} / {lg:+.2f} MiB, "
              f"peak threads in the burst {ours['burst_threads']} / {legacy['burst_threads']}, "
              f"time {ours['seconds'] / legacy['seconds']:.2f}x")
    print("targets: RSS growth < 2 MiB, threads <= pool + 3:", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
