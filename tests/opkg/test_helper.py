"""The opkg helper process (pineapple/opkg/helper.py): the daemon's process
never imports sh; one helper serves runs that follow each other and exits
when they stop; a helper that dies mid-run is an error, not a hang; a
daemon that dies leaves opkg to finish. (Runs behaving like the in-process
runner: test_runner.py runs its tests against both.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pineapple import errors
from pineapple.errors import JobError
from pineapple.opkg.helper import HelperRunner
from pineapple.opkg.runner import RunControl, RunnerSettings
from pineapple.opkg.system import is_lock_busy
from tests.opkg.helpers import REPO, STANDIN_PATH, alive, proc_stat, wait_until


def make_helper(sb, linger: float = 30.0, **settings: object) -> HelperRunner:
    options: dict = {"binary": str(sb.opkg_path), "offline_root": str(sb.root), "conf": str(sb.conf),
                     "env_path": STANDIN_PATH, "lock_wait": 10.0, "timeout": 60.0, **settings}
    return HelperRunner(RunnerSettings(**options), is_lock_busy, linger=linger)


def gone(pid: int) -> bool:
    """Exited and reaped (not even a zombie left)."""
    return proc_stat(pid) is None


def test_the_daemons_process_never_imports_sh(sandbox, calls):
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from pineapple.opkg.runner import RunControl, RunnerSettings
        from pineapple.opkg.system import OpkgSystem
        system = OpkgSystem(RunnerSettings(binary={str(sandbox.opkg_path)!r}, offline_root={str(sandbox.root)!r},
                                           conf={str(sandbox.conf)!r}, env_path={STANDIN_PATH!r}))
        lines = []
        run, outcome = system.run(["install", "tool-a"], lines.append, RunControl())
        system.runner.close()
        print(json.dumps({{"rc": run.rc, "lines": lines, "sh": [m for m in sys.modules if m == "sh"]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["rc"] == 0 and any("tool-a" in line for line in answer["lines"])
    assert answer["sh"] == []  # opkg ran through sh, in the helper
    assert "tool-a" in sandbox.installed()


def test_one_helper_serves_runs_that_follow_and_exits_after_them(sandbox, calls):
    runner = make_helper(sandbox, linger=0.3)
    runner.run(["list-installed"], lambda line: None, RunControl())
    pid = runner.helper_pid
    assert pid is not None and alive(pid)
    runner.settings.binary = "no-such-opkg"  # settings go with each run
    with pytest.raises(JobError) as caught:  # an error answer keeps the helper
        runner.run(["list-installed"], lambda line: None, RunControl())
    assert caught.value.code == errors.OPKG_NOT_FOUND
    runner.settings.binary = str(sandbox.opkg_path)
    runner.run(["list-installed"], lambda line: None, RunControl())
    assert runner.helper_pid == pid
    wait_until(lambda: runner.helper_pid is None and gone(pid), what="the helper to exit and be reaped")
    assert calls.commands() == ["list-installed", "list-installed"]
    runner.run(["list-installed"], lambda line: None, RunControl())  # a new one on demand
    assert runner.helper_pid not in (None, pid)
    runner.close()


def test_a_helper_that_dies_mid_run_is_an_error_and_the_next_run_gets_a_new_one(sandbox, calls, monkeypatch):
    monkeypatch.setenv("OPKG_STANDIN_HANG", "download")
    runner = make_helper(sandbox)
    control = RunControl()
    lines: list[str] = []

    def kill_helper_once_downloading(line: str) -> None:
        lines.append(line)
        if line.startswith("Downloading "):
            os.kill(runner.helper_pid, signal.SIGKILL)
            os.killpg(calls.pid_of("install"), signal.SIGKILL)  # and its orphaned opkg, for this test

    with pytest.raises(JobError) as caught:
        runner.run(["install", "tool-a"], kill_helper_once_downloading, control)
    assert caught.value.code == errors.OPKG_FAILED
    assert "helper process ended during the run (killed by signal 9)" in str(caught.value)
    monkeypatch.delenv("OPKG_STANDIN_HANG")
    assert runner.run(["list-installed"], lambda line: None, RunControl()).rc == 0
    runner.close()


def test_a_dying_daemon_lets_opkg_finish(sandbox, calls, tmp_path):
    """The daemon's end of the helper's stdin closes: the install in progress
    completes, then the helper exits."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from pineapple.opkg.helper import HelperRunner
        from pineapple.opkg.runner import RunControl, RunnerSettings
        from pineapple.opkg.system import is_lock_busy
        settings = RunnerSettings(binary={str(sandbox.opkg_path)!r}, offline_root={str(sandbox.root)!r},
                                  conf={str(sandbox.conf)!r}, env_path={STANDIN_PATH!r})
        runner = HelperRunner(settings, is_lock_busy)
        def on_line(line):
            if line.startswith("Downloading "):
                print(runner.helper_pid, flush=True)
                os._exit(9)  # the daemon dies
        runner.run(["install", "tool-a"], on_line, RunControl())
    """)
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO), OPKG_STANDIN_DOWNLOAD_DELAY="1"))
    try:
        helper_pid = int(daemon.stdout.readline())
        assert daemon.wait(30) == 9
        wait_until(lambda: not alive(helper_pid), timeout=30, what="the helper to exit")
        assert "tool-a" in sandbox.installed()
        assert not alive(calls.pid_of("install"))
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_is_lock_busy_must_be_importable_by_name():
    with pytest.raises(ValueError, match="module-level function"):
        HelperRunner(RunnerSettings(), lambda run: False)
