"""``pineapple-jobs`` as a user runs it: a subprocess against the real daemon."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.api.helpers import DEADLINE, Line, submit, wait_complete, wait_until
from tests.cli.conftest import HANG


def cli(*args: str, socket=None, timeout: float = DEADLINE * 2) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pineapple.cli.main"]
    if socket is not None:
        argv += ["--socket", str(socket)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run(jobd):
    return lambda *args, **kw: cli(*args, socket=jobd.socket, **kw)


@pytest.fixture
def hung(jobd, run):
    job_id = submit(jobd.socket, job="install", packages=[HANG])["job_id"]
    wait_until(lambda: "Downloading" in run("status", job_id, "--log").stdout, what="the hung install")
    yield job_id
    if run("cancel", job_id).returncode == 0:  # not removed by the test
        wait_complete(jobd.socket, job_id)


# ------------------------------------------------------------- exit codes
def test_help_documents_the_exit_codes():
    result = cli("--help")
    assert result.returncode == 0
    text = result.stdout
    assert "exit codes:" in text
    for code, meaning in (("0", "success"), ("1", "failed"), ("2", "usage"), ("3", "unreachable")):
        assert any(line.strip().startswith(code) and meaning in line for line in text.splitlines()), code
    for command in ("install", "uninstall", "update", "status", "list", "follow", "cancel", "remove", "ping",
                    "stats"):
        assert command in text


@pytest.mark.parametrize("args", [[], ["install"], ["frobnicate"], ["list", "--limit", "ten"],
                                  ["install", "x", "--update", "sometimes"]])
def test_usage_errors_exit_2(args, tmp_path):
    result = cli(*args, socket=tmp_path / "unused.sock")
    assert result.returncode == 2, result
    assert "usage:" in result.stderr


def test_a_refused_request_is_a_usage_error_exit_2(run):
    result = run("install", "a;reboot")
    assert result.returncode == 2
    assert "invalid_package_name" in result.stderr and "a;reboot" in result.stderr


def test_an_unreachable_daemon_exits_3(tmp_path):
    for args in (["ping"], ["install", "tool-a", "--wait"], ["list"], ["follow", "some-job"], ["stats"]):
        result = cli(*args, socket=tmp_path / "nothing.sock")
        assert result.returncode == 3, result
        assert "nothing.sock" in result.stderr and "pineapple-jobs:" in result.stderr


def test_the_socket_comes_from_the_environment_too(jobd):
    env = {**os.environ, "PINEAPPLE_JOBD_SOCKET": str(jobd.socket)}
    result = subprocess.run([sys.executable, "-m", "pineapple.cli.main", "ping"], capture_output=True, text=True,
                            env=env, timeout=DEADLINE)
    assert result.returncode == 0 and "pong" in result.stdout


# ------------------------------------------------------------------ install
def test_install_wait_without_a_tty_prints_plain_lines(run, jobd):
    result = run("install", "tool-a", "--wait")
    assert result.returncode == 0, result
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    assert result.stderr.startswith("job ")  # the id, on stderr
    job_id = result.stderr.split()[1]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[queued]") or lines[0].startswith("[running]")
    assert "  | $ opkg install tool-a" in lines and "  | Configuring tool-a." in lines
    assert any(line.startswith("[succeeded] 100%") for line in lines)
    assert f"job {job_id}  install  succeeded" in lines  # the summary at the end
    assert wait_complete(jobd.socket, job_id)["state"] == "succeeded"


def test_install_wait_of_a_failing_job_exits_1(run):
    result = run("install", "broken", "--wait")
    assert result.returncode == 1, result
    assert "failed" in result.stdout and "missing_dependency" in result.stdout
    assert "does-not-exist" in result.stdout


def test_install_json(run, jobd):
    submitted = run("--json", "install", "tool-b")
    assert submitted.returncode == 0
    answer = json.loads(submitted.stdout)
    assert set(answer) >= {"job_id", "duplicate", "state"}
    wait_complete(jobd.socket, answer["job_id"])
    followed = run("--json", "uninstall", "tool-b", "--wait")
    assert followed.returncode == 0
    events = [json.loads(line) for line in followed.stdout.splitlines()]  # every line is JSON
    assert events[-1]["event"] == "end" and events[-1]["job"]["state"] == "succeeded"
    assert {"state", "log"} <= {e["event"] for e in events}


def test_install_wait_on_a_terminal_draws_a_live_bar(jobd):
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pineapple.cli.main", "--socket", str(jobd.socket),
                             "install", "otherapp", "--wait"], stdout=secondary, stderr=secondary, stdin=secondary)
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + DEADLINE * 2
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert proc.wait(DEADLINE) == 0
    text = output.decode(errors="replace")
    assert "\r\x1b[K[" in text  # the bar is redrawn in place
    assert "#" in text and "%" in text
    assert "succeeded" in text


# ------------------------------------------------------------------ queries
def test_ping_and_stats(run, jobd):
    ping = run("ping")
    assert ping.returncode == 0 and ping.stdout.strip() == "pong (pineapple-jobd 0.1.0)"
    assert json.loads(run("--json", "ping").stdout) == {"pong": True, "version": "0.1.0"}
    stats = run("stats")
    assert stats.returncode == 0 and f"pid {jobd.proc.pid}" in stats.stdout and "jobs:" in stats.stdout
    assert json.loads(run("--json", "stats").stdout)["pid"] == jobd.proc.pid


def test_list_and_status(run, jobd):
    job_id = submit(jobd.socket, job="install", packages=["libc"])["job_id"]
    wait_complete(jobd.socket, job_id)
    listing = run("list")
    assert listing.returncode == 0
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["JOB", "TYPE", "STATE", "PROGRESS", "PACKAGES", "AGE", "NOTE"]
    assert "\x1b" not in listing.stdout  # piped: no colour
    assert any(row.startswith(job_id) and "succeeded" in row and "libc" in row for row in rows)
    assert rows[-1].endswith("job(s)")
    filtered = json.loads(run("--json", "list", "--state", "succeeded", "--package", "libc").stdout)
    assert job_id in [j["job_id"] for j in filtered["jobs"]]
    assert all(j["state"] == "succeeded" for j in filtered["jobs"])
    status = run("status", job_id, "--log")
    assert status.returncode == 0 and "succeeded" in status.stdout
    assert status.stdout.splitlines()[0].split() == ["job", job_id]
    assert "| already installed: libc" in status.stdout
    assert json.loads(run("--json", "status", job_id).stdout)["job_id"] == job_id
    for command in ("status", "follow", "cancel", "remove"):
        unknown = run(command, "no-such-job")
        assert unknown.returncode == 1 and "unknown_job" in unknown.stderr, command


def test_cancel_remove_follow(run, jobd, hung):
    busy = run("remove", hung)
    assert busy.returncode == 1 and "job_active" in busy.stderr
    follower = subprocess.Popen([sys.executable, "-m", "pineapple.cli.main", "--socket", str(jobd.socket),
                                 "follow", hung], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: _stats(jobd)["connections"] >= 2, what="the follower to connect")
    cancelled = run("cancel", hung)
    assert cancelled.returncode == 0 and f"cancel requested for {hung}" in cancelled.stdout
    out, err = follower.communicate(timeout=DEADLINE)
    assert follower.returncode == 1  # the followed job did not succeed
    assert "cancelled" in out
    again = run("cancel", hung)
    assert again.returncode == 0 and "nothing to cancel" in again.stdout
    finished = run("follow", hung)  # an ended job: printed at once
    assert finished.returncode == 1 and "cancelled" in finished.stdout
    removed = run("remove", hung)
    assert removed.returncode == 0 and f"removed {hung}" in removed.stdout
    assert run("status", hung).returncode == 1


def test_installed_types_prune(run):
    run("install", "tool-a", "--wait")
    present = run("installed", "tool-a", "libc")
    assert present.returncode == 0 and "tool-a" in present.stdout and "1.0-1" in present.stdout
    absent = run("installed", "tool-a", "not-there")
    assert absent.returncode == 1 and "not-there" in absent.stdout
    types = run("types")
    assert types.returncode == 0 and "install:" in types.stdout and "packages:" in types.stdout
    pruned = run("prune")
    assert pruned.returncode == 0 and "finished job(s)" in pruned.stdout


def _stats(jobd) -> dict:
    with Line(jobd.socket) as line:
        return line.payload({"action": "stats"})
