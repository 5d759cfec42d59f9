"""pineapple.opkg.recovery against the stand-in: which process group is ours
(pid plus start time), and what an intent read back from the journal makes
recovery remove (only what the interrupted job added, only package names)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid

from pineapple.jobs import JobManager
from pineapple.jobs.store import JOURNAL_NAME
from pineapple.opkg.jobs import InstallDependenciesJob
from pineapple.opkg.recovery import recover
from pineapple.opkg.runner import is_our_group, process_start_time, tagged_groups
from tests.opkg.helpers import end_process, make_system, wait_until


def own_session(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(list(argv), start_new_session=True)


def test_a_group_is_ours_only_with_its_leaders_start_time():
    proc = own_session("sleep", "60")
    try:
        start = process_start_time(proc.pid)
        assert start is not None
        assert is_our_group(proc.pid, start)
        assert not is_our_group(proc.pid, start + 1)  # a recycled pid: another process
        assert not is_our_group(1, process_start_time(1) or 0)  # never init
    finally:
        end_process(proc)
    assert process_start_time(proc.pid) is None
    assert not is_our_group(proc.pid, start)  # gone


def test_a_group_whose_leader_is_gone_is_ours_while_members_live():
    # The leader starts a member of its own group and exits (reaped at once).
    code = "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True)"
    leader = own_session(sys.executable, "-c", code)
    leader.wait(10)
    try:
        assert is_our_group(leader.pid, 12345)  # the leader's start time is unknowable now: the group says it
    finally:
        subprocess.run(["pkill", "-g", str(leader.pid)], check=False)


def test_recovery_removes_only_what_the_intent_says_was_absent(sandbox):
    system = make_system(sandbox)
    assert subprocess.run(sandbox.argv("install", "myapp", "tool-a"), env=sandbox.env(),
                          capture_output=True, timeout=60).returncode == 0
    intent = {"op": "install", "phase": "rollback", "packages": ["myapp"], "dest": "", "atomic": True,
              "absent_before": ["myapp", "--force-removal-of-dependent-packages", 7], "opkg": None}
    recovery = recover(system, intent)
    # Only names pass (the option and the 7 are ignored); tool-a and mylib are not the intent's.
    assert recovery.report["removed"] == ["myapp"]
    assert "tool-a" in sandbox.installed() and "mylib" in sandbox.installed()
    assert recovery.summary.startswith("recovery: removed")


def test_an_intent_without_a_process_stops_nothing(sandbox):
    system = make_system(sandbox)
    recovery = recover(system, {"op": "install", "phase": "install", "packages": ["myapp"],
                                "absent_before": ["myapp"], "opkg": {"pgid": 1, "start": 1}})
    assert recovery.report["opkg_stopped"] is None and recovery.report["removed"] == []
    assert recovery.summary == "recovery: nothing was left half done"


def test_an_install_opkg_had_finished_is_kept(sandbox):
    # The daemon died after opkg had installed everything, before the job ended.
    assert subprocess.run(sandbox.argv("install", "myapp"), env=sandbox.env(), capture_output=True,
                          timeout=60).returncode == 0
    recovery = recover(make_system(sandbox), {"op": "install", "phase": "install", "packages": ["myapp"],
                                              "atomic": True, "absent_before": ["mylib", "myapp"], "opkg": None})
    assert recovery.report["kept"] == ["mylib", "myapp"] and recovery.report["removed"] == []
    assert recovery.summary == "recovery: opkg had finished before the stop: kept mylib, myapp"
    assert sandbox.installed() == {"libc": "1.2.4-4", "mylib": "1.0-1", "myapp": "1.2.3-1"}


def test_a_rollback_removes_what_opkg_had_finished_too(sandbox):
    assert subprocess.run(sandbox.argv("install", "myapp"), env=sandbox.env(), capture_output=True,
                          timeout=60).returncode == 0
    recovery = recover(make_system(sandbox), {"op": "install", "phase": "rollback", "packages": ["myapp"],
                                              "atomic": True, "absent_before": ["mylib", "myapp"], "opkg": None})
    assert sorted(recovery.report["removed"]) == ["myapp", "mylib"]
    assert sandbox.installed() == {"libc": "1.2.4-4"}


def test_debris_of_an_opkg_that_died_unrecorded_is_deleted_and_nothing_else(sandbox):
    assert subprocess.run(sandbox.argv("install", "myapp", "tool-a"), env=sandbox.env(), capture_output=True,
                          timeout=60).returncode == 0
    status = sandbox.status_path()
    # As if opkg had died before writing the database: myapp on disk, not in the status file.
    stanzas = status.read_text().split("\n\n")
    status.write_text("\n\n".join(s for s in stanzas if "Package: myapp\n" not in s))
    recovery = recover(make_system(sandbox), {"op": "install", "phase": "install", "packages": ["myapp"],
                                              "atomic": True, "absent_before": ["myapp", "tool-b"], "opkg": None})
    assert recovery.report["debris"] == ["myapp"] and recovery.report["removed"] == ["myapp"]
    assert not (sandbox.root / "usr/bin/myapp").exists() and not list(sandbox.info_dir().glob("myapp.*"))
    assert not (sandbox.root / "usr/bin").exists()  # emptied directories go, as after a rollback
    assert (sandbox.root / "usr/share/mylib").is_dir()
    assert sorted(sandbox.installed()) == ["libc", "mylib", "tool-a"]
    assert (sandbox.root / "usr/share/tool-a/README").exists()


def test_a_run_is_found_by_its_tag_when_its_pid_was_never_written(sandbox):
    # An orphan (its parent exits at once), as a killed daemon's opkg is: init reaps it.
    tag = uuid.uuid4().hex
    code = ("import os, subprocess; p = subprocess.Popen(['sleep', '60'], start_new_session=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, "
            f"env=dict(os.environ, PINEAPPLE_JOBD_RUN='{tag}')); print(p.pid)")
    orphan = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout)
    other = own_session("sleep", "60")  # untagged: never touched
    try:
        assert tagged_groups(tag) == [orphan] and tagged_groups(uuid.uuid4().hex) == []
        recovery = recover(make_system(sandbox), {"op": "install", "phase": "install", "packages": ["myapp"],
                                                  "absent_before": ["myapp"], "opkg": {"tag": tag}})
        assert recovery.report["opkg_stopped"] == {"pgid": orphan, "signal": "SIGINT"}
        assert process_start_time(orphan) is None and other.poll() is None
    finally:
        with contextlib.suppress(OSError):
            os.kill(orphan, signal.SIGKILL)
        end_process(other)


def test_the_intent_names_our_opkg_before_it_can_change_anything(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("OPKG_STANDIN_HANG", "download:myapp")  # a stand-in knob: the stand-in runs
    manager = JobManager(state_dir=tmp_path / "state")
    job = InstallDependenciesJob(make_system(sandbox, binary=str(sandbox.opkg_path)), ["myapp"])
    job_id = manager.execute_job(job)
    try:
        def intent():
            record = [json.loads(line) for line in (tmp_path / "state" / JOURNAL_NAME).read_text().splitlines()
                      if job_id in line][-1]
            return (record.get("intent") or {}).get("opkg") or {}

        wait_until(lambda: "pgid" in intent(), what="the journalled pgid")
        process = intent()
        assert process["pgid"] == process["pid"] and process["start"] == process_start_time(process["pid"])
        assert open(f"/proc/{process['pid']}/environ", "rb").read().count(
            f"PINEAPPLE_JOBD_RUN={process['tag']}".encode()) == 1
        record_intent = job.intent
        assert record_intent["op"] == "install" and record_intent["absent_before"] == ["myapp", "mylib"]
    finally:
        manager.cancel_job(job_id)
        manager.wait(job_id, 30)
        manager.shutdown()
    assert manager.get_job(job_id, False).state == "cancelled"


def test_an_install_goes_on_when_the_journal_cannot_take_its_intent_and_says_so(sandbox, tmp_path):
    from tests.jobs.helpers import FlakyDisk

    manager = JobManager(state_dir=tmp_path / "state")
    disk = FlakyDisk()
    manager._journal.writer = disk
    job_id = manager.submit(InstallDependenciesJob(make_system(sandbox), ["myapp"]), hold=True).job_id
    disk.fail()  # a full state directory, after the job was accepted
    manager.release_job(job_id)
    done = manager.wait(job_id, 60)
    disk.heal()
    manager.shutdown()
    assert done.state == "succeeded" and "myapp" in sandbox.installed()
    warned = [line for line in done.log if "the journal is failing" in line]
    assert len(warned) == 1, done.log  # once, however many runs


def test_a_tagged_run_whose_daemon_died_before_exec_never_becomes_opkg(tmp_path):
    from pineapple.opkg.runner import _exit_if_orphaned

    marker = tmp_path / "ran"
    # preexec checks the parent it was made for: here, a pid that is not ours (as after the daemon died).
    dead = subprocess.Popen(["touch", str(marker)], preexec_fn=_exit_if_orphaned(os.getpid() + 100000))
    assert dead.wait(10) == 255 and not marker.exists()
    alive = subprocess.Popen(["touch", str(marker)], preexec_fn=_exit_if_orphaned(os.getpid()))
    assert alive.wait(10) == 0 and marker.exists()


def test_an_abandoned_run_starts_no_lock_wait_retry(sandbox, calls):
    # The helper abandons its run when the daemon's end of its input closes.
    from pineapple.errors import JobError
    from pineapple.opkg.runner import OpkgRunner, RunControl, RunnerSettings
    from pineapple.opkg.system import is_lock_busy
    from tests.opkg.helpers import lock_holder

    runner = OpkgRunner(RunnerSettings(binary=str(sandbox.opkg_path), offline_root=str(sandbox.root),
                                       conf=str(sandbox.conf), lock_wait=60.0), is_lock_busy)
    control = RunControl()
    outcome = []
    with lock_holder(sandbox):
        thread = threading.Thread(target=lambda: outcome.append(_run_catching(runner, control)))
        thread.start()
        wait_until(lambda: calls.commands().count("install") >= 1, what="the first try")
        control.abandon()
        thread.join(30)
        tries = calls.commands().count("install")
    assert not thread.is_alive() and isinstance(outcome[0], JobError) and outcome[0].code == "cancelled"
    assert "abandoned" in str(outcome[0]) and tries <= 2  # at most the try under way when it was abandoned
    assert calls.commands().count("install") == tries  # and none after


def _run_catching(runner, control):
    try:
        return runner.run(["install", "tool-a"], lambda line: None, control)
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return exc
