"""The daemon process: crash and restart, one daemon per socket, clean SIGTERM."""
from __future__ import annotations

import signal
import time

import pytest

from tests.api.helpers import (
    DEADLINE,
    Line,
    call_log_argvs,
    kill_standins,
    ping_ok,
    poll,
    submit,
    wait_state,
    wait_until,
)


@pytest.fixture
def call_log(tmp_path):
    path = tmp_path / "opkg-calls.jsonl"
    yield path
    kill_standins(path)  # a killed daemon leaves its opkg run behind


def opkg_started(call_log, *words: str) -> bool:
    return any(all(w in argv for w in words) for argv in call_log_argvs(call_log))


def get(daemon, job_id: str) -> dict:
    with Line(daemon.socket) as line:
        return line.payload({"action": "get_job", "job_id": job_id})


# -------------------------------------------------------------------- crash
def test_kill_9_during_an_install_then_restart(module_daemons, call_log):
    daemon = module_daemons(env={"OPKG_STANDIN_DOWNLOAD_DELAY": "60", "OPKG_STANDIN_CALL_LOG": str(call_log)})
    job_id = submit(daemon.socket, job="install", packages=["tool-a"])["job_id"]
    wait_state(daemon.socket, job_id, "running")
    wait_until(lambda: opkg_started(call_log, "install", "tool-a"), what="opkg install to start")
    daemon.kill()
    assert daemon.socket.exists()  # the crash left its socket file behind
    kill_standins(call_log)

    daemon.start()  # same socket, same state directory
    assert "replacing stale socket" in daemon.log()
    summary = poll(daemon.socket, job_id)
    assert summary["state"] == "interrupted" and summary["is_complete"] is True
    assert summary["error_code"] == "interrupted" and "submit it again" in summary["job_error"]
    # Its intent was recovered: the orphan was already gone, nothing was unpacked.
    assert summary["result"] == {"recovery": {"op": "install", "phase": "install", "opkg_stopped": None,
                                              "removed": [], "left": [], "kept": [], "debris": []}}
    assert summary["job_error"].endswith("\nrecovery: nothing was left half done")
    record = get(daemon, job_id)
    assert record["params"]["packages"] == ["tool-a"] and record["finished_at"] >= record["started_at"]
    # The restarted daemon takes jobs again (libc is installed: no opkg run).
    again = submit(daemon.socket, job="install", packages=["libc"])
    assert again["duplicate"] is False and wait_state(daemon.socket, again["job_id"], "succeeded")


def test_a_second_daemon_on_the_same_socket_refuses_to_start(module_daemons):
    first = module_daemons()
    second = module_daemons(["--socket", str(first.socket)], wait=False)
    assert second.proc.wait(DEADLINE) == 1
    assert f"another pineapple-jobd (pid {first.proc.pid}) is already serving {first.socket}" in second.log()
    assert first.socket.exists() and ping_ok(first.socket)  # untouched


def test_a_second_daemon_on_the_same_state_directory_refuses_to_start(module_daemons):
    first = module_daemons()
    second = module_daemons(["--state-dir", str(first.state_dir)], wait=False)
    assert second.proc.wait(DEADLINE) == 1
    assert "cannot start" in second.log() and str(first.state_dir) in second.log()
    assert not second.socket.exists()
    assert ping_ok(first.socket)


def test_a_socket_path_held_by_another_program_is_not_taken(module_daemons, tmp_path):
    import socket as socketlib

    first = module_daemons()
    other = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    path = first.sock_dir / "other.sock"
    other.bind(str(path))
    other.listen(1)
    try:
        second = module_daemons(["--socket", str(path)], wait=False)
        assert second.proc.wait(DEADLINE) == 1
        assert "in use by another process" in second.log()
    finally:
        other.close()


# ------------------------------------------------------------------ SIGTERM
def stop_and_check_clean(daemon) -> None:
    assert daemon.proc.wait(DEADLINE * 2) == 0, daemon.log()
    assert not daemon.socket.exists()
    assert not daemon.socket.with_name(daemon.socket.name + ".lock").exists()
    assert "stopped" in daemon.log()


def test_sigterm_lets_a_running_job_finish_within_the_grace(module_daemons, call_log):
    daemon = module_daemons(["--set", "daemon.shutdown_grace=20"],
                            env={"OPKG_STANDIN_DOWNLOAD_DELAY": "0.3", "OPKG_STANDIN_CALL_LOG": str(call_log)})
    job_id = submit(daemon.socket, job="install", packages=["otherapp"])["job_id"]
    wait_until(lambda: opkg_started(call_log, "install", "otherapp"), what="opkg install to start")
    daemon.send_signal(signal.SIGTERM)
    # While it drains it answers, but takes no new jobs.
    refused = wait_until(lambda: _submit_refused(daemon), what="new jobs to be refused while draining")
    assert refused["code"] == "shutting_down"
    stop_and_check_clean(daemon)

    daemon.start()
    record = get(daemon, job_id)
    assert record["state"] == "succeeded" and record["is_complete"] is True
    assert "otherapp" in record["result"]["installed"]
    with Line(daemon.socket) as line:
        assert line.payload({"action": "installed", "packages": ["otherapp"]})["installed"]["otherapp"]


def _submit_refused(daemon) -> dict | None:
    try:
        with Line(daemon.socket) as line:
            answer = line.request({"action": "submit", "job": "update"})
    except OSError:
        return None
    return answer if answer.get("ok") is False else None


def test_sigterm_cancels_a_job_that_outlasts_the_grace(module_daemons, call_log):
    daemon = module_daemons(["--set", "daemon.shutdown_grace=0.5"],
                            env={"OPKG_STANDIN_HANG": "download:tool-b", "OPKG_STANDIN_CALL_LOG": str(call_log)})
    job_id = submit(daemon.socket, job="install", packages=["tool-b"])["job_id"]
    wait_until(lambda: any(line.startswith("Downloading") for line in get(daemon, job_id)["log"]),
               what="the install to hang in its download")
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    stop_and_check_clean(daemon)
    assert time.monotonic() - started < 10

    daemon.start()
    record = get(daemon, job_id)
    assert record["state"] == "cancelled" and record["is_complete"] is True
    assert record["error_code"] == "cancelled"
    with Line(daemon.socket) as line:
        assert line.payload({"action": "installed", "packages": ["tool-b"]})["installed"]["tool-b"] is None


def test_sigterm_when_idle_and_sigint(module_daemons):
    daemon = module_daemons()
    with Line(daemon.socket) as idle:  # an open connection does not hold the daemon up
        assert idle.request({"action": "ping"})["ok"]
        daemon.send_signal(signal.SIGTERM)
        stop_and_check_clean(daemon)
        assert idle.closed_by_peer()
    daemon.start()
    daemon.send_signal(signal.SIGINT)
    stop_and_check_clean(daemon)


def test_a_second_sigterm_cancels_at_once(module_daemons, call_log):
    daemon = module_daemons(["--set", "daemon.shutdown_grace=60"],
                            env={"OPKG_STANDIN_HANG": "download:tool-c", "OPKG_STANDIN_CALL_LOG": str(call_log)})
    job_id = submit(daemon.socket, job="install", packages=["tool-c"])["job_id"]
    wait_until(lambda: any(line.startswith("Downloading") for line in get(daemon, job_id)["log"]),
               what="the install to hang in its download")
    daemon.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping (SIGTERM)" in daemon.log(), what="the first signal to be handled")
    daemon.send_signal(signal.SIGTERM)
    stop_and_check_clean(daemon)
    daemon.start()
    assert get(daemon, job_id)["state"] == "cancelled"
