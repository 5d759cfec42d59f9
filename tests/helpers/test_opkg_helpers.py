"""``pineapple.helpers.opkg_helpers`` through a real pineapple-jobd and
without one (opkg in this process): the same answers both ways, against the
opkg stand-in's sandbox."""
from __future__ import annotations

import pytest

from pineapple import errors
from pineapple.helpers import opkg_helpers as opkg
from pineapple.helpers.opkg_bridge import OpkgOperation
from pineapple.helpers.opkg_helpers import OpkgJob
from pineapple.jobs import JobManager
from tests.conftest import POSTINST_FAIL
from tests.modules.helpers import wait_for

WAIT = 60.0


def test_check_if_installed_is_a_bare_boolean(opkg_mode):
    assert opkg.check_if_installed("libc") is True
    assert opkg.check_if_installed("myapp") is False
    assert opkg.check_if_installed("not-in-any-feed") is False
    with pytest.raises(ValueError, match="invalid package name"):
        opkg.check_if_installed("-rf")


def test_install_and_uninstall_dependency(opkg_mode):
    sandbox = opkg_mode.sandbox
    assert opkg.install_dependency("myapp") == (True, "Package installed successfully")
    assert "myapp" in sandbox.installed() and "mylib" in sandbox.installed()
    assert opkg.check_if_installed("myapp") is True
    assert opkg.install_dependency("myapp", skip_repo_update=True) == (True, "Package is already installed")
    assert opkg.uninstall_dependency("myapp") == (True, "Package uninstalled successfully")
    assert "myapp" not in sandbox.installed() and "mylib" not in sandbox.installed()  # its orphan went too
    assert opkg.uninstall_dependency("myapp") == (True, "Package is not installed")


def test_failures_carry_opkg_s_words(opkg_mode):
    ok, message = opkg.install_dependency("not-in-any-feed")
    assert not ok and message.startswith("Unable to install package: ")
    assert "Unknown package 'not-in-any-feed'" in message
    ok, message = opkg.install_dependency("failpkg")
    assert not ok and f"status {POSTINST_FAIL}" in message and "Rolled back" in message
    assert "failpkg" not in opkg_mode.sandbox.installed()
    assert opkg.update_repository() == (True, "Success")


def test_update_failure(opkg_mode):
    opkg_mode.sandbox.break_feed()
    ok, message = opkg.update_repository()
    assert not ok and message.startswith("Opkg update failed: ")


def _run_opkg_job(package, install, manager=None):
    manager = manager or JobManager("opkgjob-test")
    seen = []
    job_id = manager.execute_job(OpkgJob(package, install), callbacks=[seen.append])
    job = manager.wait(job_id, WAIT)
    manager.shutdown()
    assert seen == [job]
    return job


def test_opkg_job_success_has_no_error(opkg_mode):
    job = _run_opkg_job(["myapp", "tool-a"], True)
    assert job.was_successful and job.result is True and job.error is None and job.install is True
    assert job.summary()["job_error"] is None
    assert {"myapp", "tool-a"} <= set(opkg_mode.sandbox.installed())
    job = _run_opkg_job("tool-a", False)
    assert job.was_successful and job.result is True and job.install is False
    assert "tool-a" not in opkg_mode.sandbox.installed()


def test_opkg_job_failure_is_all_or_nothing_with_a_code(opkg_mode):
    job = _run_opkg_job(["tool-b", "failpkg"], True)
    assert not job.was_successful and job.result is False
    assert job.error.startswith("Unable to install tool-b, failpkg: ")
    assert job.error_code == errors.SCRIPT_FAILED
    assert "tool-b" not in opkg_mode.sandbox.installed()  # rolled back with failpkg
    job = _run_opkg_job("not-in-any-feed", True)
    assert job.error_code == errors.UNKNOWN_PACKAGE and job.result is False


def test_opkg_job_bad_arguments(opkg_mode):
    job = _run_opkg_job(42, True)
    assert not job.was_successful and "TypeError" not in job.error and "not int" in job.error
    job = _run_opkg_job(["ok-name", "--force"], True)
    assert job.error_code == errors.INVALID_PACKAGE_NAME


def test_both_ways_answer_the_same(sandbox, start_daemon, monkeypatch, tmp_path):
    """One scenario run through the daemon and then here: equal answers."""
    def scenario():
        answers = [opkg.install_dependency("otherapp"), opkg.install_dependency("otherapp"),
                   opkg.install_dependency("broken"), opkg.uninstall_dependency("otherapp"),
                   opkg.check_if_installed("otherapp")]
        job = _run_opkg_job(["tool-c", "failpkg"], True)
        return answers + [(job.result, job.error, job.error_code)]

    for name, value in sandbox.env().items():
        if name in ("PATH", "TMPDIR"):
            monkeypatch.setenv(name, value)
    daemon = start_daemon()
    monkeypatch.setenv("PINEAPPLE_JOBD_SOCKET", str(daemon.socket))
    via_daemon = scenario()
    daemon.stop()
    monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_BINARY", str(sandbox.opkg_path))
    monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_OFFLINE_ROOT", str(sandbox.root))
    monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_CONF", str(sandbox.conf))
    here = scenario()
    assert here == via_daemon


def test_operation_says_where_it_ran(opkg_mode):
    outcome = OpkgOperation("install", ["tool-a"]).run()
    assert outcome.ok and outcome.via == opkg_mode.via and outcome.result["installed"] == ["tool-a"]



def test_an_opkg_job_completes_beside_two_endless_captures(opkg_mode):
    from tests.jobs.test_job_runner import Forever

    manager = JobManager("captures", workers=2)  # both general threads taken by captures
    captures = [Forever(), Forever()]
    for capture in captures:
        manager.execute_job(capture)
    assert all(capture.started.wait(WAIT) for capture in captures)
    job = manager.wait(manager.execute_job(OpkgJob("myapp", True)), WAIT)
    assert job.was_successful and "myapp" in opkg_mode.sandbox.installed()
    assert all(manager.jobs[c.id].running for c in captures)
    manager.shutdown(wait=False)


@pytest.mark.parametrize("via", ["daemon", "local"])
def test_stop_job_cancels_only_that_install(via, sandbox, start_daemon, monkeypatch):
    """OPKG_STANDIN_HANG keeps opkg running until it is stopped: stop_job
    ends the OpkgJob cancelled, nothing half-installed, nothing else killed."""
    for name, value in sandbox.env(hang=1).items():
        if name in ("PATH", "TMPDIR", "OPKG_STANDIN_HANG"):
            monkeypatch.setenv(name, value)
    if via == "daemon":
        daemon = start_daemon(env={"OPKG_STANDIN_HANG": "1"})
        monkeypatch.setenv("PINEAPPLE_JOBD_SOCKET", str(daemon.socket))
    else:
        monkeypatch.setenv("PINEAPPLE_JOBD_SOCKET", str(sandbox.base / "nobody.sock"))
        monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_BINARY", str(sandbox.opkg_path))
        monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_OFFLINE_ROOT", str(sandbox.root))
        monkeypatch.setenv("PINEAPPLE_JOBD_OPKG_CONF", str(sandbox.conf))
    manager = JobManager("opkg-stop")
    job = OpkgJob("myapp", True)
    job_id = manager.execute_job(job)
    wait_for(lambda: any("$ opkg" in line or "handed to pineapple-jobd" in line for line in job.log),
               what="opkg to start")
    if via == "daemon":
        wait_for(lambda: daemon.client().list(state="running")["jobs"], what="the daemon's job to run")
    assert manager.stop_job(job_id=job_id) is True
    done = manager.wait(job_id, WAIT)
    assert done.is_complete and not done.was_successful
    # The first line says what happened; a second one may list what the
    # rollback removed (opkg writes its database on SIGINT, so what it had
    # unpacked by then is known and removed).
    assert (done.state, done.error_code, done.error.splitlines()[0]) == (
        "cancelled", errors.CANCELLED, "Unable to install myapp: cancelled while running opkg")
    assert not {"myapp", "mylib"} & set(sandbox.installed())
    manager.shutdown()


def test_an_opkg_job_waits_for_opkg_s_lock_then_succeeds(opkg_mode):
    """Another process (LuCI, a cron job) holds opkg's lock: the OpkgJob
    says it waits, in its progress, and installs once the lock is free."""
    from tests.opkg.helpers import lock_holder, release_lock

    manager = JobManager("opkg-lock")
    with lock_holder(opkg_mode.sandbox) as holder:
        job = OpkgJob("tool-c", True)
        job_id = manager.execute_job(job)
        wait_for(lambda: job.progress.message.startswith("waiting for opkg's lock"), what="the lock wait")
        assert not job.is_complete and "tool-c" not in opkg_mode.sandbox.installed()
        release_lock(holder)
        done = manager.wait(job_id, WAIT)
    assert done.was_successful and done.error is None and "tool-c" in opkg_mode.sandbox.installed()
    assert any(line.startswith("waited for opkg's lock") for line in done.log)
    assert done.progress.fraction == 1.0
    manager.shutdown()
