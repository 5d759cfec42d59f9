"""OpkgSystem on a real sandbox: its fast readers never spawn opkg, its
list-age and space answers, and run() understanding the stand-in's output."""
from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from devtools.sandbox import Sandbox
from pineapple import errors
from pineapple.errors import JobError
from pineapple.opkg.runner import RunControl
from pineapple.opkg.system import OpkgSystem, is_lock_busy
from tests.fixtures.opkgs import OPKGS
from tests.opkg.helpers import CallLog, lock_holder, make_system

DAY = 86400.0


@pytest.fixture
def system(sandbox: Sandbox, calls: CallLog) -> OpkgSystem:
    return make_system(sandbox)


def test_from_daemon_settings():
    settings = SimpleNamespace(binary="/usr/bin/opkg", offline_root="/mnt/root", conf="/etc/opkg.conf",
                               extra_args=("--force-space",), timeout=300.0, lock_wait=60.0,
                               env_path="/usr/sbin:/usr/bin", dest="sd", lists_max_age=3600.0)
    system = OpkgSystem.from_settings(settings)
    runner = system.settings
    assert (runner.binary, runner.offline_root, runner.conf) == ("/usr/bin/opkg", "/mnt/root", "/etc/opkg.conf")
    assert runner.extra_args == ["--force-space"]
    assert (runner.timeout, runner.lock_wait, runner.env_path) == (300.0, 60.0, "/usr/sbin:/usr/bin")
    assert (system.default_dest, system.lists_max_age) == ("sd", 3600.0)
    assert system.runner.settings is runner


def test_readers_never_spawn_opkg(sandbox, calls, system):
    sandbox.run("install", "myapp", env=sandbox.env(call_log=None), check=True)
    conf = system.conf()
    assert conf.offline_root == str(sandbox.root) and [f.name for f in conf.feeds] == ["base"]
    assert system.dest_names() == ["root", "sd"]
    assert set(system.installed()) == {"libc", "mylib", "myapp"}
    assert system.which_installed(["myapp", "tool-a"]) == {"myapp": "1.2.3-1", "tool-a": None}
    available = system.available()
    assert available["broken"].depends[0][0].name == "does-not-exist"
    assert available["bigpkg"].installed_size == 4 * 1024**4
    assert not system.lists_are_stale()
    assert system.space_shortfall(["tool-a"], "") is None
    assert calls.entries() == []
    assert not os.path.exists(sandbox.lock_path)  # reading takes no lock either


def test_lists_age(sandbox, calls):
    now = time.time()
    assert not make_system(sandbox, clock=lambda: now).lists_are_stale()
    assert make_system(sandbox, clock=lambda: now + 2 * DAY).lists_are_stale()
    assert not make_system(sandbox, clock=lambda: now + 2 * DAY, lists_max_age=3 * DAY).lists_are_stale()
    old = now - 2 * DAY
    for path in sandbox.lists_path.iterdir():
        os.utime(path, (old, old))
    assert make_system(sandbox).lists_are_stale()
    for path in sandbox.lists_path.iterdir():
        path.unlink()
    assert make_system(sandbox, lists_max_age=10 * DAY).lists_are_stale()  # missing is always stale
    assert calls.entries() == []


def test_space_shortfall(sandbox, system):
    needed, free, path = system.space_shortfall(["bigpkg"], "")
    assert needed == 4 * 1024**3 and 0 <= free < needed
    assert path == str(sandbox.root)
    assert system.space_shortfall(["bigpkg"], "sd")[2] == str(sandbox.root / "mnt" / "sd")
    assert system.space_shortfall(["myapp", "tool-a"], "") is None
    assert system.space_shortfall(["nosuchpkg"], "") is None  # unknown: opkg will say so itself


def test_conf_error_is_a_job_error(sandbox, calls, tmp_path):
    system = make_system(sandbox, conf=str(tmp_path / "missing.conf"))
    with pytest.raises(JobError) as caught:
        system.installed()
    assert caught.value.code == errors.OPKG_FAILED
    assert "cannot read opkg configuration" in str(caught.value)


def test_run_understands_opkg(sandbox, calls, system):
    lines: list[str] = []
    run, outcome = system.run(["install", "myapp", "nosuchpkg"], lines.append, RunControl())
    assert run.rc == 255 and not outcome.ok
    assert outcome.code == errors.UNKNOWN_PACKAGE
    assert outcome.failures == {"nosuchpkg": errors.UNKNOWN_PACKAGE}
    assert "Configuring myapp." in lines  # the good one of the same call installed
    assert system.which_installed(["myapp"]) == {"myapp": "1.2.3-1"}
    run, outcome = system.run(["update"], lines.append, RunControl())
    assert outcome.ok and outcome.code is None
    assert calls.commands() == ["install", "update"]


def test_run_names_the_list_feed(sandbox, calls, system):
    sandbox.break_feed()
    run, outcome = system.run(["update"], lambda line: None, RunControl())
    assert run.rc == 1  # the number of feeds that failed
    assert outcome.code == errors.DOWNLOAD_FAILED
    assert "base" in outcome.failures


def test_is_lock_busy(sandbox, calls):
    system = make_system(sandbox, lock_wait=0)
    with lock_holder(sandbox):
        run, outcome = system.run(["list-installed"], lambda line: None, RunControl())
    assert is_lock_busy(run) and outcome.code == errors.LOCK_BUSY
    assert run.lock_waits == 0 and len(calls.entries()) == 1  # lock_wait 0: no retry
    run, outcome = system.run(["list-installed"], lambda line: None, RunControl())
    assert run.rc == 0 and not is_lock_busy(run)
    assert "libc - 1.2.4-4" in run.stdout


# ------------------------------------------------------- parsed once, kept fresh
OTHER_OPKGS = OPKGS


def later() -> float:
    """A wall clock a minute ahead, so every file of the sandbox has settled
    and the cache trusts what it read (see pineapple/opkg/filecache.py)."""
    return time.time() + 60


def other_opkg(sandbox: Sandbox, binary: str, *args: str) -> None:
    """Another opkg process changes the root (as LuCI or a shell would)."""
    import subprocess

    argv = sandbox.argv(*args)
    if binary:
        argv = [binary, *argv[1:]]
    subprocess.run(argv, env=sandbox.env(), check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("binary", OTHER_OPKGS)
def test_status_parsed_once_and_a_change_by_another_opkg_is_seen(sandbox, calls, binary):
    system = make_system(sandbox, clock=later)
    assert system.which_installed(["myapp", "libc"]) == {"myapp": None, "libc": "1.2.4-4"}
    for _ in range(5):
        assert "myapp" not in system.installed()
    assert system._installed.loads == 1 and system._conf.loads == 1
    other_opkg(sandbox, binary, "install", "myapp")
    assert system.which_installed(["myapp", "mylib"]) == {"myapp": "1.2.3-1", "mylib": "1.0-1"}
    assert system._installed.loads == 2 and system._conf.loads == 1
    other_opkg(sandbox, binary, "remove", "myapp")
    assert system.which_installed(["myapp"]) == {"myapp": None}


def test_a_dest_added_in_the_conf_dir_is_seen(sandbox, calls):
    system = make_system(sandbox, clock=later)
    assert system.dest_names() == ["root", "sd"]
    extra = sandbox.root / "etc" / "opkg" / "usb.conf"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("dest usb /mnt/usb\n")
    assert system.dest_names() == ["root", "sd", "usb"]
    status = sandbox.root / "mnt" / "usb" / "usr" / "lib" / "opkg" / "status"
    status.parent.mkdir(parents=True)
    status.write_text("Package: onusb\nVersion: 2-1\nStatus: install user installed\n")
    assert system.which_installed(["onusb"]) == {"onusb": "2-1"}


def test_installed_answers_are_copies(sandbox, calls):
    system = make_system(sandbox, clock=later)
    system.installed().clear()
    assert "libc" in system.installed()
