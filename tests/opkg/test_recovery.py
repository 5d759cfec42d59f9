"""pineapple.opkg.recovery against the stand-in: which process group is ours
(pid plus start time), and what an intent read back from the journal makes
recovery remove (only what the interrupted job added, only package names)."""
from __future__ import annotations

import subprocess
import sys

from pineapple.opkg.recovery import recover
from pineapple.opkg.runner import is_our_group, process_start_time
from tests.opkg.helpers import end_process, make_system


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
    (sandbox.root / "usr/bin").mkdir(exist_ok=True)
    recovery = recover(make_system(sandbox), {"op": "install", "phase": "install", "packages": ["myapp"],
                                              "atomic": True, "absent_before": ["myapp", "tool-b"], "opkg": None})
    assert recovery.report["debris"] == ["myapp"] and recovery.report["removed"] == ["myapp"]
    assert not (sandbox.root / "usr/bin/myapp").exists() and not list(sandbox.info_dir().glob("myapp.*"))
    assert (sandbox.root / "usr/bin").is_dir()  # directories stay, as opkg leaves them
    assert sorted(sandbox.installed()) == ["libc", "mylib", "tool-a"]
    assert (sandbox.root / "usr/share/tool-a/README").exists()
