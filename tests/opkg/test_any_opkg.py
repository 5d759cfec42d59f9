"""The opkg jobs against the stand-in and, when PINEAPPLE_TEST_OPKG names
it, against real opkg-lede: what a job reports and rolls back comes from
its own opkg runs, and a cancel or timeout at any stage leaves the root
byte-for-byte as it was (apart from opkg's lists and lock).

No stand-in fault knob here (except where a test says so): the slow and
stuck stages are real maintainer scripts (run with --force-postinstall) and
a fake ``wget`` on PATH serving an http:// feed, which both opkgs use.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from pineapple import errors
from pineapple.jobs import JobManager
from pineapple.jobs.clock import FakeClock
from pineapple.opkg import InstallDependenciesJob, UninstallDependenciesJob
from tests.conftest import feed_packages
from tests.fixtures.opkgs import OPKGS
from tests.opkg.helpers import (
    JOB_WAIT,
    STANDIN_PATH,
    end_process,
    make_system,
    opkg_argv,
    run_job,
    serve_feed_over_fake_http,
    snapshot_diff,
    tree_snapshot,
    wait_until,
)

# How many times each scenario runs (bench: PINEAPPLE_TEST_OPKG_REPEAT=200).
REPEAT = int(os.environ.get("PINEAPPLE_TEST_OPKG_REPEAT", "2"))
# A maintainer script that says it started, then waits (bounded) for a file.
WAITING_SCRIPT = """#!/bin/sh
touch {started}
i=0
while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
"""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> Iterator[JobManager]:
    """Job timeouts on a fake clock: a test times a job out by advancing it."""
    manager = JobManager("test-any-opkg", workers=2, clock=clock)
    yield manager
    manager.shutdown(wait=True, timeout=15)


class Gate:
    """Files a maintainer script touches (``started``) and waits for (``release``)."""

    def __init__(self, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.started, self.release = directory / "started", directory / "release"

    def script(self) -> str:
        return WAITING_SCRIPT.format(started=self.started, release=self.release)

    def open(self) -> None:
        self.release.touch()

    def reset(self) -> None:
        for path in (self.started, self.release):
            if path.exists():
                path.unlink()


@pytest.fixture
def gate(tmp_path: pathlib.Path) -> Gate:
    return Gate(tmp_path / "gate")


@pytest.fixture
def root(tmp_path: pathlib.Path, gate: Gate, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The usual feed plus ``holder`` (needs mylib; its postinst waits at
    the gate) and ``slowpkg`` (needs slowdep; the same postinst)."""
    packages = [*feed_packages(),
                PackageSpec("holder", "1.0-1", depends=["mylib"], scripts={"postinst": gate.script()}),
                PackageSpec("slowdep", "1.0-1", depends=["libc"],
                            files={"/usr/lib/slowdep/deep/lib.so": b"slowdep\n"}),
                PackageSpec("slowpkg", "1.0-1", depends=["slowdep"], scripts={"postinst": gate.script()},
                            files={"/usr/share/slowpkg/data/a": b"a\n", "/etc/slowpkg.conf": b"x=1\n"},
                            conffiles=["/etc/slowpkg.conf"])]
    sb = Sandbox.create(tmp_path / "sb", packages=packages, installed=["libc"])
    monkeypatch.setenv("TMPDIR", str(sb.tmp_dir))  # opkg's temp dirs (and a stopped run's) stay in the sandbox
    return sb


def system_for(sb: Sandbox, binary: str, **settings: object):
    return make_system(sb, binary=binary, **settings)


class OtherOpkg:
    """Another process (LuCI, a cron script) running ``opkg install NAME``
    (or ``remove``) whose postinst (prerm) waits at the gate, so it holds
    opkg's lock until the gate opens."""

    def __init__(self, binary: str, sb: Sandbox, gate: Gate, name: str, command: str = "install") -> None:
        env = sb.env(call_log=None)
        self.gate = gate
        self.proc = subprocess.Popen(opkg_argv(binary, sb, "--force-postinstall", command, name), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        wait_until(lambda: gate.started.exists() or self.proc.poll() is not None, timeout=30,
                   what="the other opkg to reach its postinst")
        assert self.proc.poll() is None, self.proc.communicate()

    def finish(self) -> tuple[int, str, str]:
        self.gate.open()
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def close(self) -> None:
        self.gate.open()
        end_process(self.proc)


@pytest.fixture
def other_opkgs() -> Iterator[list[OtherOpkg]]:
    started: list[OtherOpkg] = []
    yield started
    for other in started:
        other.close()


def wait_for_lock_wait(manager: JobManager, job_id: str):
    job = manager.get_job(job_id, remove_if_complete=False)
    wait_until(lambda: job.progress.message.startswith("waiting for opkg's lock") or job.is_complete,
               timeout=JOB_WAIT, what="the job to wait for opkg's lock")
    assert not job.is_complete, job.error
    return job


def run_behind(manager: JobManager, job, other, other_opkgs: list):
    """Run ``job`` while ``other`` (another process's opkg) holds the lock:
    the job waits for it, ``other`` then ends cleanly, the job finishes."""
    other_opkgs.append(other)
    job_id = manager.execute_job(job)
    wait_for_lock_wait(manager, job_id)
    assert other.finish()[0] == 0
    return manager.wait(job_id, JOB_WAIT)


# ============================================ error text is never lost
@pytest.mark.parametrize("binary", OPKGS)
def test_uninstalling_a_needed_package_always_says_has_dependents(root, binary, manager):
    root.run("install", "myapp", check=True)
    system = system_for(root, binary)
    for _ in range(REPEAT):
        job = run_job(manager, UninstallDependenciesJob(system, ["mylib"]))
        assert job.error_code == errors.HAS_DEPENDENTS, job.error
        assert job.result["dependents"] == {"mylib": ["myapp"]}
    assert {"myapp", "mylib"} <= set(root.installed())


# ===================================================== the lock and attribution
@pytest.mark.parametrize("binary", OPKGS)
def test_an_install_waits_for_another_opkg_then_succeeds(root, binary, manager, gate, other_opkgs):
    system = system_for(root, binary)
    for _ in range(REPEAT):
        gate.reset()
        job = run_behind(manager, InstallDependenciesJob(system, ["tool-a"]),
                         OtherOpkg(binary, root, gate, "holder"), other_opkgs)
        assert job.state == "succeeded", job.error
        assert job.result["installed"] == ["tool-a"] and job.result["dependencies"] == []
        assert any(line.startswith("waited for opkg's lock") for line in job.log)
        root.run("remove", "holder", "tool-a", check=True)


@pytest.mark.parametrize("binary", OPKGS)
@pytest.mark.parametrize("atomic_failure", [False, True], ids=["succeeds", "rolls-back"])
def test_what_another_process_installs_during_the_lock_wait_is_not_ours(root, binary, manager, gate,
                                                                        other_opkgs, atomic_failure):
    # The other process installs holder and, for it, mylib; our job wants
    # myapp (which needs mylib) and, to fail, a package no feed has.
    system = system_for(root, binary)
    wanted = ["myapp", "nosuchpkg"] if atomic_failure else ["myapp"]
    for _ in range(REPEAT):
        gate.reset()
        job = run_behind(manager, InstallDependenciesJob(system, wanted),
                         OtherOpkg(binary, root, gate, "holder"), other_opkgs)
        assert job.result["dependencies"] == []  # mylib came from the other process
        if atomic_failure:
            assert job.error_code == errors.UNKNOWN_PACKAGE, job.error
            assert job.result["rolled_back"] == ["myapp"]
            assert "myapp" not in root.installed()
        else:
            assert job.state == "succeeded", job.error
            assert job.result["installed"] == ["myapp"]
        assert {"holder", "mylib"} <= set(root.installed())
        root.run("remove", "--autoremove", "--force-depends", "holder", "myapp", "mylib", check=True)


@pytest.mark.parametrize("binary", OPKGS)
def test_what_another_process_removes_during_the_lock_wait_is_not_ours(root, binary, manager, gate, other_opkgs):
    # The other process removes unholder (its prerm waits at the gate, so
    # it holds the lock); our job uninstalls myapp and its orphan mylib.
    root.add_package(PackageSpec("unholder", "1.0-1", depends=["libc"], scripts={"prerm": gate.script()}))
    root.run("update", check=True)
    system = system_for(root, binary)
    for _ in range(REPEAT):
        gate.reset()
        root.run("install", "unholder", "myapp", check=True)
        job = run_behind(manager, UninstallDependenciesJob(system, ["myapp"]),
                         OtherOpkg(binary, root, gate, "unholder", command="remove"), other_opkgs)
        assert job.state == "succeeded", job.error
        assert job.result["removed"] == ["myapp"] and job.result["autoremoved"] == ["mylib"]
        assert "unholder" not in root.installed()


# ======================== cancel and timeout leave the root as it was
def stop_job(manager: JobManager, clock: FakeClock, job_id: str, how: str):
    """Cancel the job, or let its (fake-clock) timeout of 60 s expire; the final job."""
    if how == "cancel":
        assert manager.cancel_job(job_id)
    else:
        clock.advance(61)
    return manager.wait(job_id, JOB_WAIT)


STOPPED = {"cancel": (errors.CANCELLED, "cancelled while running opkg"),
           "timeout": (errors.TIMEOUT, "timed out while running opkg")}


@pytest.mark.parametrize("binary", OPKGS)
@pytest.mark.parametrize("how", sorted(STOPPED))
def test_a_stop_during_a_slow_postinst_leaves_the_root_as_it_was(root, binary, manager, clock, gate, how):
    code, message = STOPPED[how]
    before = tree_snapshot(root.root)
    system = system_for(root, binary, extra_args=["--force-postinstall"])
    for _ in range(REPEAT):
        gate.reset()
        job_id = manager.execute_job(InstallDependenciesJob(system, ["slowpkg"], timeout=60))
        wait_until(lambda: gate.started.exists(), timeout=JOB_WAIT, what="slowpkg's postinst")
        assert root.installed() == {"libc": "1.2.4-4"}  # opkg writes its database at the end only
        job = stop_job(manager, clock, job_id, how)
        assert job.error_code == code, job.error
        assert job.state == ("cancelled" if how == "cancel" else "failed")
        assert job.result["failed"] == {"slowpkg": code}
        assert sorted(job.result["rolled_back"]) == ["slowdep", "slowpkg"]
        assert job.error.startswith(message)
        assert "Interrupted. Writing out status database." in job.log  # SIGINT, not SIGTERM
        assert not any("job failed" in line for line in job.log)
        assert snapshot_diff(before, tree_snapshot(root.root)) == {}, root.status_path().read_text()


@pytest.mark.parametrize("binary", OPKGS)
@pytest.mark.parametrize("how", sorted(STOPPED))
def test_a_stop_during_a_download_leaves_the_root_as_it_was(root, binary, manager, clock, tmp_path, how):
    # tool-a is unpacked first; the download of tool-b then hangs.
    code, message = STOPPED[how]
    fake = tmp_path / "fakebin"
    serve_feed_over_fake_http(root, fake, hang_name="tool-b_")
    before = tree_snapshot(root.root)
    system = system_for(root, binary, env_path=f"{fake}{os.pathsep}{STANDIN_PATH}")
    for attempt in range(REPEAT):
        job_id = manager.execute_job(InstallDependenciesJob(system, ["tool-a", "tool-b"], update="never",
                                                            timeout=60))
        downloads = attempt + 1
        wait_until(lambda: (fake / "wget.log").exists()
                   and (fake / "wget.log").read_text().count("tool-b_") == downloads,  # noqa: B023 - used at once
                   timeout=JOB_WAIT, what="the tool-b download")
        job = stop_job(manager, clock, job_id, how)
        assert job.error_code == code, job.error
        assert job.result["failed"] == {"tool-a": code, "tool-b": code}
        assert job.result["rolled_back"] == ["tool-a"]
        assert job.error.startswith(message)
        assert not any("job failed" in line for line in job.log)
        assert snapshot_diff(before, tree_snapshot(root.root)) == {}, root.status_path().read_text()


@pytest.mark.parametrize("binary", OPKGS)
def test_the_runner_timeout_during_a_download_is_a_timeout_too(root, binary, manager, tmp_path):
    fake = tmp_path / "fakebin"
    serve_feed_over_fake_http(root, fake, hang_name="tool-a_")
    before = tree_snapshot(root.root)
    system = system_for(root, binary, env_path=f"{fake}{os.pathsep}{STANDIN_PATH}", timeout=1.0)
    job = run_job(manager, InstallDependenciesJob(system, ["tool-a"], update="never"))
    assert job.error_code == errors.TIMEOUT, job.error
    assert job.result["failed"] == {"tool-a": errors.TIMEOUT}
    assert snapshot_diff(before, tree_snapshot(root.root)) == {}


def test_cancel_during_an_unpack_leaves_the_root_as_it_was(root, manager, monkeypatch):
    # Stand-in only (knob OPKG_STANDIN_UNPACK_DELAY): opkg blocks SIGINT while
    # it unpacks a package, so the stop waits for that unpack and the
    # database then lists the package for the rollback.
    monkeypatch.setenv("OPKG_STANDIN_UNPACK_DELAY", "0.5")
    before = tree_snapshot(root.root)
    job_id = manager.execute_job(InstallDependenciesJob(make_system(root), ["slowpkg"]))
    job = manager.get_job(job_id, remove_if_complete=False)
    wait_until(lambda: any(line.startswith("Downloading ") and "slowdep" in line for line in job.log),
               timeout=JOB_WAIT, what="the slowdep download")
    assert manager.cancel_job(job_id)
    job = manager.wait(job_id, JOB_WAIT)
    assert job.state == "cancelled" and job.result["failed"] == {"slowpkg": errors.CANCELLED}
    assert job.result["rolled_back"]  # at least slowdep had been unpacked when SIGINT was handled
    assert snapshot_diff(before, tree_snapshot(root.root)) == {}, root.status_path().read_text()
