"""A new user's first hour (issue 16): the README's demo, run as it says,
through a real pseudo-terminal, against the daemon `make run` starts
(``python -m devtools.devrun``), plus the messages a user meets when
something goes wrong.

The README's demo lines are read from README.md, not copied here."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pineapple.api.client import JobClient
from tests.api.helpers import DEADLINE, ping_ok, submit, wait_complete, wait_state, wait_until
from tests.cli.conftest import HANG
from tests.cli.terminal import CLI, Terminal, cli_env

ROOT = Path(__file__).resolve().parents[2]
BAR = re.compile(r"\r\x1b\[K\[([#.]{30})\] +(\d+)%")


# ------------------------------------------------------------------ the demo
def readme_demo_lines() -> list[str]:
    """The shell lines of README.md's demo block (the one that installs tcpdump), comments dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    demo = next(block for block in blocks if "pineapple-jobs install tcpdump" in block)
    return [line.split("  #")[0].strip() for line in demo.splitlines() if line.strip()]


def cli_args(line: str) -> list[str] | None:
    """The arguments of a README line that runs pineapple-jobs (None for other lines)."""
    words = shlex.split(line)
    return words[1:] if words and words[0].endswith("pineapple-jobs") else None


class Demo:
    """`make run`'s daemon in a fresh directory, its banner and log."""

    def __init__(self) -> None:
        # AF_UNIX paths are at most 108 bytes: keep the run dir short.
        self.dir = Path(tempfile.mkdtemp(prefix="pj-demo-", dir="/tmp"))
        self.socket = self.dir / "run" / "jobd.sock"
        self.log_path = self.dir / "devrun.log"
        self.log = open(self.log_path, "wb")
        env = {key: value for key, value in os.environ.items() if not key.startswith("OPKG_STANDIN_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.devrun", "--dir", str(self.dir / "run")],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: self._ready(), timeout=DEADLINE * 2, interval=0.05, what="the demo daemon")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"devrun exited {self.proc.returncode}:\n{self.text()}")
        try:
            return self.socket.exists() and ping_ok(self.socket)
        except OSError:
            return False

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C in make run's terminal
            try:
                self.proc.wait(DEADLINE * 2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(DEADLINE)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


@pytest.fixture(scope="module")
def demo():
    instance = Demo()
    yield instance
    instance.close()


def run_in_terminal(demo: Demo, args: list[str]) -> tuple[int, str]:
    rc, term = run_terminal(demo, args)
    return rc, term.text


def run_terminal(demo: Demo, args: list[str]) -> tuple[int, Terminal]:
    with Terminal([*CLI, *args], env=cli_env(demo.socket)) as term:
        return term.wait(), term


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI on a pty, as a user types it: exit code and what the screen shows."""
    with Terminal([*CLI, *args], env=env) as term:
        return term.wait(), term.text.replace("\r\n", "\n")


def test_the_banner_prints_the_readmes_demo_lines(demo):
    banner = demo.text()
    for line in readme_demo_lines():
        args = cli_args(line)
        if args is not None:
            assert f"pineapple-jobs {' '.join(args)}" in banner, (line, banner)
        elif line.startswith("export PINEAPPLE_JOBD_SOCKET="):
            assert f"export PINEAPPLE_JOBD_SOCKET={demo.socket}" in banner
    assert "Stop with Ctrl-C." in banner


def test_the_readmes_demo_as_a_user_sees_it(demo):
    lines = [cli_args(line) for line in readme_demo_lines()]
    demo_runs = [args for args in lines if args is not None]
    assert demo_runs[:3] == [["install", "tcpdump", "--wait"], ["install", "mdk4", "--wait"], ["list"]]

    rc, term = run_terminal(demo, demo_runs[0])  # "a live progress bar"
    text = term.text
    assert rc == 0, text
    summary = text.index("install  \x1b[32msucceeded")  # the summary line, state in green
    bars = BAR.findall(text[:summary])
    assert len(bars) >= 2, text  # the bar is drawn, and drawn again, before the summary
    assert len({percent for _, percent in bars}) >= 2, bars  # ...and it moves
    # ...at a pace a person can see: two downloads of 1.5 s (devrun's default) lie between
    # the first bar and the summary. A lower bound: a busy machine only makes it longer.
    shown_for = term.time_of(summary) - term.time_of(BAR.search(text).start())
    assert shown_for >= 2.5, shown_for
    assert "downloading tcpdump" in text and "result: installed tcpdump; with dependencies libpcap1" in text

    rc, text = run_in_terminal(demo, demo_runs[1])  # "fails: its postinst exits 3; rolled back"
    assert rc == 1, text
    assert "error (script_failed)" in text and 'postinst script returned status 3' in text
    assert "Rolled back: mdk4" in text and "rolled back mdk4" in text
    assert "progress:" not in text.split("install  \x1b[1;31mfailed")[1]  # no "99% removing mdk4" in the summary

    rc, text = run_in_terminal(demo, demo_runs[2])
    assert rc == 0, text
    rows = [line for line in text.splitlines() if "install" in line]
    assert any("tcpdump" in row and "succeeded" in row for row in rows), text
    assert any("mdk4" in row and "failed" in row and "script_failed" in row for row in rows), text
    assert "\x1b[32msucceeded\x1b[0m" in text and "\x1b[1;31mfailed\x1b[0m" in text  # coloured on a terminal


def test_ctrl_c_while_waiting_says_the_job_continues(demo):
    with Terminal([*CLI, "install", "nmap", "--wait"], env=cli_env(demo.socket)) as term:
        term.read_until(lambda text: BAR.search(text) and "downloading" in text, what="the bar")
        term.type(b"\x03")  # Ctrl-C, typed into the terminal
        rc = term.wait()
    job_id = re.search(r"job ([0-9a-f-]{36})", term.text).group(1)
    assert rc == 130, term.text
    assert f"job {job_id} continues; `pineapple-jobs cancel {job_id}` stops it" in term.text
    assert "Traceback" not in term.text
    assert wait_complete(demo.socket, job_id, timeout=60)["state"] == "succeeded"  # it did go on


def test_an_unknown_package_says_so_and_hints(demo):
    rc, text = run_in_terminal(demo, ["install", "tcpdumb", "--wait"])
    assert rc == 1, text
    after = text.split("install  \x1b[1;31mfailed")[1]
    assert "error (unknown_package): Unknown package 'tcpdumb'" in after
    assert "hint: check the package name" in after and "`pineapple-jobs update`" in after
    assert "installing tcpdumb" not in after  # the odd "0% installing tcpdumb" is gone from the summary
    listing = subprocess.run([*CLI, "list", "--package", "tcpdumb"], capture_output=True, text=True,
                             env=cli_env(demo.socket), timeout=DEADLINE)
    row = next(line for line in listing.stdout.splitlines() if "tcpdumb" in line)
    assert row.split()[2:4] == ["failed", "-"] and row.endswith("unknown_package")


def test_a_second_make_run_refuses_before_its_banner(demo):
    result = subprocess.run([sys.executable, "-m", "devtools.devrun", "--dir", str(demo.dir / "run")],
                            cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE * 2)
    assert result.returncode == 1
    assert f"already running on {demo.socket} (pid {demo.proc.pid})" in result.stderr
    assert "Try, in another terminal" not in result.stdout and "stopped" not in result.stderr


def test_global_flags_after_the_command(demo):
    env = cli_env(demo.socket)
    rc, text = on_a_terminal(["list", "--json"], env)
    assert rc == 0, text
    assert set(json.loads(text)) >= {"jobs", "total"}  # on a terminal too: JSON, no colour codes
    listing = subprocess.run([*CLI, "list", "--json"], capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert listing.returncode == 0, listing.stderr
    assert set(json.loads(listing.stdout)) >= {"jobs", "total"}
    before = subprocess.run([*CLI, "--json", "--socket", "/nonexistent.sock", "list", "--socket", str(demo.socket)],
                            capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert before.returncode == 0 and json.loads(before.stdout)["total"] >= 1  # the later --socket wins


# --------------------------------------------- messages with a hung download
@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons(env={"OPKG_STANDIN_HANG": f"download:{HANG}"})


def test_follow_shows_the_current_state_at_once(jobd):
    job_id = submit(jobd.socket, job="install", packages=[HANG])["job_id"]
    try:
        wait_until(lambda: "downloading" in _progress_message(jobd.socket, job_id), what="the download to hang")
        with Terminal([*CLI, "follow", job_id], env=cli_env(jobd.socket)) as term:
            # No progress event comes while the download hangs: what shows is the state it had.
            text = term.read_until(lambda t: BAR.search(t.rsplit("  | ", 1)[-1]), what="the bar after the log")
            assert f"downloading {HANG}" in text.rsplit("  | ", 1)[-1]
            term.type(b"\x03")
            assert term.wait() == 130
            assert f"job {job_id} continues" in term.text
        with Terminal([*CLI, "log", job_id, "--follow"], env=cli_env(jobd.socket)) as term:
            term.read_until(lambda t: "Downloading" in t, what="the log so far")
            term.type(b"\x03")
            assert term.wait() == 130
            assert f"job {job_id} continues; `pineapple-jobs cancel {job_id}` stops it" in term.text
            assert "Traceback" not in term.text
    finally:
        with JobClient(str(jobd.socket)) as client:
            client.cancel(job_id)
        wait_complete(jobd.socket, job_id)


def _progress_message(path, job_id: str) -> str:
    return wait_state(path, job_id, "running")["progress"]["message"]


# ------------------------------------------------------ nothing to talk to
def test_no_daemon_says_what_to_check(tmp_path):
    env = cli_env(tmp_path / "none.sock")
    rc, text = on_a_terminal(["ping"], env)
    assert rc == 3, text
    assert f"cannot connect to pineapple-jobd at {tmp_path / 'none.sock'}: No such file or directory" in text
    assert "Is pineapple-jobd running? Start it with `make run`" in text
    assert "came from $PINEAPPLE_JOBD_SOCKET" in text
    assert "Traceback" not in text
    rc, text = on_a_terminal(["ping", "--socket", str(tmp_path / "x.sock")], env)
    assert rc == 3 and "came from --socket" in text, text


def test_fleet_without_a_broker_names_it(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rc, text = on_a_terminal(["fleet", "install", "tcpdump", "--broker", "127.0.0.1", "--port", str(port), "--json"],
                             cli_env(None))
    assert rc == 3, text  # --json after the action is accepted (not a usage error)
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}: Connection refused" in text
    assert "Traceback" not in text


# ------------------------------------------------------------- schedules
def test_schedule_messages(jobd):
    env = cli_env(jobd.socket)

    def schedule(*args: str) -> tuple[int, str]:
        return on_a_terminal(["schedule", *args], env)

    rc, text = schedule("add", "tools", "--job", "install", "--daily", "03:30")
    assert rc == 2, text
    assert "missing parameter 'packages': give it with --package PKG" in text
    rc, text = schedule("add", "weekly", "--job", "update", "--weekly", "mon 04:00")  # the UCI form
    assert rc == 0, text
    assert "every monday at 04:00" in text
    assert schedule("add", "weekly2", "--job", "update", "--weekly", "mon@04:00")[0] == 0
    rc, text = schedule("add", "once", "--job", "update", "--at", "2020-01-01T04:00", "--timezone", "UTC")
    assert rc == 2, text
    assert "it would never run: 2020-01-01T04:00:00+00:00 is in the past" in text
    assert "once" not in schedule("list")[1]  # refused, not kept as "finished"
    for name in ("weekly", "weekly2"):
        assert schedule("remove", name)[0] == 0
