"""Helpers shared by the opkg tests: the stand-in's call log, process
inspection, a lock holder, bounded waits, an OpkgSystem on a sandbox."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from devtools.sandbox import Sandbox
from pineapple.jobs import JobManager
from pineapple.jobs.events import JobEvent
from pineapple.opkg.runner import RunnerSettings
from pineapple.opkg.system import OpkgSystem
from tests.conftest import feed_packages
from tests.fixtures.opkgs import opkg_under_test

REPO = pathlib.Path(__file__).resolve().parents[2]
# The stand-in starts with "#!/usr/bin/env python3": find this interpreter first.
STANDIN_PATH = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", os.defpath)
JOB_WAIT = 30.0  # upper bound for any job in this file (they take well under a second)
_PATH_OPTIONS = frozenset({"-o", "--offline-root", "-f", "--conf", "-d", "--dest", "-t", "--tmp-dir",
                           "--add-dest", "--add-arch"})


def make_system(sb: Sandbox, *, dest: str = "", lists_max_age: float = 86400.0,
                clock: Callable[[], float] = time.time, **settings: object) -> OpkgSystem:
    """An OpkgSystem driving the opkg under test (the stand-in, or
    PINEAPPLE_TEST_OPKG) on ``sb`` (settings: RunnerSettings fields)."""
    options: dict = {"binary": opkg_under_test(sb), "offline_root": str(sb.root), "conf": str(sb.conf),
                     "env_path": STANDIN_PATH, "lock_wait": 10.0, "timeout": 60.0, **settings}
    runner = RunnerSettings(**options)
    return OpkgSystem(runner, dest=dest, lists_max_age=lists_max_age, clock=clock)


def sub_command(argv: list[str]) -> str | None:
    """The opkg sub-command of a logged argv (after the binary and options)."""
    words = argv[1:]
    index = 0
    while index < len(words):
        word = words[index]
        if word in _PATH_OPTIONS:
            index += 2
        elif word.startswith("-"):
            index += 1
        else:
            return word
    return None


class CallLog:
    """Reads OPKG_STANDIN_CALL_LOG: one JSON line per stand-in process."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def argvs(self) -> list[list[str]]:
        return [entry["argv"] for entry in self.entries()]

    def commands(self) -> list[str | None]:
        return [sub_command(argv) for argv in self.argvs()]

    def pid_of(self, command: str) -> int:
        """Pid of the last process that ran ``command``."""
        pids = [entry["pid"] for entry in self.entries() if sub_command(entry["argv"]) == command]
        assert pids, f"no opkg {command} in the call log: {self.commands()}"
        return pids[-1]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as handle:
        return handle.read().strip()


def pids_named(name: str) -> set[int]:
    """Processes whose /proc comm (what pgrep/killall match) is ``name``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if comm(int(entry)) == name:
                    found.add(int(entry))
    return found


def end_process(proc: subprocess.Popen) -> None:
    """Stop a process this test started (by its pid), bounded."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@contextlib.contextmanager
def lock_holder(sb: Sandbox) -> Iterator[subprocess.Popen]:
    """Another process (devtools.opkgsim.lock) holding the sandbox's opkg
    lock, as LuCI or a cron job would; released by closing its stdin."""
    proc = subprocess.Popen([sys.executable, "-m", "devtools.opkgsim.lock", str(sb.root)], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready and proc.stdout.readline() == "locked\n", "the lock helper did not take the lock"
        yield proc
    finally:
        release_lock(proc)


def release_lock(proc: subprocess.Popen) -> None:
    if proc.poll() is None and proc.stdin and not proc.stdin.closed:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        end_process(proc)


def run_job(manager: JobManager, job, timeout: float = JOB_WAIT):
    return manager.wait(manager.execute_job(job), timeout)


class Recorder:
    """Every event the manager publishes, in order, with bounded waits."""

    def __init__(self, manager: JobManager) -> None:
        self.events: list[JobEvent] = []
        self._cond = threading.Condition()
        manager.add_listener(self._on_event)

    def _on_event(self, event: JobEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[JobEvent]], bool], timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.events), timeout), "event not seen in time"

    def wait_final(self, job_id: str, timeout: float = 10.0) -> list[JobEvent]:
        """The job's events up to and including its terminal state event."""
        self.wait_for(lambda events: any(e.job_id == job_id and e.kind == "state" and e.data["is_complete"]
                                         for e in events), timeout)
        with self._cond:
            return [e for e in self.events if e.job_id == job_id]


def build_template(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """What tests/conftest.py's ``sandbox`` builds (its feed, lists fresh,
    libc installed), built once so each test can get a cheap clone."""
    return Sandbox.create(tmp_path_factory.mktemp("opkg-template") / "sb", packages=feed_packages(),
                          installed=["libc"])


# ----------------------------------------------------- roots and other opkgs
def tree_snapshot(root: pathlib.Path) -> dict[str, tuple]:
    """Everything under ``root`` (directories too) with its type, mode and
    content, apart from opkg's lock file and downloaded lists: equal
    snapshots mean a byte-for-byte identical root."""
    skip = ("var/lock/opkg.lock", "var/opkg-lists/")
    found: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(skip) or rel == "var/opkg-lists":
            continue
        mode = path.lstat().st_mode
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = ("dir", oct(mode))
        else:
            found[rel] = ("file", oct(mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def snapshot_diff(before: dict[str, tuple], after: dict[str, tuple]) -> dict[str, tuple]:
    """path -> (before, after) for every difference (None: absent)."""
    return {path: (before.get(path), after.get(path)) for path in sorted(set(before) | set(after))
            if before.get(path) != after.get(path)}


FAKE_WGET = """#!/bin/sh
# opkg's download call: wget -q [--timeout N] -O FILE URL. Serves the URL's
# file name from {feed}; waits for {release} first when {hang_name} is in the URL.
out=; url=
while [ $# -gt 0 ]; do
  case "$1" in -O) out=$2; shift 2;; --timeout) shift 2;; -*) shift;; *) url=$1; shift;; esac
done
echo "$url" >> {log}
case "$url" in *{hang_name}*)
  i=0; while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done;;
esac
exec cp "{feed}/${{url##*/}}" "$out"
"""
HTTP_FEED = "http://feed.invalid/base"


def serve_feed_over_fake_http(sb: Sandbox, directory: pathlib.Path, hang_name: str = "-no-hang-") -> pathlib.Path:
    """Point the sandbox's feed at an http:// URL and put a fake ``wget`` in
    ``directory`` (put it first on opkg's PATH) serving it from the feed
    dir; it hangs (bounded) on URLs containing ``hang_name`` until
    ``directory/release`` exists. URLs fetched go to ``directory/wget.log``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "wget"
    script.write_text(FAKE_WGET.format(feed=sb.feed_dir, release=directory / "release",
                                       log=directory / "wget.log", hang_name=hang_name))
    script.chmod(0o755)
    text = sb.conf.read_text().replace(f"file://{sb.feed_dir.resolve()}\n", HTTP_FEED + "\n")
    sb.conf.write_text(text)
    return script


def opkg_argv(binary: str, sb: Sandbox, *args: str) -> list[str]:
    """``[binary, -o ROOT, -f CONF, *args]`` for any opkg."""
    return [binary, "-o", str(sb.root), "-f", str(sb.conf), *args]
