"""Acceptance tests of the opkg jobs (issue 3), end to end.

Every test drives the real opkg stand-in (devtools/opkg) in a real sandbox
root through a real :class:`JobManager`: real processes, process groups and
signals, no mocks. Spawns are counted through ``OPKG_STANDIN_CALL_LOG``.
Every wait is bounded; nothing sleeps to wait for something to happen.

Shared helpers are in helpers.py, shared fixtures in conftest.py.
"""
from __future__ import annotations

import gc
import logging
import os
import pathlib
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from pineapple import errors
from pineapple.errors import JobError
from pineapple.jobs import JobManager
from pineapple.jobs.registry import JobTypeRegistry
from pineapple.opkg.jobs import (
    InstallDependenciesJob,
    UninstallDependenciesJob,
    UpdatePackageListsJob,
    register_opkg_jobs,
)
from pineapple.opkg.output import CONFIGURING, DOWNLOADING, INSTALLING, REMOVING, UPDATED, ProgressEvent
from pineapple.opkg.progress import CEILING, StepProgress
from pineapple.opkg.runner import RunControl
from pineapple.opkg.system import OpkgSystem
from tests.opkg.helpers import (
    JOB_WAIT,
    CallLog,
    Recorder,
    alive,
    comm,
    end_process,
    lock_holder,
    make_system,
    pids_named,
    proc_stat,
    release_lock,
    run_job,
    wait_until,
)


# --------------------------------------------------------------- fixtures
@pytest.fixture
def system(sandbox: Sandbox, calls: CallLog) -> OpkgSystem:
    return make_system(sandbox)


@pytest.fixture
def manager() -> Iterator[JobManager]:
    manager = JobManager("test-opkg-jobs", workers=2)
    yield manager
    manager.shutdown(wait=True, timeout=15)


def setup_run(sb: Sandbox, *args: str, check: bool = True) -> None:
    """Prepare the device with the stand-in directly (not counted as a spawn)."""
    sb.run(*args, env=sb.env(call_log=None), check=check)


def installed_states(sb: Sandbox, dest: str | None = None) -> dict[str, str]:
    """name -> Status of every stanza that is not a not-installed placeholder."""
    return {s["Package"]: s["Status"] for s in sb.status(dest) if not s["Status"].endswith(" not-installed")}


def regular_files(root: pathlib.Path) -> set[str]:
    """Every non-directory under the root except opkg's lock, temp dirs and lists."""
    skip = ("var/lock/", "var/opkg-lists/")
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not p.is_dir() and not str(p.relative_to(root)).startswith(skip)}


# ====================================================== 1. error codes
def test_unknown_package(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["nosuchpkg"]))
    assert job.state == "failed" and job.error_code == errors.UNKNOWN_PACKAGE
    assert "opkg_install_cmd: Cannot install package nosuchpkg." in job.error
    assert job.result["failed"] == {"nosuchpkg": errors.UNKNOWN_PACKAGE}
    assert "Unknown package 'nosuchpkg'." in job.log
    assert calls.commands() == ["install"]  # no stale-lists hint: no update, no retry


def test_missing_dependency(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["broken"]))
    assert job.error_code == errors.MISSING_DEPENDENCY
    assert "pkg_hash_check_unresolved: cannot find dependency does-not-exist for broken" in job.error
    assert job.result["failed"] == {"broken": errors.MISSING_DEPENDENCY}
    assert calls.commands() == ["install"]


def test_download_failed_updates_and_retries_once(sandbox, calls, system, manager):
    sandbox.delete_from_feed("tool-a")  # still in the lists fetched before
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.error_code == errors.DOWNLOAD_FAILED
    assert "opkg_install_pkg: Failed to download tool-a. Perhaps you need to run 'opkg update'?" in job.error
    assert calls.commands() == ["install", "update", "install"]
    assert job.result["updated_lists"] is True
    assert "tool-a" not in sandbox.installed()


def test_checksum_mismatch(sandbox, calls, system, manager):
    sandbox.tamper("tool-a")
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.error_code == errors.CHECKSUM_MISMATCH
    assert "Checksum or size mismatch for package tool-a." in job.error
    # opkg says "Try 'opkg update'.": one update and one retry, which fails the same way.
    assert calls.commands() == ["install", "update", "install"]
    assert "tool-a" not in sandbox.installed()


def test_insufficient_space_refused_before_any_spawn(sandbox, calls, system, manager):
    status_before = sandbox.status_path().read_bytes()
    job = run_job(manager, InstallDependenciesJob(system, ["bigpkg"]))
    assert job.error_code == errors.INSUFFICIENT_SPACE
    assert "not enough space" in job.error and "nothing was changed" in job.error
    assert job.result["failed"] == {"bigpkg": errors.INSUFFICIENT_SPACE}
    assert calls.entries() == []  # not even opkg update: the lists are fresh
    assert sandbox.status_path().read_bytes() == status_before


def test_insufficient_space_reported_by_opkg(sandbox, calls, system, manager, monkeypatch):
    # Our pre-check sees the real disk (plenty free); opkg sees 0 kB: only
    # opkg's verify_pkg_installable can tell.
    monkeypatch.setenv("OPKG_STANDIN_FREE_KB", "0")
    assert system.space_shortfall(["tool-a"], "") is None
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.error_code == errors.INSUFFICIENT_SPACE
    assert "verify_pkg_installable: Only have 0kb available on filesystem" in job.error
    assert "pkg tool-a needs" in job.error
    assert calls.commands() == ["install"]
    assert job.result["failed"] == {"tool-a": errors.INSUFFICIENT_SPACE}


def test_script_failed(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["failpkg"]))
    assert job.error_code == errors.SCRIPT_FAILED
    assert 'pkg_run_script: package "failpkg" postinst script returned status 3.' in job.error
    assert "opkg_configure: failpkg.postinst returned 3." in job.error
    assert job.result["rolled_back"] == ["failpkg"]  # atomic: the half-configured package is removed
    assert "failpkg" not in sandbox.installed()


def test_has_dependents_names_them(sandbox, calls, system, manager):
    setup_run(sandbox, "install", "myapp")
    job = run_job(manager, UninstallDependenciesJob(system, ["mylib"]))
    assert job.error_code == errors.HAS_DEPENDENTS
    assert "mylib is needed by myapp" in job.error
    assert "print_dependents_warning: Package mylib is depended upon by packages:" in job.error
    assert job.result["dependents"] == {"mylib": ["myapp"]}
    assert job.result["removed"] == []
    assert {"mylib", "myapp"} <= set(sandbox.installed())


def test_opkg_not_found(sandbox, calls, manager, tmp_path):
    system = make_system(sandbox, binary=str(tmp_path / "no" / "opkg"))
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.state == "failed" and job.error_code == errors.OPKG_NOT_FOUND
    assert "opkg not found" in job.error
    assert calls.entries() == []


def test_timeout_stops_a_hanging_download(sandbox, calls, system, manager, monkeypatch):
    monkeypatch.setenv("OPKG_STANDIN_HANG", "download")
    status_before = sandbox.status_path().read_bytes()
    started = time.monotonic()
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"], timeout=1))
    assert job.state == "failed" and job.error_code == errors.TIMEOUT
    assert time.monotonic() - started < 8  # SIGINT ended it, not a SIGTERM/SIGKILL grace or the hang
    assert not alive(calls.pid_of("install"))
    assert any(line.startswith("Downloading ") for line in job.log)  # live output before the stop
    assert sandbox.status_path().read_bytes() == status_before


def test_cancelled(sandbox, calls, system, manager, monkeypatch):
    monkeypatch.setenv("OPKG_STANDIN_HANG", "download:tool-b")
    job_id = manager.execute_job(InstallDependenciesJob(system, ["tool-a", "tool-b"]))
    job = manager.get_job(job_id, remove_if_complete=False)
    wait_until(lambda: any("tool-b_1.0-1_all.ipk" in line for line in job.log), what="the tool-b download")
    assert manager.cancel_job(job_id)
    job = manager.wait(job_id, JOB_WAIT)
    assert job.state == "cancelled" and job.error_code == errors.CANCELLED
    assert not alive(calls.pid_of("install"))
    assert "tool-a" not in sandbox.installed()  # unpacked before the stop: rolled back


def test_opkg_failed_for_an_unclassified_error(sandbox, calls, system, manager):
    # A file clash: opkg's check_data_file_clashes has no more specific code.
    setup_run(sandbox, "install", "myapp")
    sandbox.add_package(PackageSpec("clash", files={"/usr/bin/myapp": b"not myapp\n"}))
    setup_run(sandbox, "update")
    job = run_job(manager, InstallDependenciesJob(system, ["clash"]))
    assert job.error_code == errors.OPKG_FAILED
    assert "check_data_file_clashes: Package clash wants to install file" in job.error
    assert "opkg_install_cmd: Cannot install package clash." in job.error
    assert sandbox.path("/usr/bin/myapp").read_bytes() == b"#!/bin/sh\necho myapp\n"


# ===================================================== 2. lock contention
def test_waits_for_the_lock_then_succeeds(sandbox, calls, system, manager):
    with lock_holder(sandbox) as holder:
        job_id = manager.execute_job(InstallDependenciesJob(system, ["tool-a"]))
        job = manager.get_job(job_id, remove_if_complete=False)
        wait_until(lambda: job.progress.message.startswith("waiting for opkg's lock"), what="the lock wait")
        assert "another process is using opkg" in job.progress.message
        assert os.path.exists(sandbox.lock_path)  # never deleted to "fix" contention
        assert not job.is_complete and "tool-a" not in sandbox.installed()
        release_lock(holder)
        job = manager.wait(job_id, JOB_WAIT)
    assert job.state == "succeeded", job.error
    assert sandbox.installed()["tool-a"] == "1.0-1"
    assert any(line.startswith("waited for opkg's lock") for line in job.log)
    assert calls.commands().count("install") >= 2  # refused while locked, then ran


def test_gives_up_on_the_lock_after_lock_wait(sandbox, calls, manager):
    system = make_system(sandbox, lock_wait=0.5)
    with lock_holder(sandbox) as holder:
        job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
        assert job.error_code == errors.LOCK_BUSY
        assert "opkg_conf_load: Could not lock" in job.error
        assert os.path.exists(sandbox.lock_path)
        assert holder.poll() is None  # the other process is untouched and still holds it
    assert job.result["failed"] == {"tool-a": errors.LOCK_BUSY}
    # Tried once, and again while the 0.5 s last (a slow start of opkg here can leave no second try).
    assert set(calls.commands()) == {"install"}
    assert "tool-a" not in sandbox.installed()


# ============================== 3. cancel kills only our opkg, rolls back
@pytest.fixture
def unrelated_opkgs(sandbox: Sandbox, tmp_path: pathlib.Path) -> Iterator[list[int]]:
    """Two processes named opkg that are none of our business: another
    stand-in hanging in another root, and ``exec -a opkg sleep``."""
    other = tmp_path / "other-root"
    (other / "var" / "lock").mkdir(parents=True)
    (other / "tmp").mkdir()
    env = sandbox.env(hang="lock", call_log=None)
    env["TMPDIR"] = str(other / "tmp")
    standin = subprocess.Popen([str(sandbox.opkg_path), "-o", str(other), "-f", str(sandbox.conf), "list-installed"],
                               env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    decoy = subprocess.Popen(["bash", "-c", "exec -a opkg sleep 60"], start_new_session=True)
    try:
        wait_until(lambda: (other / "var" / "lock" / "opkg.lock").exists() and comm(standin.pid) == "opkg",
                   what="the other opkg to hold its lock")
        wait_until(lambda: pathlib.Path(f"/proc/{decoy.pid}/cmdline").read_bytes().startswith(b"opkg\0"),
                   what="the decoy to exec")
        yield [standin.pid, decoy.pid]
    finally:
        end_process(standin)
        end_process(decoy)


def test_cancel_kills_only_our_opkg_and_rolls_back(sandbox, calls, system, manager, monkeypatch, unrelated_opkgs):
    standin_pid, decoy_pid = unrelated_opkgs
    before = installed_states(sandbox)
    # The first install run installs myapp (+ mylib) but cannot download
    # tool-a; opkg hints at stale lists, so the job runs opkg update, which
    # hangs: cancel it there, after something was already installed.
    sandbox.delete_from_feed("tool-a")
    monkeypatch.setenv("OPKG_STANDIN_HANG", "update")
    job_id = manager.execute_job(InstallDependenciesJob(system, ["myapp", "tool-a"]))
    job = manager.get_job(job_id, remove_if_complete=False)
    wait_until(lambda: any(line.endswith("/Packages.gz") for line in job.log), what="the hanging opkg update")
    assert {"myapp", "mylib"} <= set(sandbox.installed())
    ours = calls.pid_of("update")
    assert {ours, standin_pid} <= pids_named("opkg")
    our_group = proc_stat(ours)[1]
    assert our_group == ours != os.getpgid(0)  # its own process group
    assert our_group not in (proc_stat(standin_pid)[1], proc_stat(decoy_pid)[1])

    assert manager.cancel_job(job_id)
    job = manager.wait(job_id, JOB_WAIT)

    assert job.state == "cancelled" and job.error_code == errors.CANCELLED
    assert not alive(ours)
    assert alive(standin_pid) and comm(standin_pid) == "opkg"
    assert alive(decoy_pid)
    assert sorted(job.result["rolled_back"]) == ["myapp", "mylib"]
    assert installed_states(sandbox) == before
    assert not sandbox.path("/usr/bin/myapp").exists()


# ======================================================= 4. atomic rollback
def test_atomic_failure_leaves_the_device_as_it_was(sandbox, calls, system, manager):
    status_before = sandbox.status_path().read_bytes()
    files_before = regular_files(sandbox.root)
    job = run_job(manager, InstallDependenciesJob(system, ["myapp", "failpkg"]))
    assert job.state == "failed" and job.error_code == errors.SCRIPT_FAILED
    assert sorted(job.result["rolled_back"]) == ["failpkg", "myapp", "mylib"]
    assert job.result["installed"] == [] and job.result["dependencies"] == []
    assert job.result["failed"] == {"failpkg": errors.SCRIPT_FAILED}
    assert "Rolled back: " in job.error
    assert sandbox.status_path().read_bytes() == status_before
    assert regular_files(sandbox.root) == files_before  # files and info/* gone too
    assert calls.commands() == ["install", "remove"]


def test_non_atomic_failure_keeps_the_good_packages(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["myapp", "failpkg"], atomic=False))
    assert job.error_code == errors.SCRIPT_FAILED
    assert job.result["rolled_back"] == []
    assert job.result["installed"] == ["myapp"]
    assert job.result["dependencies"] == ["mylib"]
    assert job.result["failed"] == {"failpkg": errors.SCRIPT_FAILED}
    states = installed_states(sandbox)
    assert states["myapp"] == "install user installed"
    assert states["mylib"] == "install ok installed"  # auto-installed dependency
    assert states["failpkg"] == "install user unpacked"  # as real opkg leaves it
    assert calls.commands() == ["install"]


# ========================================================= 5. list updates
def _age_lists(sb: Sandbox, seconds: float) -> None:
    old = time.time() - seconds
    for path in sb.lists_path.iterdir():
        os.utime(path, (old, old))


def test_fresh_lists_skip_update(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.state == "succeeded"
    assert job.result["updated_lists"] is False
    assert calls.commands() == ["install"]


def test_stale_lists_are_updated_first(sandbox, calls, manager):
    system = make_system(sandbox, lists_max_age=3600)
    _age_lists(sandbox, 7200)
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.state == "succeeded", job.error
    assert job.result["updated_lists"] is True
    assert calls.commands() == ["update", "install"]
    assert not system.lists_are_stale()


def test_missing_lists_are_fetched_first(sandbox, calls, system, manager):
    for path in sandbox.lists_path.iterdir():
        path.unlink()
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.state == "succeeded", job.error
    assert calls.commands() == ["update", "install"]


def test_update_never_and_always(sandbox, calls, manager):
    system = make_system(sandbox, lists_max_age=3600)
    _age_lists(sandbox, 7200)
    assert run_job(manager, InstallDependenciesJob(system, ["tool-a"], update="never")).state == "succeeded"
    assert calls.commands() == ["install"]
    assert run_job(manager, InstallDependenciesJob(system, ["tool-b"], update="always")).state == "succeeded"
    assert calls.commands() == ["install", "update", "install"]


def test_stale_lists_hint_updates_and_retries_once(sandbox, calls, system, manager):
    # The feed moved on after our lists were fetched: tool-a 1.0-1 was
    # replaced by 1.1-1. opkg fails to download 1.0-1 and says "Perhaps you
    # need to run 'opkg update'?": the job updates and the retry succeeds.
    sandbox.ipk_path("tool-a").unlink()
    sandbox.add_package(PackageSpec("tool-a", "1.1-1", depends=["libc"]))
    assert not system.lists_are_stale()
    job = InstallDependenciesJob(system, ["tool-a"])
    seen = _record_progress_calls(job, messages=True)
    job = run_job(manager, job)
    assert job.state == "succeeded", job.error
    # The update's lines are no install steps: no "downloading base" (a feed,
    # not a package), and 0.99 only once tool-a is really configured.
    assert [m for _, m in seen if "base" in m] == []
    first_full = next(i for i, (f, _) in enumerate(seen) if f is not None and f >= CEILING - 1e-6)
    assert seen[first_full][1] == "configuring tool-a"
    assert job.result["updated_lists"] is True and job.result["installed"] == ["tool-a"]
    assert calls.commands() == ["install", "update", "install"]
    assert sandbox.installed()["tool-a"] == "1.1-1"
    assert any("Perhaps you need to run 'opkg update'?" in line for line in job.log)


def test_update_job(sandbox, calls, system, manager):
    job = run_job(manager, UpdatePackageListsJob(system))
    assert job.state == "succeeded" and job.result == {"feeds": 1, "failed_feeds": 0}
    assert any(line.startswith("Updated list of available packages in ") for line in job.log)
    sandbox.break_feed()
    job = run_job(manager, UpdatePackageListsJob(system))
    assert job.error_code == errors.DOWNLOAD_FAILED and job.result["failed_feeds"] == 1
    assert "*** Failed to download the package list from" in job.error
    assert calls.commands() == ["update", "update"]


def test_update_job_progress_counts_feeds(tmp_path, calls, manager):
    # Three feeds: each feed's list is one step, not two (download + updated).
    sb = Sandbox.create(tmp_path / "feeds3", packages=[PackageSpec("libc")], update=False,
                        feeds={"packages": [PackageSpec("tool-x")], "luci": [PackageSpec("luci-x")]})
    recorder = Recorder(manager)
    job_id = manager.execute_job(UpdatePackageListsJob(make_system(sb)))
    assert manager.wait(job_id, JOB_WAIT).result == {"feeds": 3, "failed_feeds": 0}
    progress = [e.data for e in recorder.wait_final(job_id) if e.kind == "progress"][:-1]  # not the final 1.0
    updated = [p.fraction for p in progress if p.message.startswith("updated lists of")]
    assert updated == [pytest.approx(CEILING / 3), pytest.approx(CEILING * 2 / 3), pytest.approx(CEILING)]
    assert [p.message for p in progress if p.message.startswith("updated")] == [
        "updated lists of base", "updated lists of packages", "updated lists of luci"]


# ============================================ 6. hostile requests rejected
@pytest.mark.parametrize("packages", [["--force-depends"], ["a;reboot"], ["tool-a", "-d"], ["$(reboot)"],
                                      ["tool-a", "--autoremove"], ["../etc/passwd"], ["Tool-A"], [""], []])
def test_hostile_package_names_never_reach_opkg(sandbox, calls, system, packages):
    for make in (lambda: InstallDependenciesJob(system, packages),
                 lambda: UninstallDependenciesJob(system, packages)):
        with pytest.raises(JobError) as caught:
            make()
        assert caught.value.code == errors.INVALID_PACKAGE_NAME
    assert calls.entries() == []


@pytest.mark.parametrize("dest", ["-x", "--force-depends", "sd;reboot"])
def test_hostile_dest_is_rejected(sandbox, calls, system, dest):
    with pytest.raises(JobError) as caught:
        InstallDependenciesJob(system, ["tool-a"], dest=dest)
    assert caught.value.code == errors.INVALID_PACKAGE_NAME
    assert calls.entries() == []


@pytest.mark.parametrize(("job_type", "params", "code"), [
    ("install", {"packages": ["--force-depends"]}, errors.INVALID_PACKAGE_NAME),
    ("install", {"packages": ["a;reboot"]}, errors.INVALID_PACKAGE_NAME),
    ("install", {"packages": ["tool-a"], "dest": "-x"}, errors.INVALID_PACKAGE_NAME),
    ("install", {"packages": ["tool-a"], "force_depends": True}, errors.INVALID_FIELD),
    ("install", {"packages": ["tool-a"], "extra_args": ["--force-depends"]}, errors.INVALID_FIELD),
    ("install", {"packages": ["tool-a"], "update": "sometimes"}, errors.INVALID_FIELD),
    ("install", {"packages": "tool-a"}, errors.INVALID_FIELD),
    ("install", {"packages": ["tool-a"], "atomic": "yes"}, errors.INVALID_FIELD),
    ("install", {"packages": ["tool-a"], "timeout": -1}, errors.INVALID_FIELD),
    ("install", {}, errors.MISSING_FIELD),
    ("uninstall", {"packages": ["mylib"], "nodeps": True}, errors.INVALID_FIELD),
    ("uninstall", {"packages": ["-a"]}, errors.INVALID_PACKAGE_NAME),
    ("update", {"feeds": ["base"]}, errors.INVALID_FIELD),
])
def test_registered_factories_reject_bad_params(sandbox, calls, system, job_type, params, code):
    registry = JobTypeRegistry()
    register_opkg_jobs(registry, system, default_timeout=60.0)
    with pytest.raises(JobError) as caught:
        registry.create(job_type, params)
    assert caught.value.code == code
    assert calls.entries() == []


def test_registered_factories_build_working_jobs(sandbox, calls, system, manager):
    registry = JobTypeRegistry()
    register_opkg_jobs(registry, system, default_timeout=60.0)
    assert {"install", "uninstall", "update"} <= {entry["name"] for entry in registry.catalogue()}
    install = registry.create("install", {"packages": ["tool-a"], "atomic": False, "timeout": 30})
    assert install.timeout == 30 and install.params()["atomic"] is False
    assert run_job(manager, install).state == "succeeded"
    uninstall = registry.create("uninstall", {"packages": ["tool-a"]})
    assert uninstall.timeout == 60.0
    assert run_job(manager, uninstall).result["removed"] == ["tool-a"]
    assert calls.commands() == ["install", "remove"]


# =============================================== 7. few opkg processes
def test_three_missing_packages_need_at_most_two_spawns(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a", "tool-b", "tool-c"]))
    assert job.state == "succeeded", job.error
    assert job.result["installed"] == ["tool-a", "tool-b", "tool-c"]
    assert len(calls.entries()) <= 2
    assert calls.commands() == ["install"]
    assert calls.argvs()[0][-3:] == ["tool-a", "tool-b", "tool-c"]  # one call for all three


def test_already_installed_packages_spawn_nothing(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["libc"]))
    assert job.state == "succeeded" and job.result["already_present"] == ["libc"]
    assert calls.entries() == []


# ===================================================== 8. progress and log
def _record_progress_calls(job, messages: bool = False) -> list[tuple[float | None, str | None]]:
    """(fraction, job.outcome) of every set_progress call, taken on the
    calling thread as it happens ((fraction, message) with ``messages``)."""
    seen: list[tuple[float | None, str | None]] = []
    original = job.set_progress

    def recording(fraction=None, message=None):
        original(fraction, message)
        seen.append((fraction, job.progress.message if messages else job.outcome))

    job.set_progress = recording
    return seen


def test_progress_reaches_one_exactly_when_the_job_succeeds(sandbox, calls, system, manager):
    recorder = Recorder(manager)
    job = InstallDependenciesJob(system, ["myapp", "tool-a"])
    seen = _record_progress_calls(job)
    job_id = manager.execute_job(job)
    assert manager.wait(job_id, JOB_WAIT).state == "succeeded"
    events = recorder.wait_final(job_id)

    assert seen and all(outcome == "succeeded" for fraction, outcome in seen if fraction is not None
                        and fraction >= 1.0)
    progress = [e.data.fraction for e in events if e.kind == "progress"]
    assert progress.count(1.0) == 1 and progress[-1] == 1.0
    assert all(f is None or f < 1.0 for f in progress[:-1])
    assert all(b >= a for a, b in zip(progress, progress[1:]) if a is not None and b is not None)
    kinds = [e.kind for e in events]
    one = next(i for i, e in enumerate(events) if e.kind == "progress" and e.data.fraction == 1.0)
    assert kinds[one + 1:] == ["state"] and events[-1].data["state"] == "succeeded"
    intermediate = {round(f, 4) for f in progress if f is not None and 0 < f < CEILING}
    assert len(intermediate) >= 3  # live steps from opkg's lines, not a jump at the end

    log = [e.data for e in events if e.kind == "log"]
    assert "Installing myapp (1.2.3-1) to root..." in log
    assert "Installing mylib (1.0-1) to root..." in log
    assert {"Configuring mylib.", "Configuring myapp.", "Configuring tool-a."} <= set(log)
    assert log.index("Configuring mylib.") < log.index("Configuring myapp.")
    assert list(manager.get_job(job_id, remove_if_complete=False).log) == log


@pytest.mark.parametrize("packages", [["failpkg"], ["nosuchpkg"], ["tool-a", "broken"]])
def test_failed_jobs_never_reach_one(sandbox, calls, system, manager, packages):
    recorder = Recorder(manager)
    job = InstallDependenciesJob(system, packages)
    seen = _record_progress_calls(job)
    job_id = manager.execute_job(job)
    assert manager.wait(job_id, JOB_WAIT).state == "failed"
    events = recorder.wait_final(job_id)
    assert all(f is None or f < 1.0 for f, _ in seen)
    assert all(e.data.fraction is None or e.data.fraction < 1.0 for e in events if e.kind == "progress")
    assert events[-1].data["progress"]["fraction"] < 1.0


# =============================================================== 9. uninstall
def test_uninstall_autoremoves_orphaned_dependencies(sandbox, calls, system, manager):
    setup_run(sandbox, "install", "myapp")
    job = run_job(manager, UninstallDependenciesJob(system, ["myapp"]))
    assert job.state == "succeeded", job.error
    assert job.result == {"removed": ["myapp"], "autoremoved": ["mylib"], "not_installed": []}
    assert set(sandbox.installed()) == {"libc"}
    assert "mylib was autoinstalled and is now orphaned, removing." in job.log
    assert "--autoremove" in calls.argvs()[0]


def test_uninstall_without_autoremove_keeps_dependencies(sandbox, calls, system, manager):
    setup_run(sandbox, "install", "myapp")
    job = run_job(manager, UninstallDependenciesJob(system, ["myapp"], autoremove=False))
    assert job.result == {"removed": ["myapp"], "autoremoved": [], "not_installed": []}
    assert set(sandbox.installed()) == {"libc", "mylib"}


def test_uninstall_skips_packages_that_are_not_installed(sandbox, calls, system, manager):
    job = run_job(manager, UninstallDependenciesJob(system, ["tool-a", "nosuchpkg"]))
    assert job.state == "succeeded"
    assert job.result == {"removed": [], "autoremoved": [], "not_installed": ["tool-a", "nosuchpkg"]}
    assert calls.entries() == []
    setup_run(sandbox, "install", "tool-b")
    job = run_job(manager, UninstallDependenciesJob(system, ["tool-a", "tool-b"]))
    assert job.result == {"removed": ["tool-b"], "autoremoved": [], "not_installed": ["tool-a"]}
    assert calls.argvs()[0][-2:] == ["remove", "tool-b"]


def test_uninstall_force_removes_despite_dependents(sandbox, calls, system, manager):
    setup_run(sandbox, "install", "myapp")
    job = run_job(manager, UninstallDependenciesJob(system, ["mylib"], force=True))
    assert job.state == "succeeded", job.error
    assert job.result["removed"] == ["mylib"]
    assert "myapp" in sandbox.installed() and "mylib" not in sandbox.installed()
    assert "--force-depends" in calls.argvs()[0]


# ================================================ 10. dests and fast reads
def test_install_to_the_sd_dest(sandbox, calls, system, manager):
    job = run_job(manager, InstallDependenciesJob(system, ["myapp"], dest="sd"))
    assert job.state == "succeeded", job.error
    assert calls.argvs()[0][-4:] == ["-d", "sd", "install", "myapp"]
    assert set(sandbox.installed("sd")) == {"myapp", "mylib"}  # libc on root satisfies the rest
    assert set(sandbox.installed("root")) == {"libc"}
    assert sandbox.path("/usr/bin/myapp", dest="sd").is_file()
    assert not sandbox.path("/usr/bin/myapp").exists()
    assert job.params()["dest"] == "sd"


def test_default_dest_comes_from_the_system(sandbox, calls, manager):
    system = make_system(sandbox, dest="sd")
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"]))
    assert job.state == "succeeded" and "tool-a" in sandbox.installed("sd")


def test_installed_and_which_installed_read_status_without_spawning(sandbox, calls, system, manager):
    setup_run(sandbox, "-d", "sd", "install", "myapp")
    setup_run(sandbox, "install", "failpkg", check=False)  # exits 255, half-configured, as opkg does
    assert system.which_installed(["myapp", "mylib", "libc", "failpkg", "nosuchpkg"]) == {
        "myapp": "1.2.3-1", "mylib": "1.0-1", "libc": "1.2.4-4", "failpkg": None, "nosuchpkg": None}
    installed = system.installed()
    assert installed["myapp"].dest == "sd" and installed["libc"].dest == "root"
    assert installed["failpkg"].state == "unpacked"
    assert installed["mylib"].auto_installed
    assert calls.entries() == []
    # A half-configured package is not "already present": it is reinstalled.
    job = run_job(manager, InstallDependenciesJob(system, ["failpkg"], atomic=False))
    assert job.error_code == errors.SCRIPT_FAILED
    assert "--force-reinstall" in calls.argvs()[0]


# ====================================== 11. kept records hold no run state
def _held(job) -> list:
    """What a job's own attributes refer to (its slots and any __dict__),
    the OpkgSystem it shares with every other job left out."""
    names = {name for cls in type(job).__mro__ for name in cls.__dict__.get("__slots__", ())}
    values = [getattr(job, name) for name in sorted(names - {"system", "__dict__", "__weakref__"})
              if hasattr(job, name)]
    return values + list(getattr(job, "__dict__", {}).values())


_RUN_STATE = (RunControl, threading.Event, logging.Logger, StepProgress, set)


def test_kept_install_records_hold_no_run_state(sandbox, calls, system, manager, monkeypatch):
    """Issue 15: the daemon keeps up to max_finished finished records and
    max_queued queued ones; a run's control (threading.Events), logger,
    step progress and package sets live only while do_work runs."""
    # Set before any run: the opkg helper takes the environment when it starts.
    monkeypatch.setenv("OPKG_STANDIN_HANG", "download:tool-a")
    done = run_job(manager, InstallDependenciesJob(system, ["myapp"]))  # really runs opkg
    assert done.state == "succeeded", done.error
    present = run_job(manager, InstallDependenciesJob(system, ["libc"]))  # runs no opkg
    failed = run_job(manager, InstallDependenciesJob(system, ["tool-c", "failpkg"]))  # and rolls back
    assert failed.state == "failed" and failed.result["rolled_back"]
    stopped = InstallDependenciesJob(system, ["tool-a"])
    job_id = manager.execute_job(stopped)
    wait_until(lambda: any(line.startswith("Downloading ") for line in stopped.log), what="the download")
    assert manager.cancel_job(job_id)
    assert manager.wait(job_id, JOB_WAIT).state == "cancelled"
    queued = InstallDependenciesJob(system, ["tool-b"])
    manager.submit(queued, hold=True)
    for job in (done, present, failed, stopped, queued, UninstallDependenciesJob(system, ["myapp"])):
        kept = [value for value in _held(job) if isinstance(value, _RUN_STATE)]
        assert kept == [], f"{job!r} keeps {kept}"
        assert vars(job) == {}, f"{job!r} has attributes outside its slots: {sorted(vars(job))}"
    assert manager.cancel_job(queued.id)  # a queued job is still cancelled at once


def test_a_run_control_makes_no_event_until_it_needs_one():
    control = RunControl()
    assert not [o for o in gc.get_referents(control) if isinstance(o, threading.Event)]
    assert control.sleep(0) is False and not control.stopped
    control.stop("timeout")
    assert control.stopped and control.reason == "timeout" and control.sleep(5) is True


# ========================================================== StepProgress
def test_step_progress_maps_opkg_steps_below_the_ceiling():
    steps = StepProgress(2)
    assert steps.fraction() == 0.0
    fraction, message = steps.advance(ProgressEvent(INSTALLING, "a", "1.0"))
    assert message == "installing a" and fraction == pytest.approx(CEILING / 6)
    assert steps.advance(ProgressEvent(DOWNLOADING, "a", "file:///a.ipk"))[0] == pytest.approx(CEILING * 2 / 6)
    assert steps.advance(ProgressEvent(INSTALLING, "a"))[0] == pytest.approx(CEILING * 2 / 6)  # no going back
    steps.advance(ProgressEvent(CONFIGURING, "a"))
    steps.advance(ProgressEvent(CONFIGURING, "b"))
    assert steps.fraction() == pytest.approx(CEILING)
    assert steps.advance(ProgressEvent(CONFIGURING, "c"))[0] == pytest.approx(CEILING)  # unplanned: capped
    assert steps.fraction() < 1.0


def test_step_progress_ignores_lines_without_a_step():
    steps = StepProgress(1)
    assert steps.advance(ProgressEvent("up_to_date", "a")) is None
    assert steps.advance(ProgressEvent("note", None, "Offline root mode: not running a.postinst")) is None
    assert steps.fraction() == 0.0
    fraction, message = steps.advance(ProgressEvent(DOWNLOADING, None, "file:///x"))
    assert message == "downloading ?" and 0 < fraction < CEILING


def test_step_progress_with_a_start_and_one_step_per_package():
    steps = StepProgress(0, start=0.5, steps=1)  # expected is at least one
    assert steps.fraction() == 0.5
    fraction, message = steps.advance(ProgressEvent(REMOVING, "a", "root"))
    assert message == "removing a" and fraction == pytest.approx(CEILING)
    feeds = StepProgress(3, steps=1)
    assert feeds.advance(ProgressEvent(DOWNLOADING, "base", "file:///f/Packages.gz"))[0] == pytest.approx(CEILING / 3)
    assert feeds.advance(ProgressEvent(UPDATED, "base", "/x/base")) == (pytest.approx(CEILING / 3),
                                                                        "updated lists of base")
    assert feeds.advance(ProgressEvent(DOWNLOADING, "luci", "file:///l/Packages.gz"))[0] == pytest.approx(
        CEILING * 2 / 3)

