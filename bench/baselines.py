#!/usr/bin/env python3
"""Baselines for bench/daemon.py, each in a process of its own.

- ``huey``: huey 3.x with ``SqliteHuey`` (no broker process; the storage a
  router could run), a thread consumer with as many workers as our daemon
  (polling its storage every 10 ms at first instead of huey's default
  100 ms, so it is not slowed by its own back-off), and a producer sending
  a no-op task in batches of 100 and waiting for every result, 2 rounds:
  tasks/s of each round and the consumer's RSS before any task and after
  each round. A no-op task is huey's best case: our jobs do real work
  (read opkg's status, log, journal).
- ``apscheduler``: APScheduler 3.x ``BackgroundScheduler`` (in-process
  thread pool) running the same no-op as one-off jobs, 2 rounds, with its
  RSS before and after.

huey and APScheduler are never dependencies of pineapple-jobd: install them
in a bench-only venv (``make bench-daemon`` does). When they do not import,
bench/daemon.py says so and skips the row.

    python bench/baselines.py huey-consumer DB WORKERS
    python bench/baselines.py huey-producer DB JOBS       -> one JSON line per round
    python bench/baselines.py apscheduler JOBS            -> JSON lines
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._measure import rss_kib  # noqa: E402

BATCH = 100


def make_huey(db: str):
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=db)

    @huey.task()
    def noop(n: int) -> dict:
        return {"n": n}

    return huey, noop


def huey_consumer(db: str, workers: int) -> int:
    from huey.consumer import Consumer

    huey, _ = make_huey(db)
    Consumer(huey, workers=workers, worker_type="thread", initial_delay=0.01, backoff=1.15, max_delay=1.0,
             periodic=False, check_worker_health=False).run()
    return 0


def huey_producer(db: str, jobs: int) -> int:
    _, noop = make_huey(db)
    for _ in range(2):
        started, done = time.perf_counter(), 0
        while done < jobs:
            batch = min(BATCH, jobs - done)
            results = [noop(done + n) for n in range(batch)]
            for result in results:
                result.get(blocking=True, timeout=60, backoff=1.15, max_delay=0.01)
            done += batch
        elapsed = time.perf_counter() - started
        print(json.dumps({"rate": jobs / elapsed}), flush=True)
        sys.stdin.readline()  # the bench samples the consumer's RSS, then says go on
    return 0


def apscheduler(jobs: int) -> int:
    import threading

    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler()
    scheduler.start()
    time.sleep(0.3)
    print(json.dumps({"rss_kib": rss_kib()}), flush=True)
    for _ in range(2):
        started, done = time.perf_counter(), 0
        while done < jobs:
            batch = min(BATCH, jobs - done)
            finished = threading.Semaphore(0)

            def noop(n: int, finished: threading.Semaphore = finished) -> dict:
                finished.release()
                return {"n": n}

            for n in range(batch):
                scheduler.add_job(noop, args=(done + n,))
            for _ in range(batch):
                finished.acquire()
            done += batch
        elapsed = time.perf_counter() - started
        time.sleep(0.3)
        print(json.dumps({"rate": jobs / elapsed, "rss_kib": rss_kib()}), flush=True)
    scheduler.shutdown()
    return 0


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "huey-consumer":
        sys.exit(huey_consumer(rest[0], int(rest[1])))
    if mode == "huey-producer":
        sys.exit(huey_producer(rest[0], int(rest[1])))
    if mode == "apscheduler":
        sys.exit(apscheduler(int(rest[0])))
    sys.exit(f"unknown mode {mode}")
