"""opkg stand-in: the lock, interrupted runs and the fault knobs."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable

import pytest

from devtools.sandbox import Sandbox

from .conftest import Runner, errors, read_until

Spawn = Callable[..., "subprocess.Popen[bytes]"]
REPO = pathlib.Path(__file__).resolve().parents[2]


def wait_for_posix_lock(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until ``proc`` holds a POSIX lock (Linux /proc/locks), without
    competing for the lock as a probing opkg run would."""
    deadline = time.monotonic() + timeout
    while not any(line.split()[1:2] == ["POSIX"] and line.split()[4] == str(proc.pid)
                  for line in pathlib.Path("/proc/locks").read_text().splitlines()):
        assert proc.poll() is None, "process exited before taking the lock"
        assert time.monotonic() < deadline, "lock not taken in time"
        os.sched_yield()


def busy(sb: Sandbox) -> str:
    return errors(f"opkg_conf_load: Could not lock {sb.root}//var/lock/opkg.lock: "
                  "Resource temporarily unavailable.")


@pytest.mark.parametrize("command", [["list-installed"], ["status"], ["update"], ["install", "mylib"],
                                     ["remove", "mylib"]])
def test_every_command_needs_the_lock(sandbox: Sandbox, opkg: Runner, command: list[str]) -> None:
    with sandbox.hold_lock():
        result = opkg(*command)
    assert (result.stdout, result.stderr, result.returncode) == ("", busy(sandbox), 255)
    assert opkg(*command).returncode == 0  # released: works


def test_lock_held_by_another_process(sandbox: Sandbox, opkg: Runner) -> None:
    holder = subprocess.Popen([sys.executable, "-m", "devtools.opkgsim.lock", str(sandbox.root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    try:
        read_until(holder, "locked")
        assert opkg("list-installed").stderr == busy(sandbox)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=15) == 0
    assert opkg("list-installed").returncode == 0


def test_lock_file_is_unlinked_after_a_run_like_opkg(sandbox: Sandbox, opkg: Runner) -> None:
    assert opkg("list-installed").returncode == 0
    assert not os.path.exists(sandbox.lock_path)


def test_stale_lock_after_kill_9_blocks_nothing(sandbox: Sandbox, opkg: Runner, spawn: Spawn) -> None:
    proc = spawn("install", "myapp", hang="download:mylib")
    read_until(proc, "mylib_1.0-1_all.ipk\n")
    assert opkg("list-installed").stderr == busy(sandbox)
    proc.kill()
    proc.wait(timeout=15)
    assert os.path.exists(sandbox.lock_path)  # the file stays ...
    result = opkg("install", "myapp")  # ... but locks nothing
    assert result.returncode == 0
    assert sandbox.installed() == {"myapp": "1.2.3-1", "mylib": "1.0-1"}


def test_missing_lock_dir(sandbox: Sandbox, opkg: Runner) -> None:
    shutil.rmtree(sandbox.root / "var" / "lock")
    result = opkg("list-installed")
    assert result.stderr == errors(f"opkg_conf_load: Could not create lock file {sandbox.root}//var/lock/opkg.lock: "
                                   "No such file or directory.")
    assert (result.stdout, result.returncode) == ("", 255)


def test_lock_hold_knob_simulates_luci(sandbox: Sandbox, opkg: Runner, spawn: Spawn) -> None:
    holder = spawn("list-installed", lock_hold=60)
    wait_for_posix_lock(holder)
    assert opkg("status").stderr == busy(sandbox)
    holder.terminate()
    holder.wait(timeout=15)
    assert opkg("status").returncode == 0


def test_interrupted_configure_leaves_files_but_no_status(sandbox: Sandbox, opkg: Runner, spawn: Spawn) -> None:
    proc = spawn("install", "myapp", hang="configure:myapp")
    seen = read_until(proc, "Configuring myapp.\n")
    assert seen.endswith("Configuring mylib.\nConfiguring myapp.\n")
    proc.kill()
    proc.wait(timeout=15)
    assert sandbox.path("/usr/bin/myapp").exists()
    assert (sandbox.info_dir() / "myapp.control").exists()
    assert sandbox.installed() == {}  # the status file is written only at the end
    assert opkg("list-installed").stdout == ""
    again = opkg("install", "myapp")  # a plain install recovers
    assert again.returncode == 0 and sandbox.installed() == {"myapp": "1.2.3-1", "mylib": "1.0-1"}


def test_sigint_writes_the_status_database(sandbox: Sandbox, spawn: Spawn) -> None:
    proc = spawn("install", "myapp", hang="configure:myapp")
    read_until(proc, "Configuring myapp.\n")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert out.decode() == "Interrupted. Writing out status database.\n"
    status = {s["Package"]: s["Status"] for s in sandbox.status()}
    assert status == {"mylib": "install ok installed", "myapp": "install user unpacked"}


def test_sigterm_cancels_a_slow_download(sandbox: Sandbox, opkg: Runner, spawn: Spawn) -> None:
    proc = spawn("install", "myapp", download_delay=3600)
    wait_for_posix_lock(proc)  # it is inside the install now
    proc.terminate()
    proc.wait(timeout=15)
    assert proc.returncode == -signal.SIGTERM
    assert sandbox.installed() == {}


def test_download_delay_is_per_package(opkg: Runner) -> None:
    start = time.monotonic()
    assert opkg("install", "myapp", download_delay=0.3).returncode == 0
    assert time.monotonic() - start >= 0.6  # two downloads


def test_call_log_counts_invocations(sandbox: Sandbox, opkg: Runner, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "calls.jsonl"
    for args in (["update"], ["install", "mylib"], ["status", "mylib"]):
        opkg(*args, call_log=log)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["argv"][5:] for entry in entries] == [["update"], ["install", "mylib"], ["status", "mylib"]]
    assert entries[0]["argv"][:5] == sandbox.argv()
    assert all(isinstance(entry["pid"], int) for entry in entries)
    assert len({entry["pid"] for entry in entries}) == 3


def test_hang_update_for_one_feed(sandbox: Sandbox, spawn: Spawn) -> None:
    proc = spawn("update", hang="update:base")
    assert read_until(proc, "Packages.gz\n").startswith("Downloading file://")
    proc.kill()
    proc.wait(timeout=15)
