"""The opkg runner against the real stand-in: argv building (never a shell
string), live output through a pty, stopping only our own process group,
lock-wait backoff, timeouts and a missing binary."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from pineapple import errors
from pineapple.errors import JobError
from pineapple.opkg import runner as runner_module
from pineapple.opkg.helper import HelperRunner
from pineapple.opkg.runner import OpkgRun, OpkgRunner, RunControl, RunnerSettings
from pineapple.opkg.system import is_lock_busy
from tests.fixtures.opkgs import opkg_under_test
from tests.opkg.helpers import (
    STANDIN_PATH,
    alive,
    end_process,
    lock_holder,
    proc_stat,
    release_lock,
    wait_until,
)

RUN_WAIT = 30.0


def make_runner(sb: Sandbox, runner_class=OpkgRunner, **settings: object) -> OpkgRunner:
    options: dict = {"binary": opkg_under_test(sb), "offline_root": str(sb.root), "conf": str(sb.conf),
                     "env_path": STANDIN_PATH, "lock_wait": 10.0, "timeout": 60.0, **settings}
    return runner_class(RunnerSettings(**options), is_lock_busy)


@pytest.fixture(params=[OpkgRunner, HelperRunner], ids=["in-process", "helper"])
def runner_class(request):
    """Both runners behave alike: in the daemon's process, and in the helper
    process the daemon uses (pineapple/opkg/helper.py)."""
    made: list[OpkgRunner] = []

    def build(*args: object) -> OpkgRunner:
        made.append(request.param(*args))
        return made[-1]

    yield build
    for runner in made:
        if isinstance(runner, HelperRunner):
            runner.close()


class Background:
    """runner.run() on a thread, with the lines it streamed."""

    def __init__(self, runner: OpkgRunner, args: list[str], control: RunControl) -> None:
        self.lines: list[str] = []
        self.waits: list[float] = []
        self.run: OpkgRun | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(runner, args, control), daemon=True)
        self._thread.start()

    def _main(self, runner: OpkgRunner, args: list[str], control: RunControl) -> None:
        try:
            self.run = runner.run(args, self.lines.append, control, self.waits.append)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc

    def join(self, timeout: float = RUN_WAIT) -> OpkgRun:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "runner.run() did not return in time"
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return self.run


# ------------------------------------------------------------------ argv
def test_argv_puts_root_conf_and_extra_args_before_the_command():
    runner = OpkgRunner(RunnerSettings(offline_root="/mnt/root", conf="/etc/my opkg.conf",
                                       extra_args=["--force-space", "-V2"]), is_lock_busy)
    assert runner.argv(["-d", "sd", "install", "myapp"]) == [
        "-o", "/mnt/root", "-f", "/etc/my opkg.conf", "--force-space", "-V2", "-d", "sd", "install", "myapp"]


def test_argv_without_root_or_conf_is_just_the_arguments():
    runner = OpkgRunner(RunnerSettings(), is_lock_busy)
    assert runner.argv(["update"]) == ["update"]
    runner.settings.extra_args.append("--nodeps")
    assert runner.argv(["install", "x"]) == ["--nodeps", "install", "x"]
    assert RunnerSettings().extra_args == []  # no list shared between settings


def test_arguments_reach_opkg_verbatim_never_through_a_shell(sandbox, calls, tmp_path, runner_class):
    runner = make_runner(sandbox, runner_class)
    marker = tmp_path / "pwned"
    hostile = [f"x; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", "a b", "*", "'"]
    run = runner.run(["status", *hostile], lambda line: None, RunControl())
    assert run.rc == 0  # status of unknown packages prints nothing and returns 0
    assert calls.argvs() == [[runner.settings.binary, *runner.argv(["status", *hostile])]]
    assert run.argv == calls.argvs()[0]
    assert not marker.exists()


def test_the_environment_is_clean_and_passes_the_standin_knobs(sandbox, calls, monkeypatch):
    monkeypatch.setenv("OPKG_STANDIN_FREE_KB", "0")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    env = make_runner(sandbox)._env()
    assert env["LC_ALL"] == "C" and "LANG" not in env
    assert env["PATH"] == STANDIN_PATH
    assert env["OPKG_STANDIN_FREE_KB"] == "0" and env["OPKG_STANDIN_CALL_LOG"] == str(calls.path)


# ------------------------------------------------- live output and stopping
SLOW_POSTINST = """#!/bin/sh
echo $$ > {pidfile}
exec sleep 60
"""


def test_live_output_and_stop_kills_only_our_process_group(sandbox, calls, tmp_path, runner_class):
    # A package whose postinst runs a long child: opkg's own child, in its group.
    pidfile = tmp_path / "postinst.pid"
    sandbox.add_package(PackageSpec("slowpkg", scripts={"postinst": SLOW_POSTINST.format(pidfile=pidfile)}))
    sandbox.run("update", env=sandbox.env(call_log=None), check=True)
    runner = make_runner(sandbox, runner_class, extra_args=["--force-postinstall"])
    # Unrelated processes: one in the test's own process group, one in its own session.
    sibling = subprocess.Popen(["sleep", "60"])
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    control = RunControl()
    try:
        background = Background(runner, ["install", "slowpkg"], control)
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the postinst child")
        # Lines arrive while opkg is still running (a pty, not a block-buffered pipe).
        wait_until(lambda: "Configuring slowpkg." in background.lines, what="live output")
        assert "Installing slowpkg (1.0-1) to root..." in background.lines
        assert background.run is None  # opkg is still running (in its postinst)
        opkg_pid = calls.pid_of("install")
        child_pid = int(pidfile.read_text())
        assert proc_stat(opkg_pid)[1] == opkg_pid  # opkg leads its own group
        assert proc_stat(child_pid)[1] == opkg_pid  # ... and its child is in it
        assert opkg_pid != os.getpgid(0)

        control.stop()
        run = background.join()
        # SIGINT did it: opkg wrote its status database and exited 130
        assert run.rc == 130 and run.stdout[-1] == "Interrupted. Writing out status database."
        assert control.stopped and control.reason == "cancelled"
        wait_until(lambda: not alive(child_pid), what="the postinst child to die")
        assert not alive(opkg_pid)
        assert alive(sibling.pid) and alive(stranger.pid)
        with pytest.raises(JobError) as caught:  # a stopped control refuses later runs
            runner.run(["list-installed"], lambda line: None, control)
        assert caught.value.code == errors.CANCELLED
        assert calls.commands() == ["install"]
    finally:
        end_process(sibling)
        end_process(stranger)


STUBBORN_POSTINST = """#!/bin/sh
trap '' INT TERM
echo $$ > {pidfile}
exec sleep 60
"""


def test_stop_escalates_to_sigkill_for_the_whole_group(sandbox, calls, tmp_path, monkeypatch):
    # opkg ends on SIGINT at once, but its postinst child ignores SIGINT and
    # SIGTERM: after the graces the rest of the group gets SIGKILL all the same.
    # No SIGINT grace to sit out once opkg itself has exited: a grace the
    # test could never wait for shows that.
    monkeypatch.setattr(runner_module, "INT_GRACE", 3600.0)
    monkeypatch.setattr(runner_module, "KILL_GRACE", 0.3)
    pidfile = tmp_path / "postinst.pid"
    sandbox.add_package(PackageSpec("stubborn", scripts={"postinst": STUBBORN_POSTINST.format(pidfile=pidfile)}))
    sandbox.run("update", env=sandbox.env(call_log=None), check=True)
    control = RunControl()
    background = Background(make_runner(sandbox, extra_args=["--force-postinstall"]), ["install", "stubborn"],
                            control)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the postinst child")
    child_pid = int(pidfile.read_text())
    try:
        control.stop()
        assert background.join().rc != 0
        assert not alive(calls.pid_of("install"))
        wait_until(lambda: not alive(child_pid), timeout=5, what="SIGKILL of the group")
    finally:
        if alive(child_pid):  # only if the test failed: do not leave it behind
            os.kill(child_pid, signal.SIGKILL)


GROUP_SCRIPTS = {
    "SIGINT": "echo ready; exec sleep 60",
    "SIGTERM": "trap '' INT; echo ready; exec sleep 60",  # an ignored signal stays ignored across exec
    "SIGKILL": "trap '' INT TERM; echo ready; exec sleep 60",
}


@pytest.mark.parametrize("last", sorted(GROUP_SCRIPTS))
def test_stop_process_group_escalates_only_as_far_as_needed(last):
    # What the fault-safety helper does to an opkg left over from a crash:
    # any group, given only its id (here a child, reaped as it dies).
    proc = subprocess.Popen(["sh", "-c", GROUP_SCRIPTS[last]], stdout=subprocess.PIPE,
                            start_new_session=True)
    reaper = threading.Thread(target=proc.wait, daemon=True)
    try:
        assert proc.stdout.readline() == b"ready\n"
        reaper.start()
        assert runner_module.group_exists(proc.pid)
        assert runner_module.stop_process_group(proc.pid, int_grace=0.5, term_grace=0.5) == last
        reaper.join(10)
        assert proc.returncode == -getattr(signal, last)
        wait_until(lambda: not runner_module.group_exists(proc.pid), what="the group to be gone")
        assert runner_module.stop_process_group(proc.pid) is None  # nothing left to stop
    finally:
        end_process(proc)


def test_on_spawn_gets_the_pid_and_group_before_the_wait(sandbox, calls, runner_class):
    seen: list[tuple[int, int, object]] = []
    run = make_runner(sandbox, runner_class).run(["list-installed"], lambda line: None, RunControl(), None,
                                   lambda pid, pgid: seen.append((pid, pgid, proc_stat(pid))))
    assert run.rc == 0
    pid = calls.pid_of("list-installed")
    # Called before the process was reaped: it still existed (maybe as a zombie).
    assert seen == [(pid, pid, seen[0][2])] and seen[0][2] is not None and seen[0][2][1] == pid


def test_a_failing_on_spawn_stops_and_reaps_its_opkg(sandbox, calls, monkeypatch):
    monkeypatch.setenv("OPKG_STANDIN_HANG", "lock")
    spawned: list[int] = []

    def broken(pid: int, pgid: int) -> None:
        spawned.append(pid)
        raise RuntimeError("journal full")

    with pytest.raises(RuntimeError):
        make_runner(sandbox).run(["list-installed"], lambda line: None, RunControl(), None, broken)
    assert len(spawned) == 1
    assert proc_stat(spawned[0]) is None  # stopped and reaped, not left running or a zombie


# An opkg that, as real opkg does, prints its error block and exits at once.
FAST_OPKG = r"""#!/bin/sh
echo "No packages removed."
printf 'Collected errors:
 * print_dependents_warning: Package mylib is depended upon by packages:
' >&2
printf ' * print_dependents_warning: 	myapp
' >&2
exit 255
"""
FAST_RUNS = int(os.environ.get("PINEAPPLE_TEST_FAST_RUNS", "200"))


def test_no_outcome_before_both_streams_are_drained(tmp_path):
    binary = tmp_path / "opkg"
    binary.write_text(FAST_OPKG)
    binary.chmod(0o755)
    runner = OpkgRunner(RunnerSettings(binary=str(binary), lock_wait=0, env_path=os.defpath), is_lock_busy)
    lost = []
    for attempt in range(FAST_RUNS):
        run = runner.run(["remove", "mylib"], lambda line: None, RunControl())
        if run.rc != 255 or "depended upon by packages" not in run.stderr or "\tmyapp" not in run.stderr \
                or run.stdout != ["No packages removed."]:
            lost.append((attempt, run.rc, run.stdout, run.stderr))
    assert not lost, f"{len(lost)} of {FAST_RUNS} runs lost output, e.g. {lost[0]}"


LATE_LINE_OPKG = """#!/bin/sh
echo "Installing myapp (1.0) to root..."
echo "Downloading myapp"
sleep 0.3
echo "Configuring myapp."
echo "a last word on stderr" >&2
exit 0
"""


def test_the_last_lines_are_kept_when_their_reader_is_slow(tmp_path):
    """What opkg printed right before it exited is read even when handling
    the lines before it takes longer than sh's 2 s read-after-exit window
    (a busy device): the streams are read to the end, not for 2 s."""
    binary = tmp_path / "opkg"
    binary.write_text(LATE_LINE_OPKG)
    binary.chmod(0o755)
    runner = OpkgRunner(RunnerSettings(binary=str(binary), lock_wait=0, env_path=os.defpath), is_lock_busy)
    seen: list[str] = []

    def slow_sink(line: str) -> None:
        seen.append(line)
        if line.startswith("Downloading"):
            time.sleep(3.0)  # opkg prints its last line and exits meanwhile

    run = runner.run(["install", "myapp"], slow_sink, RunControl())
    assert run.rc == 0
    assert seen == run.stdout == ["Installing myapp (1.0) to root...", "Downloading myapp", "Configuring myapp."]
    assert run.stderr == "a last word on stderr\n"


def test_a_descendant_holding_the_streams_ends_the_run_soon_after_opkg(tmp_path):
    """A maintainer script's background child that keeps stdout open does
    not keep the run going: once opkg exited and the streams are silent for
    QUIET_AFTER_EXIT seconds, the run ends (everything opkg printed kept)."""
    binary = tmp_path / "opkg"
    pidfile = tmp_path / "child.pid"
    binary.write_text(f"#!/bin/sh\necho started\nsleep 30 &\necho $! > {pidfile}\necho done\nexit 0\n")
    binary.chmod(0o755)
    runner = OpkgRunner(RunnerSettings(binary=str(binary), lock_wait=0, env_path=os.defpath), is_lock_busy)
    control = RunControl()
    finished = threading.Event()
    result: list[OpkgRun] = []
    worker = threading.Thread(target=lambda: (result.append(runner.run(["install", "x"], lambda line: None,
                                                                       control)), finished.set()), daemon=True)
    worker.start()
    try:
        assert finished.wait(20), "the run waited for the background child"
        assert result[0].rc == 0 and result[0].stdout == ["started", "done"]
    finally:
        if pidfile.exists():  # the background child this test's script started, by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        worker.join(5)


def test_stop_before_the_run_spawns_nothing(sandbox, calls, runner_class):
    control = RunControl()
    control.stop("timeout")
    control.stop("cancelled")  # the first reason sticks
    with pytest.raises(JobError) as caught:
        make_runner(sandbox, runner_class).run(["update"], lambda line: None, control)
    assert caught.value.code == errors.TIMEOUT
    assert calls.entries() == []


def test_run_timeout_kills_the_process(sandbox, calls, monkeypatch, runner_class):
    monkeypatch.setenv("OPKG_STANDIN_HANG", "download")
    control = RunControl()
    lines: list[str] = []
    with pytest.raises(JobError) as caught:
        make_runner(sandbox, runner_class, timeout=0.5).run(["install", "tool-a"], lines.append, control)
    assert caught.value.code == errors.TIMEOUT
    assert control.reason == "timeout"
    wait_until(lambda: not alive(calls.pid_of("install")), what="opkg to die")
    assert any(line.startswith("Downloading ") for line in lines)


def test_run_collects_stdout_stderr_and_rc(sandbox, calls, runner_class):
    lines: list[str] = []
    run = make_runner(sandbox, runner_class).run(["install", "nosuchpkg"], lines.append, RunControl())
    assert run.rc == 255
    assert run.stdout == lines == ["Unknown package 'nosuchpkg'."]  # no \r from the pty
    assert run.stderr == "Collected errors:\n * opkg_install_cmd: Cannot install package nosuchpkg.\n"
    assert run.lock_waits == 0 and run.seconds > 0


# ------------------------------------------------------------ the lock
def test_lock_busy_backs_off_then_gives_up(sandbox, calls, runner_class):
    runner = make_runner(sandbox, runner_class, lock_wait=1.0)
    with lock_holder(sandbox):
        started = time.monotonic()
        run = runner.run(["install", "tool-a"], lambda line: None, RunControl(), None)
        elapsed = time.monotonic() - started
        assert os.path.exists(sandbox.lock_path)
    assert run.rc == 255 and is_lock_busy(run)
    assert "Could not lock" in run.stderr
    assert elapsed >= 1.0  # gave up only after lock_wait (how many tries fit depends on the machine)
    assert run.lock_waits >= 1
    assert calls.commands() == ["install"] * (run.lock_waits + 1)


def test_lock_wait_retries_until_released(sandbox, calls, runner_class):
    runner = make_runner(sandbox, runner_class, lock_wait=30)
    with lock_holder(sandbox) as holder:
        background = Background(runner, ["install", "tool-a"], RunControl())
        wait_until(lambda: len(background.waits) >= 2, what="two lock waits")
        assert background.waits == sorted(background.waits)  # seconds waited so far
        assert os.path.exists(sandbox.lock_path)
        release_lock(holder)
        run = background.join()
    assert run.rc == 0 and run.lock_waits >= 2
    assert "tool-a" in sandbox.installed()


def test_cancel_during_the_lock_wait(sandbox, calls, runner_class):
    control = RunControl()
    with lock_holder(sandbox):
        background = Background(make_runner(sandbox, runner_class, lock_wait=30), ["install", "tool-a"], control)
        wait_until(lambda: background.waits, what="a lock wait")
        control.stop()
        with pytest.raises(JobError) as caught:
            background.join()
    assert caught.value.code == errors.CANCELLED


# ----------------------------------------------------------- no binary
def test_opkg_not_found(sandbox, calls, tmp_path, runner_class):
    not_executable = tmp_path / "opkg"
    not_executable.write_text("#!/bin/sh\n")
    for binary in (str(tmp_path / "missing" / "opkg"), str(not_executable), "no-such-opkg-binary"):
        with pytest.raises(JobError) as caught:
            make_runner(sandbox, runner_class, binary=binary).run(["update"], lambda line: None, RunControl())
        assert caught.value.code == errors.OPKG_NOT_FOUND
        assert binary in str(caught.value)
    assert calls.entries() == []
