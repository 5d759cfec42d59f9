"""The daemon with a state directory that is full, read-only or damaged,
and with a submit that cannot be recorded: it starts, keeps answering,
refuses only what it cannot keep, and stops on SIGTERM."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

from tests.api.helpers import Line, poll, submit, wait_state, wait_until
from tests.fixtures.tmpfs import fill, free, remount_read_only, remount_read_write, tmpfs


def stats(daemon) -> dict:
    with Line(daemon.socket) as line:
        return line.payload({"action": "stats"})


def test_a_full_state_directory_refuses_submits_and_heals(module_daemons, tmp_path):
    with tmpfs(tmp_path / "mnt", size_kib=64) as mnt:
        daemon = module_daemons(extra_args=["--state-dir", str(mnt / "state")])
        before = submit(daemon.socket, job="install", packages=["libc"])["job_id"]
        wait_state(daemon.socket, before, "succeeded")
        fill(mnt)
        with Line(daemon.socket) as line:
            answers = [line.request({"action": "submit", "job": "install", "packages": ["libc"]})
                       for _ in range(40)]  # the journal's last free bytes may take one or two
        refused = [a for a in answers if not a["ok"]]
        assert refused and all(a["code"] == "journal_unavailable" for a in refused), answers[-1]
        assert "No space left on device" in refused[-1]["error"]
        journal = stats(daemon)["journal"]
        assert journal["state"] == "failing" and "ENOSPC" in journal["error"]
        accepted = [a["payload"]["job_id"] for a in answers if a["ok"]]
        assert sum(stats(daemon)["jobs"].values()) == 1 + len(set(accepted))  # refused ones left no trace
        assert poll(daemon.socket, before)["state"] == "succeeded"  # answers go on
        free(mnt)
        wait_until(lambda: stats(daemon)["journal"]["state"] == "ok", what="the journal to heal")
        after = submit(daemon.socket, job="install", packages=["libc"])
        assert after["duplicate"] is False and wait_state(daemon.socket, after["job_id"], "succeeded")
        fill(mnt)
        assert daemon.stop(signal.SIGTERM, timeout=20) == 0  # a failing journal never blocks the stop
        free(mnt)
        daemon.start()
        assert poll(daemon.socket, after["job_id"])["state"] == "succeeded"
        assert daemon.stop() == 0


def test_a_read_only_state_directory_starts_in_memory(module_daemons, tmp_path):
    with tmpfs(tmp_path / "mnt") as mnt:
        (mnt / "state").mkdir()
        remount_read_only(mnt)
        try:
            daemon = module_daemons(extra_args=["--state-dir", str(mnt / "state")])
            assert "IN MEMORY ONLY" in daemon.log() and "journal MEMORY" in daemon.log()
            journal = stats(daemon)["journal"]
            assert journal["state"] == "memory" and "EROFS" in journal["error"]
            cli = subprocess.run([sys.executable, "-m", "pineapple.cli.main", "--socket", str(daemon.socket), "stats"],
                                 capture_output=True, text=True, timeout=30)
            assert "journal: IN MEMORY ONLY (EROFS" in cli.stdout, cli.stdout + cli.stderr
            job_id = submit(daemon.socket, job="install", packages=["libc"])["job_id"]
            assert wait_state(daemon.socket, job_id, "succeeded")
            assert daemon.stop() == 0
        finally:
            remount_read_write(mnt)


def test_a_damaged_journal_never_stops_the_start(module_daemons, tmp_path):
    state = tmp_path / "damaged"
    state.mkdir()
    good = {"job_id": "good", "type": "install", "state": "succeeded", "is_complete": True,
            "result": {"installed": ["libc"]}, "job_error": None, "params": {"packages": ["libc"]}}
    bad = [dict(good, job_id="b1", attempts="x"), dict(good, job_id="b2", log=5),
           dict(good, job_id="b3", progress={"fraction": "half"}), dict(good, job_id="b4", state=7)]
    lines = [json.dumps(good)] + [json.dumps(r) for r in bad] + ['{"job_id":"b5","state":"queued","attempts":1e999}',
                                                                 "junk" * 1000]
    (state / "jobs.journal").write_text("\n".join(lines) + "\n")
    daemon = module_daemons(extra_args=["--state-dir", str(state)])
    assert poll(daemon.socket, "good")["result"] == {"installed": ["libc"]}
    assert stats(daemon)["journal"]["skipped"] == 6
    assert daemon.log().count("skipped 6 unreadable or invalid record line(s)") == 1
    assert daemon.stop() == 0


def test_a_lone_surrogate_hook_message_is_refused_before_anything_is_registered(module_daemons):
    daemon = module_daemons()
    request = (b'{"action": "submit", "job": "install", "packages": ["libc"], '
               b'"on_success": [{"notify": "mqtt", "message": "\\ud800"}]}\n')
    with Line(daemon.socket) as line:
        answer = line.request(request)
    # The socket refuses it as it reads it (invalid_json); MQTT requests reach
    # the hook check, which answers invalid_field (tests/daemon/test_hooks_text.py).
    assert answer["ok"] is False and answer["code"] in ("invalid_json", "invalid_field"), answer
    assert sum(stats(daemon)["jobs"].values()) == 0
    again = submit(daemon.socket, job="install", packages=["libc"])
    assert again["duplicate"] is False and wait_state(daemon.socket, again["job_id"], "succeeded")
    assert daemon.stop(signal.SIGTERM, timeout=20) == 0
