"""The opkg helper process (pineapple/opkg/helper.py): the daemon's process
never imports sh; one helper serves runs that follow each other and exits
when they stop; a helper that dies mid-run is an error, not a hang; a
daemon that dies leaves opkg to finish. (Runs behaving like the in-process
runner: test_runner.py runs its tests against both.)"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from pineapple import errors
from pineapple.errors import JobError
from pineapple.jobs import JobManager
from pineapple.opkg.helper import HelperRunner
from pineapple.opkg.jobs import InstallDependenciesJob
from pineapple.opkg.runner import OpkgRunner, RunControl, RunnerSettings
from pineapple.opkg.system import OpkgSystem, is_lock_busy
from tests.opkg.helpers import REPO, STANDIN_PATH, alive, make_system, proc_stat, run_job, wait_until


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


# ------------------------------------------------- an install's plan, in the helper
@pytest.fixture
def list_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every parse of the feed lists in this (the daemon's) process."""
    from pineapple.opkg import status, system

    parses: list[str] = []
    parse = status.available_packages

    def spy(conf):
        parses.append(conf.lists_path())
        return parse(conf)

    for module in (status, system):  # system.py has its own name for it
        monkeypatch.setattr(module, "available_packages", spy)
    return parses


@pytest.fixture
def helper_plans(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """(names, answer, helper pid) of every plan a HelperRunner made."""
    plans: list[tuple] = []
    plan_install = HelperRunner.plan_install

    def record(runner, names, satisfied):
        answer = plan_install(runner, names, satisfied)
        plans.append((list(names), answer, runner.helper_pid))
        return answer

    monkeypatch.setattr(HelperRunner, "plan_install", record)
    return plans


class RecordingInstall(InstallDependenciesJob):
    """Keeps every intent it journals (what crash recovery would be handed)."""

    __slots__ = ("intents",)

    def save_intent(self, intent: dict | None) -> bool:
        self.intents.append(intent)
        return super().save_intent(intent)


def install_job(system: OpkgSystem, packages: list[str]) -> RecordingInstall:
    """An install job run through a JobManager, as the daemon runs it."""
    manager = JobManager("test-helper-plan", workers=1)
    job = RecordingInstall(system, packages)
    job.intents = []
    try:
        return run_job(manager, job)
    finally:
        manager.shutdown(wait=True, timeout=15)


def absent_before(job: RecordingInstall) -> list[list[str]]:
    """absent_before of each install run's journalled intents."""
    return [intent["absent_before"] for intent in job.intents if intent and intent.get("phase") == "install"]


def test_an_install_plans_in_the_helper_and_the_daemon_never_parses_the_lists(sandbox, calls, list_parses,
                                                                             helper_plans):
    system = make_system(sandbox)
    assert isinstance(system.runner, HelperRunner)
    job = install_job(system, ["myapp"])
    assert job.state == "succeeded", job.error
    assert job.result["installed"] == ["myapp"] and job.result["dependencies"] == ["mylib"]
    assert list_parses == []  # neither the space check nor the plan parsed the lists here
    [(names, (packages, needed_kb), helper_pid)] = helper_plans  # one plan for both
    assert names == ["myapp"] and sorted(packages) == ["myapp", "mylib"]  # libc is installed
    assert isinstance(needed_kb, int)  # the space check had its answer, and passed
    assert helper_pid is not None and helper_pid != os.getpid()
    assert absent_before(job) == [["myapp", "mylib"]] * 2  # what crash recovery may undo (before, at spawn)
    assert calls.commands() == ["install"]
    # The answer in-process (what an OpkgSystem with a plain OpkgRunner computes) is the same:
    assert make_system(sandbox).plan_in_process(["myapp"], ["libc"]) == (packages, needed_kb)
    assert len(list_parses) == 1
    system.runner.close()


def test_the_stale_lists_retry_plans_again_in_the_helper(sandbox, calls, list_parses, helper_plans):
    sandbox.delete_from_feed("tool-a")  # its file: the feed's index still lists it
    job = install_job(make_system(sandbox), ["tool-a"])
    assert job.error_code == errors.DOWNLOAD_FAILED
    assert calls.commands() == ["install", "update", "install"]
    # Before the first run, and after the update (the lists are new):
    assert [(names, answer) for names, answer, _ in helper_plans] == [(["tool-a"], (["tool-a"], 1))] * 2
    assert absent_before(job) == [["tool-a"]] * 4 and list_parses == []


def test_without_a_helper_the_plan_is_made_in_process(sandbox, calls, list_parses):
    system = make_system(sandbox)
    system.runner = OpkgRunner(system.settings, is_lock_busy)
    plan = system.plan_install(["myapp", "bigpkg"])
    assert plan.packages is not None and sorted(plan.packages) == ["bigpkg", "myapp", "mylib"]
    assert plan.needed_kb is not None and plan.needed_kb >= 4 * 1024**3
    assert system.plan_install(["broken"]) == (None, None)
    assert system.space_shortfall(["bigpkg"], "", plan)[0] == plan.needed_kb
    assert len(list_parses) == 2  # the two plans; space_shortfall reused the first


def test_the_helpers_plan_answers_as_in_process(sandbox, calls, list_parses, tmp_path):
    helper = make_helper(sandbox)
    try:
        inline = OpkgSystem(helper.settings)
        for names, satisfied in ((["myapp", "bigpkg"], ["libc"]), (["broken"], []), (["tool-a"], ["libc", "x"]),
                                 (["nosuchpkg"], [])):
            assert helper.plan_install(names, satisfied) == inline.plan_in_process(names, satisfied)
        parses = len(list_parses)
        assert parses == 4
        helper.settings.conf = str(tmp_path / "missing.conf")
        with pytest.raises(JobError) as caught:
            helper.plan_install(["myapp"], [])
        assert caught.value.code == errors.OPKG_FAILED and "cannot read opkg configuration" in str(caught.value)
        assert len(list_parses) == parses
    finally:
        helper.close()


def test_a_helper_that_dies_while_planning_fails_the_job_not_hangs_it(sandbox, calls, list_parses):
    list_file = pathlib.Path(make_system(sandbox).conf().list_file("base"))
    list_file.unlink()
    os.mkfifo(list_file)  # opening it for reading blocks: the helper is stuck in the parse
    system = make_system(sandbox)
    runner = system.runner
    assert isinstance(runner, HelperRunner)

    def kill_the_helper() -> None:
        wait_until(lambda: runner.helper_pid is not None, what="the helper to start")
        os.kill(runner.helper_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_helper)
    killer.start()
    try:
        job = install_job(system, ["myapp"])
    finally:
        killer.join(30)
    assert job.state == "failed" and job.error_code == errors.OPKG_FAILED
    assert "the opkg helper process ended while planning the install (killed by signal 9)" in job.error
    assert list_parses == [] and calls.entries() == []  # nothing was run, nothing changed
    assert "myapp" not in sandbox.installed()
    runner.close()
