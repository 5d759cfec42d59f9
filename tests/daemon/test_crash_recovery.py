"""kill -9 of the real daemon in the middle of opkg work, then a restart:
the interrupted job's intent is recovered (our orphan opkg stopped, what it
left half done removed) before the daemon answers, and the device shows no
half state, no file no package owns, and no opkg of ours still running."""
from __future__ import annotations

import os
import signal
import subprocess

from tests.api.helpers import poll, submit, wait_state, wait_until
from tests.fixtures.device import half_states, has_exited, live_opkg_runs, unowned_files


def call_log(daemon):
    from pathlib import Path

    return Path(daemon.env["OPKG_STANDIN_CALL_LOG"])


def wait_for_opkg(daemon, command: str, count: int = 1) -> None:
    """Until ``count`` stand-in runs of ``command`` have started."""
    import json

    def started() -> bool:
        try:
            lines = call_log(daemon).read_text().splitlines()
        except OSError:
            return False
        return sum(command in json.loads(line)["argv"] for line in lines) >= count

    wait_until(started, what=f"opkg {command}")


def wait_log(daemon, job_id: str, text: str) -> None:
    def seen() -> bool:
        with daemon.client() as client:
            return any(text in line for line in client.log(job_id, limit=1000).get("lines", []))

    wait_until(seen, what=f"{text!r} in the job's log")


def crash_and_restart(daemon, hang: str) -> None:
    """kill -9, then a restart without the fault knob."""
    daemon.kill()
    daemon.env.pop("OPKG_STANDIN_HANG", None)
    daemon.start()


def crash_then_stop_the_orphan_by_hand(daemon) -> None:
    """kill -9; our orphan opkg then gets SIGINT from someone else (it
    writes the status database) while no daemon runs."""
    daemon.kill()
    for pid in live_opkg_runs(call_log(daemon)):
        os.killpg(pid, signal.SIGINT)
    wait_until(lambda: not live_opkg_runs(call_log(daemon)), what="the orphan to stop")


def assert_device_clean(daemon, sandbox) -> None:
    assert half_states(sandbox) == {}
    assert unowned_files(sandbox) == []
    assert live_opkg_runs(call_log(daemon)) == []


def test_kill_between_a_failed_install_and_its_rollback(start_daemon, sandbox):
    # failpkg's postinst fails; the rollback's `opkg remove` hangs; the daemon dies there.
    daemon = start_daemon(env={"OPKG_STANDIN_HANG": "remove:failpkg"})
    job_id = submit(daemon.socket, job="install", packages=["failpkg"])["job_id"]
    wait_log(daemon, job_id, "Removing package failpkg")  # the stand-in flushes its output, then hangs
    assert "failpkg" in sandbox.installed()
    crash_and_restart(daemon, "remove:failpkg")
    answer = poll(daemon.socket, job_id)
    assert answer["state"] == "interrupted"
    recovery = answer["result"]["recovery"]
    assert recovery["phase"] == "rollback" and recovery["removed"] == ["failpkg"], recovery
    assert recovery["opkg_stopped"]["signal"] == "SIGINT"
    assert "recovery: stopped the interrupted opkg" in answer["job_error"]
    assert "removed failpkg (left by the interrupted install)" in answer["job_error"]
    assert sandbox.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(daemon, sandbox)
    daemon.restart()  # recovery ran once: a second restart changes nothing
    assert poll(daemon.socket, job_id)["result"]["recovery"] == recovery
    assert "recovering" not in daemon.log().split("stopping")[-1]


def test_kill_while_our_opkg_hangs_frees_the_lock_for_the_next_install(start_daemon, sandbox):
    # opkg hangs configuring myapp (mylib and myapp unpacked): it holds opkg's lock for good.
    daemon = start_daemon(env={"OPKG_STANDIN_HANG": "configure:myapp"})
    job_id = submit(daemon.socket, job="install", packages=["myapp"])["job_id"]
    wait_log(daemon, job_id, "Configuring myapp.")
    [orphan] = live_opkg_runs(call_log(daemon))
    crash_and_restart(daemon, "configure:myapp")
    assert orphan not in live_opkg_runs(call_log(daemon))  # stopped before the daemon answered
    answer = poll(daemon.socket, job_id)
    recovery = answer["result"]["recovery"]
    assert answer["state"] == "interrupted" and recovery["opkg_stopped"] == {"pgid": orphan, "signal": "SIGINT"}
    assert sorted(recovery["removed"]) == ["myapp", "mylib"]
    assert_device_clean(daemon, sandbox)
    again = submit(daemon.socket, job="install", packages=["myapp"])["job_id"]
    done = wait_state(daemon.socket, again, {"succeeded", "failed"}, timeout=30)
    assert done["state"] == "succeeded", done  # not lock_busy
    assert sandbox.installed() == {"libc": "1.2.4-4", "mylib": "1.0-1", "myapp": "1.2.3-1"}


def test_kill_during_a_slow_download_removes_what_the_run_had_unpacked(start_daemon, sandbox):
    daemon = start_daemon(env={"OPKG_STANDIN_HANG": "download:myapp"})
    job_id = submit(daemon.socket, job="install", packages=["otherapp", "myapp"])["job_id"]
    wait_log(daemon, job_id, "/myapp_1.2.3-1_all.ipk")  # otherapp and mylib are unpacked by now
    crash_and_restart(daemon, "download:myapp")
    recovery = poll(daemon.socket, job_id)["result"]["recovery"]
    assert sorted(recovery["removed"]) == ["mylib", "otherapp"] and recovery["left"] == []
    assert sandbox.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(daemon, sandbox)


def test_kill_during_an_uninstall_finishes_the_removal(start_daemon, sandbox):
    daemon = start_daemon()
    first = submit(daemon.socket, job="install", packages=["myapp"])["job_id"]
    assert wait_state(daemon.socket, first, "succeeded")
    daemon.stop()
    daemon.env["OPKG_STANDIN_HANG"] = "remove:mylib"  # after myapp's files went, before mylib's
    daemon.start()
    job_id = submit(daemon.socket, job="uninstall", packages=["myapp"])["job_id"]
    wait_for_opkg(daemon, "remove")
    wait_log(daemon, job_id, "Removing package mylib")
    crash_and_restart(daemon, "remove:mylib")
    recovery = poll(daemon.socket, job_id)["result"]["recovery"]
    # The orphan wrote its database on SIGINT: myapp gone, mylib "deinstall".
    assert recovery["op"] == "uninstall" and recovery["removed"] == ["mylib"], recovery
    assert sandbox.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(daemon, sandbox)


def test_a_package_another_process_installed_is_never_removed(start_daemon, sandbox):
    daemon = start_daemon(env={"OPKG_STANDIN_HANG": "configure:failpkg"})
    job_id = submit(daemon.socket, job="install", packages=["failpkg"])["job_id"]
    wait_log(daemon, job_id, "Configuring failpkg.")
    crash_then_stop_the_orphan_by_hand(daemon)
    # "LuCI" installs tool-a (its run configures failpkg again, which fails
    # again: failpkg stays unpacked).
    subprocess.run(sandbox.argv("install", "tool-a"), env=sandbox.env(), capture_output=True, timeout=60)
    assert sandbox.installed() == {"libc": "1.2.4-4", "failpkg": "1.0-1", "tool-a": "1.0-1"}
    daemon.env.pop("OPKG_STANDIN_HANG")
    daemon.start()
    recovery = poll(daemon.socket, job_id)["result"]["recovery"]
    assert recovery["opkg_stopped"] is None  # nothing of ours was left running
    assert recovery["removed"] == ["failpkg"]
    assert sandbox.installed() == {"libc": "1.2.4-4", "tool-a": "1.0-1"}
    assert_device_clean(daemon, sandbox)


def test_what_an_opkg_that_died_unrecorded_unpacked_is_deleted(start_daemon, sandbox):
    # The daemon and its opkg helper both die (the OOM killer, say): the
    # orphan's output has no reader, so opkg dies at its next message
    # (here the SIGINT notice) without writing its database.
    daemon = start_daemon(env={"OPKG_STANDIN_HANG": "configure:myapp"})
    job_id = submit(daemon.socket, job="install", packages=["myapp"])["job_id"]
    wait_log(daemon, job_id, "Configuring myapp.")
    helpers = opkg_helpers(daemon.proc.pid)
    assert helpers, "the daemon runs opkg through its helper"
    daemon.kill()
    for pid in helpers:
        os.kill(pid, signal.SIGKILL)
    # Every thread of it gone through exit: its end of opkg's pty is closed
    # (a zombie leader alone is not enough, see has_exited).
    wait_until(lambda: all(has_exited(pid) for pid in helpers), what="the helper to die")
    for pid in live_opkg_runs(call_log(daemon)):
        os.killpg(pid, signal.SIGINT)
    wait_until(lambda: not live_opkg_runs(call_log(daemon)), what="the orphan to die")
    assert sandbox.installed() == {"libc": "1.2.4-4"} and (sandbox.info_dir() / "myapp.control").exists()
    daemon.env.pop("OPKG_STANDIN_HANG")
    daemon.start()
    recovery = poll(daemon.socket, job_id)["result"]["recovery"]
    assert recovery["debris"] == ["myapp", "mylib"] and sorted(recovery["removed"]) == ["myapp", "mylib"]
    assert sandbox.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(daemon, sandbox)


def opkg_helpers(daemon_pid: int) -> list[int]:
    """The opkg helper processes (pineapple/opkg/helper.py) of one daemon."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if parent == daemon_pid and b"pineapple.opkg.helper import serve" in cmdline.read():
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_an_opkg_helper_killed_mid_run_leaves_nothing_behind(start_daemon, sandbox):
    # The daemon lives; its helper dies (the OOM killer): the job fails, the
    # orphan it leaves is stopped, what it unpacked unrecorded is deleted.
    daemon = start_daemon(env={"OPKG_STANDIN_HANG": "configure:myapp"})
    job_id = submit(daemon.socket, job="install", packages=["myapp"])["job_id"]
    wait_log(daemon, job_id, "Configuring myapp.")
    [helper] = opkg_helpers(daemon.proc.pid)
    os.kill(helper, signal.SIGKILL)
    answer = wait_state(daemon.socket, job_id, {"failed", "succeeded"}, timeout=30)
    assert answer["state"] == "failed" and answer["error_code"] == "opkg_failed", answer
    assert sorted(answer["result"]["rolled_back"]) == ["myapp", "mylib"], answer["result"]
    assert sandbox.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(daemon, sandbox)
    daemon.env.pop("OPKG_STANDIN_HANG")
    daemon.restart()
    again = submit(daemon.socket, job="install", packages=["myapp"])["job_id"]
    assert wait_state(daemon.socket, again, {"failed", "succeeded"}, timeout=30)["state"] == "succeeded"
