"""An idle daemon uses no CPU: no polling loop, no periodic wake-up.

Measured from /proc: CPU ticks (utime + stime) and, exactly, the context
switches of every thread. Over an idle window neither may change.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.api.helpers import Line, wait_complete, wait_until

WINDOW = 2.0  # seconds of idleness measured


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wakeups(pid: int) -> dict[str, int]:
    """Context switches per thread (a sleeping thread that wakes adds one)."""
    switches = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as status:
                counts = [int(line.split()[1]) for line in status if "ctxt_switches" in line]
        except FileNotFoundError:
            continue  # a thread that just ended
        switches[tid] = sum(counts)
    return switches


# Longer than the 0.1 s poll of sh's reader threads, which end shortly after
# their opkg process: a shorter window could call a finishing thread settled.
SETTLE = 0.25


def thread_name(pid: int, tid: str) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "(gone)"


def settled(pid: int) -> dict[str, int]:
    """Wait until the daemon has finished what it was doing (two samples
    SETTLE seconds apart agree), then return the sample."""
    last: list[dict[str, int]] = [wakeups(pid)]

    def same() -> dict[str, int] | None:
        time.sleep(SETTLE)
        now = wakeups(pid)
        stable = now == last[0]
        last[0] = now
        return now if stable else None

    return wait_until(same, what="the daemon to settle")


def assert_idle(pid: int) -> None:
    before_switches, before_ticks = settled(pid), cpu_ticks(pid)
    names = {tid: thread_name(pid, tid) for tid in before_switches}
    time.sleep(WINDOW)  # the measurement window itself, not a wait for a state
    after_switches, after_ticks = wakeups(pid), cpu_ticks(pid)
    woke = {tid: after_switches[tid] - n for tid, n in before_switches.items()
            if tid in after_switches and after_switches[tid] != n}
    assert not woke, f"threads woke up while idle: {woke}"
    gone = {tid: names[tid] for tid in before_switches.keys() - after_switches.keys()}
    assert after_switches.keys() == before_switches.keys(), f"threads came or went while idle: ended {gone}"
    assert after_ticks == before_ticks


@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons()


def test_idle_with_no_connection(jobd):
    assert_idle(jobd.proc.pid)


def test_idle_with_an_idle_connection_open(jobd):
    with Line(jobd.socket) as conn:
        assert conn.request({"action": "ping"})["ok"]
        assert_idle(jobd.proc.pid)
        assert conn.request({"action": "ping"})["ok"]  # still served afterwards


def test_idle_after_a_job_ran(jobd):
    # After real work worker threads exist, the timer thread holds the
    # finished job's retention deadline, sh is loaded: all still asleep.
    with Line(jobd.socket) as conn:
        job_id = conn.payload({"action": "submit", "job": "install", "packages": ["tool-a"]})["job_id"]
        assert wait_complete(jobd.socket, job_id)["state"] == "succeeded"
        assert_idle(jobd.proc.pid)
