"""The module socket, the MK7 way: our library beside Hak5's, same run.

    .venv/bin/python bench/module_socket.py
    PINEAPPLE_TEST_MK7_LIBRARY=/tmp/hak5/pineapple-modules/Libraries/Python3 .venv/bin/python bench/module_socket.py

One small backend (ours, written as the real ones are: ``Module(name,
level)``, ``@handles_action``, ``start()``) runs as a process on each
library and is driven by the MK7 client of the tests (request on one
connection, answer read from the next):

- sequential round trips of a fast action (median, p90, requests/s);
- a slow action (0.5 s) in flight while a second client sends 20 fast
  requests: how long those 20 take, and how many got their own answer
  (Hak5's module, busy in the handler with a backlog of 1, refuses them:
  connect() fails with EAGAIN);
- ``{}`` then a valid request: answered or not (2 s timeout each);
- the backend's RSS after the runs.

Hak5's library hard-codes ``/tmp/modules``: its process runs in a private
mount namespace with ``/tmp/modules`` bind-mounted onto a scratch
directory (needs root and unshare). Without the variable only ours is
measured.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._measure import rss_kib  # noqa: E402
from tests.modules.helpers import exchange  # noqa: E402  (the MK7 client the tests use)

BACKEND = '''
import logging, time
from pineapple.modules import Module, Request
module = Module("benchmod", logging.ERROR)

@module.handles_action("ping")
def ping(request: Request):
    return {"pong": request.n}

@module.handles_action("slow")
def slow(request: Request):
    time.sleep(0.5)
    return "slow done"

if __name__ == "__main__":
    module.start()
'''
ROUNDS = 300
HAK5_SOCKET_DIR = "/tmp/modules"


def start(library: str | None, scratch: Path) -> tuple[subprocess.Popen, Path]:
    socks = scratch / "socks"
    socks.mkdir()
    script = scratch / "module.py"
    script.write_text(BACKEND)
    env = {**os.environ, "PYTHONPATH": library or str(REPO), "PINEAPPLE_MODULE_SOCKET_DIR": str(socks)}
    if library:
        os.makedirs(HAK5_SOCKET_DIR, exist_ok=True)
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'mount --bind {socks} {HAK5_SOCKET_DIR} && exec "$0" "$1"', sys.executable, str(script)]
    else:
        command = [sys.executable, str(script)]
    proc = subprocess.Popen(command, cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = socks / "benchmod.sock"
    deadline = time.monotonic() + 15
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the backend did not start ({'Hak5' if library else 'ours'})")
        time.sleep(0.02)
    return proc, path


def ask(path: Path, request: dict | bytes, timeout: float = 10.0) -> dict | None:
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    try:
        return json.loads(exchange(path, data, timeout=timeout))
    except (socket.timeout, ValueError, OSError):
        return None


def measure(label: str, library: str | None) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="bench-mod-"))
    proc, path = start(library, scratch)
    try:
        times = []
        for n in range(ROUNDS):
            started = time.perf_counter()
            answer = ask(path, {"action": "ping", "n": n})
            times.append((time.perf_counter() - started) * 1000)
            assert answer == {"payload": {"pong": n}}, answer
        slow_answer: list = []
        slow = threading.Thread(target=lambda: slow_answer.append(ask(path, {"action": "slow"})))
        slow.start()
        time.sleep(0.05)
        started = time.perf_counter()
        beside = [ask(path, {"action": "ping", "n": n}, timeout=5) for n in range(20)]
        beside_s = time.perf_counter() - started
        slow.join(15)
        missing = sum(1 for a in beside if a is None)
        crossed = sum(1 for n, a in enumerate(beside) if a is not None and a != {"payload": {"pong": n}})
        empty = ask(path, b"{}", timeout=2)
        after = ask(path, {"action": "ping", "n": -1}, timeout=2)
        rss = rss_kib(_module_pid(proc))
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(scratch, ignore_errors=True)
    return {"library": label, "median_ms": statistics.median(times),
            "p90_ms": sorted(times)[int(ROUNDS * 0.9)], "per_s": ROUNDS / (sum(times) / 1000),
            "beside_slow_s": beside_s, "beside_wrong": crossed, "beside_missing": missing,
            "slow_answer": slow_answer[0] if slow_answer else None, "empty": empty, "after_empty": after,
            "rss_kib": rss}


def _module_pid(proc: subprocess.Popen) -> int:
    """The python process (unshare execs sh, which execs python: same pid)."""
    return proc.pid


def main() -> int:
    runs = [measure("ours", None)]
    hak5 = os.environ.get("PINEAPPLE_TEST_MK7_LIBRARY")
    if hak5:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            print("Hak5's library needs root and unshare (private /tmp/modules); skipped")
        else:
            runs.append(measure("Hak5", hak5))
    print(f"{'library':8} {'median':>8} {'p90':>8} {'req/s':>7} {'20 fast beside a 0.5 s one':>27} "
          f"{'{} answered':>12} {'next answered':>14} {'RSS':>9}")
    for r in runs:
        beside = f"{r['beside_slow_s']:.2f} s, {20 - r['beside_missing'] - r['beside_wrong']} right"
        print(f"{r['library']:8} {r['median_ms']:6.2f}ms {r['p90_ms']:6.2f}ms {r['per_s']:7.0f} {beside:>27} "
              f"{'yes' if r['empty'] else 'no':>12} {'yes' if r['after_empty'] else 'no':>14} "
              f"{r['rss_kib'] / 1024:7.1f}MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
