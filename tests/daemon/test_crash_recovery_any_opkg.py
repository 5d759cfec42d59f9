"""The two crash rows of issue 13 with the stand-in and with real opkg-lede
(PINEAPPLE_TEST_OPKG; skipped, saying so, without it). No stand-in knob:
the hangs are real maintainer scripts (run under -o with
--force-postinstall), so any opkg shows the same thing."""
from __future__ import annotations

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from tests.api.helpers import poll, submit, wait_state, wait_until
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.device import half_states, opkg_processes_on, unowned_files
from tests.fixtures.opkgs import OPKGS

# prerm hangs once (the rollback's removal), then lets the removal go on.
HANG_ONCE = '#!/bin/sh\nif [ -f "$PKG_ROOT/hang-once" ]; then rm -f "$PKG_ROOT/hang-once"; sleep 3600; fi\nexit 0\n'


@pytest.fixture
def scripted(tmp_path) -> Sandbox:
    return Sandbox.create(tmp_path / "sb", packages=[
        PackageSpec("libc", "1.2.4-4"),
        PackageSpec("hangdep", "1.0-1", depends=["libc"]),
        PackageSpec("hangpost", "1.0-1", depends=["hangdep"], scripts={"postinst": "#!/bin/sh\nsleep 3600\n"}),
        PackageSpec("failhang", "1.0-1", depends=["libc"],
                    scripts={"postinst": "#!/bin/sh\nexit 3\n", "prerm": HANG_ONCE}),
    ], installed=["libc"])


@pytest.fixture
def daemon_on(scripted, tmp_path):
    daemons = []

    def start(binary: str) -> DaemonProcess:
        extra = ["--set", "opkg.extra_args=--force-postinstall"] + (["--opkg-binary", binary] if binary else [])
        daemon = DaemonProcess(scripted, tmp_path / "daemon", extra)
        (tmp_path / "daemon").mkdir(exist_ok=True)
        daemons.append(daemon)
        return daemon.start()

    yield start
    for daemon in daemons:
        daemon.close()
    for pid in opkg_processes_on(scripted):  # a failed test's orphans
        import os
        import signal

        os.kill(pid, signal.SIGKILL)


def wait_log(daemon, job_id: str, text: str, timeout: float = 30) -> None:
    def seen() -> bool:
        with daemon.client() as client:
            return any(text in line for line in client.log(job_id, limit=1000).get("lines", []))

    wait_until(seen, timeout=timeout, what=f"{text!r} in the job's log")


def assert_device_clean(sandbox: Sandbox) -> None:
    assert half_states(sandbox) == {}
    assert unowned_files(sandbox) == []
    assert opkg_processes_on(sandbox) == []


@pytest.mark.parametrize("binary", OPKGS)
def test_kill_while_our_opkg_hangs_in_a_postinst(daemon_on, scripted, binary):
    daemon = daemon_on(binary)
    job_id = submit(daemon.socket, job="install", packages=["hangpost"])["job_id"]
    wait_until(lambda: any(b"sleep" in open(f"/proc/{p}/cmdline", "rb").read() for p in opkg_processes_on(scripted))
               or _sleeping(scripted), what="the postinst to hang")
    daemon.kill()
    assert opkg_processes_on(scripted) or _sleeping(scripted)  # the orphan holds opkg's lock
    daemon.start()
    answer = poll(daemon.socket, job_id)
    recovery = answer["result"]["recovery"]
    assert answer["state"] == "interrupted" and recovery["opkg_stopped"]["signal"] == "SIGINT", answer
    assert sorted(recovery["removed"]) == ["hangdep", "hangpost"], recovery
    assert scripted.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(scripted)
    again = submit(daemon.socket, job="install", packages=["hangdep"])["job_id"]
    done = wait_state(daemon.socket, again, {"succeeded", "failed"}, timeout=30)
    assert done["state"] == "succeeded", done  # not lock_busy


@pytest.mark.parametrize("binary", OPKGS)
def test_kill_between_a_failed_install_and_its_rollback(daemon_on, scripted, binary):
    (scripted.root / "hang-once").write_text("")
    daemon = daemon_on(binary)
    job_id = submit(daemon.socket, job="install", packages=["failhang"])["job_id"]
    wait_log(daemon, job_id, "rolling back: removing failhang")
    wait_until(lambda: not (scripted.root / "hang-once").exists(), what="the rollback's prerm to hang")
    daemon.kill()
    assert "failhang" in scripted.installed()
    daemon.start()
    answer = poll(daemon.socket, job_id)
    recovery = answer["result"]["recovery"]
    assert answer["state"] == "interrupted" and recovery["phase"] == "rollback", answer
    assert recovery["opkg_stopped"]["signal"] == "SIGINT" and recovery["removed"] == ["failhang"], recovery
    assert "removed failhang (left by the interrupted install)" in answer["job_error"]
    assert scripted.installed() == {"libc": "1.2.4-4"}
    assert_device_clean(scripted)


def _sleeping(sandbox: Sandbox) -> bool:
    """A `sleep 3600` of a maintainer script (its command line does not name the root)."""
    import os

    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if cmdline.read() == b"sleep\x003600\x00":
                        return True
            except OSError:
                continue
    return False
