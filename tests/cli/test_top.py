"""``pineapple-jobs top`` against a real daemon, on a real terminal and piped."""
from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from pineapple.api.client import JobClient
from pineapple.cli.top import ENTER, LEAVE
from tests.api.helpers import DEADLINE, submit, wait_complete, wait_until
from tests.cli.conftest import HANG
from tests.cli.terminal import CLI, Terminal, cli_env


@pytest.fixture
def hung(jobd):
    job_id = submit(jobd.socket, job="install", packages=[HANG])["job_id"]
    wait_until(lambda: _message(jobd, job_id).startswith("downloading"), what="the download to hang")
    yield job_id
    with JobClient(str(jobd.socket)) as client:
        client.cancel(job_id)
    wait_complete(jobd.socket, job_id)


def _message(jobd, job_id: str) -> str:
    with JobClient(str(jobd.socket)) as client:
        return client.poll(job_id)["progress"]["message"]


def _screen(text: str) -> str:
    """What the last redraw put on the screen."""
    return text.rsplit("\x1b[H", 1)[-1]


def test_top_on_a_terminal(jobd, hung):
    with Terminal([*CLI, "top"], env=cli_env(jobd.socket)) as term:
        term.read_until(lambda t: hung in _screen(t) and f"downloading {HANG}" in _screen(t), what="the running job")
        assert term.text.startswith(ENTER)  # the alternate screen, cursor hidden
        screen = _screen(term.text)
        row = next(line for line in screen.splitlines() if line.startswith(hung))
        assert "running" in row and "[" in row and "%" in row and HANG in row
        assert "1 running" in screen and "(Ctrl-C quits)" in screen
        held = submit(jobd.socket, job="install", packages=["tool-a"], hold=True)["job_id"]
        term.read_until(lambda t: held in _screen(t) and "1 held" in _screen(t), what="the held job to appear")
        with JobClient(str(jobd.socket)) as client:
            client.cancel(held)
        term.read_until(lambda t: "recently finished" in _screen(t) and held in _screen(t).split(
            "recently finished")[1], what="the cancelled job to move down")
        term.type(b"\x03")
        assert term.wait() == 0
        assert term.text.endswith(LEAVE)  # the terminal is given back as it was
        assert "Traceback" not in term.text


def test_top_piped_prints_changes(jobd, hung):
    proc = subprocess.Popen([*CLI, "top"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(jobd.socket))
    try:
        first = proc.stdout.readline()
        assert re.fullmatch(rf"{hung} install running +\d+% downloading {HANG}\n", first), first
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert "\x1b" not in first + out and "Traceback" not in err


def test_top_json_snapshots(jobd, hung):
    proc = subprocess.Popen([*CLI, "top", "--json", "--finished", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(jobd.socket))
    try:
        snapshot = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0
    assert snapshot["error"] is None and snapshot["finished"] == []
    assert [(j["job_id"], j["state"]) for j in snapshot["active"]] == [(hung, "running")]


def test_top_without_a_daemon_exits_3(tmp_path):
    result = subprocess.run([*CLI, "top"], capture_output=True, text=True, env=cli_env(tmp_path / "x.sock"),
                            timeout=DEADLINE)
    assert result.returncode == 3 and "Is pineapple-jobd running?" in result.stderr
