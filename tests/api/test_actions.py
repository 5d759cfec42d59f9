"""Every protocol action against the real daemon and the opkg stand-in.

One daemon serves the module. Jobs that must stay active (running or queued)
hang in the stand-in's download of ``tool-c`` (OPKG_STANDIN_HANG) until the
test cancels them; everything else runs for real.
"""
from __future__ import annotations

import json
import socket

import pytest

from pineapple.jobs.state import ALL_STATES
from tests.api.helpers import Line, poll, submit, wait_complete, wait_state, wait_until

HANG = "tool-c"


@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons(env={"OPKG_STANDIN_HANG": f"download:{HANG}"})


@pytest.fixture
def conn(jobd):
    with Line(jobd.socket) as line:
        yield line


@pytest.fixture
def hung(jobd):
    """A running install that never finishes by itself; cancelled afterwards."""
    job_id = submit(jobd.socket, job="install", packages=[HANG])["job_id"]
    wait_until(lambda: any("Downloading" in line for line in get(jobd, job_id)["log"]),
               what="the hung install to reach its download")
    yield job_id
    with Line(jobd.socket) as line:
        line.payload({"action": "cancel", "job_id": job_id})
    wait_complete(jobd.socket, job_id)


def get(jobd, job_id: str) -> dict:
    with Line(jobd.socket) as line:
        return line.payload({"action": "get_job", "job_id": job_id})


SUMMARY_KEYS = {"job_id", "type", "is_complete", "result", "job_error", "error_code", "state", "progress"}


# ------------------------------------------------------------------- basics
def test_ping(conn):
    assert conn.payload({"action": "ping"}) == {"pong": True, "version": "0.1.0"}


def test_job_types(conn):
    types = {t["name"]: t for t in conn.payload({"action": "job_types"})["types"]}
    assert set(types) == {"install", "uninstall", "update"}
    assert "packages" in types["install"]["params"] and types["install"]["description"]


def test_stats(jobd, conn):
    before = conn.payload({"action": "stats"})
    after = conn.payload({"action": "stats"})
    assert before["pid"] == jobd.proc.pid and before["version"] == "0.1.0"
    assert after["requests"] == before["requests"] + 1
    assert before["connections"] >= 1 and before["workers"] == 2
    assert set(before["jobs"]) == set(ALL_STATES)
    assert before["rss_kib"] > 0 and before["mqtt"] is None
    assert before["limits"] == {"workers": 2, "max_queued": 200, "max_finished": 50, "retention": 600.0,
                                "job_timeout": 1800.0, "shutdown_grace": 30.0, "max_connections": 64,
                                "idle_timeout": 120.0, "max_line": 65536}
    assert set(before["totals"]) == {"submitted", "succeeded", "failed", "cancelled", "interrupted"}
    assert before["waiting"] >= 0


def test_stats_totals_tell_when_a_burst_is_done(jobd, conn):
    before = conn.payload({"action": "stats"})["totals"]
    ids = [conn.payload({"action": "submit", "job": "install", "packages": [name]})["job_id"]
           for name in ("libc", "nosuchpkg")]
    for job_id in ids:
        wait_complete(jobd.socket, job_id)
    after = conn.payload({"action": "stats"})["totals"]
    assert after["submitted"] - before["submitted"] == 2
    assert after["succeeded"] - before["succeeded"] == 1 and after["failed"] - before["failed"] == 1


# ------------------------------------------------------------------- submit
def test_install_runs_and_poll_answers_the_front_end_fields(jobd, conn):
    answer = conn.payload({"action": "submit", "job": "install", "packages": ["myapp"]})
    assert answer["duplicate"] is False and answer["state"] in ("queued", "running")
    final = wait_complete(jobd.socket, answer["job_id"])
    assert set(final) == SUMMARY_KEYS
    assert final["state"] == "succeeded" and final["is_complete"] is True
    assert final["job_error"] is None and final["error_code"] is None
    assert final["result"]["installed"] == ["myapp"] and "mylib" in final["result"]["dependencies"]
    assert final["progress"]["fraction"] == 1.0
    assert conn.payload({"action": "installed", "packages": ["myapp", "mylib", "nope"]})["installed"] == {
        "myapp": "1.2.3-1", "mylib": "1.0-1", "nope": None}


def test_a_failed_install_answers_error_code_and_opkg_text(jobd, conn):
    job_id = conn.payload({"action": "submit", "job": "install", "packages": ["broken"]})["job_id"]
    final = wait_complete(jobd.socket, job_id)
    assert final["state"] == "failed" and final["is_complete"] is True
    assert final["error_code"] == "missing_dependency"
    assert "does-not-exist" in final["job_error"]


def test_uninstall_and_update(jobd, conn):
    wait_complete(jobd.socket, conn.payload({"action": "submit", "job": "install", "packages": ["tool-b"]})["job_id"])
    removal = conn.payload({"action": "submit", "job": "uninstall", "packages": ["tool-b"]})
    final = wait_complete(jobd.socket, removal["job_id"])
    assert final["state"] == "succeeded" and final["result"]["removed"] == ["tool-b"]
    assert conn.payload({"action": "installed", "packages": ["tool-b"]})["installed"] == {"tool-b": None}
    update = wait_complete(jobd.socket, conn.payload({"action": "submit", "job": "update"})["job_id"])
    assert update["state"] == "succeeded" and update["type"] == "update"


def test_a_duplicate_install_answers_the_active_job(jobd, conn, hung):
    again = conn.payload({"action": "submit", "job": "install", "packages": [HANG]})
    assert again["job_id"] == hung and again["duplicate"] is True
    assert again["state"] == "running" and "already running" in again["message"]


# --------------------------------------------------------------------- poll
def test_poll_remove_if_complete(jobd, conn):
    job_id = conn.payload({"action": "submit", "job": "install", "packages": ["libc"]})["job_id"]
    wait_complete(jobd.socket, job_id)
    kept = conn.payload({"action": "poll_job", "job_id": job_id})  # the default keeps it
    assert conn.payload({"action": "poll_job", "job_id": job_id}) == kept
    removed = conn.payload({"action": "poll_job", "job_id": job_id, "remove_if_complete": True})
    assert removed == kept  # answered, then removed
    gone = conn.request({"action": "poll_job", "job_id": job_id})
    assert (gone["ok"], gone["code"]) == (False, "unknown_job")


def test_poll_never_removes_an_active_job(conn, hung):
    summary = conn.payload({"action": "poll_job", "job_id": hung, "remove_if_complete": True})
    assert summary["state"] == "running" and summary["is_complete"] is False
    assert summary["result"] is None and summary["job_error"] is None
    assert conn.payload({"action": "poll_job", "job_id": hung})["state"] == "running"


def test_get_job_has_the_record_and_log_tail(jobd, conn):
    job_id = conn.payload({"action": "submit", "job": "install", "packages": ["otherapp"]})["job_id"]
    wait_complete(jobd.socket, job_id)
    record = conn.payload({"action": "get_job", "job_id": job_id})
    assert SUMMARY_KEYS <= set(record)
    assert record["params"]["packages"] == ["otherapp"] and record["attempts"] == 1
    assert record["resource"] == "opkg" and record["finished_at"] >= record["started_at"] >= record["created_at"]
    assert "$ opkg install otherapp" in record["log"] and "Configuring otherapp." in record["log"]
    assert record["log_total"] == len(record["log"])


# --------------------------------------------------------------------- list
def test_list_jobs_filters_and_pages(jobd, conn, hung):
    done = conn.payload({"action": "submit", "job": "install", "packages": ["libc"]})["job_id"]
    conn.payload({"action": "cancel", "job_id": done})  # queued behind the hung job: finished at once
    wait_complete(jobd.socket, done)
    everything = conn.payload({"action": "list_jobs", "limit": 500})
    assert everything["total"] == len(everything["jobs"]) >= 2
    created = [j["created_at"] for j in everything["jobs"]]
    assert created == sorted(created, reverse=True)  # newest first
    running = conn.payload({"action": "list_jobs", "state": "running"})
    assert [j["job_id"] for j in running["jobs"]] == [hung]
    several = conn.payload({"action": "list_jobs", "state": ["running", "succeeded"], "limit": 500})
    assert {j["state"] for j in several["jobs"]} <= {"running", "succeeded"} and hung in {
        j["job_id"] for j in several["jobs"]}
    by_package = conn.payload({"action": "list_jobs", "package": HANG, "limit": 500})
    assert hung in [j["job_id"] for j in by_package["jobs"]]
    assert all(HANG in j["params"]["packages"] for j in by_package["jobs"])
    by_type = conn.payload({"action": "list_jobs", "type": "update", "limit": 500})
    assert all(j["type"] == "update" for j in by_type["jobs"])
    page = conn.payload({"action": "list_jobs", "offset": 1, "limit": 1})
    assert page["total"] == everything["total"] and (page["offset"], page["limit"]) == (1, 1)
    assert [j["job_id"] for j in page["jobs"]] == [everything["jobs"][1]["job_id"]]
    assert conn.payload({"action": "list_jobs", "offset": 10_000})["jobs"] == []


# ------------------------------------------------------------ cancel/remove
def test_cancel_a_running_job(jobd, conn):
    job_id = conn.payload({"action": "submit", "job": "install", "packages": [HANG]})["job_id"]
    wait_state(jobd.socket, job_id, "running")
    answer = conn.payload({"action": "cancel", "job_id": job_id})
    assert answer["job_id"] == job_id and answer["cancelled"] is True
    final = wait_complete(jobd.socket, job_id)
    assert final["state"] == "cancelled" and final["error_code"] == "cancelled" and final["job_error"]
    again = conn.payload({"action": "cancel", "job_id": job_id})
    assert again["cancelled"] is False and "nothing to cancel" in again["message"]
    assert conn.payload({"action": "installed", "packages": [HANG]})["installed"][HANG] is None


def test_cancel_a_queued_job(jobd, conn, hung):
    queued = conn.payload({"action": "submit", "job": "install", "packages": ["otherapp"]})["job_id"]
    assert poll(jobd.socket, queued)["state"] == "queued"  # behind the hung job (one opkg at a time)
    assert conn.payload({"action": "cancel", "job_id": queued})["cancelled"] is True
    final = wait_complete(jobd.socket, queued)
    assert final["state"] == "cancelled" and "before it started" in final["job_error"]


def test_remove_refuses_an_active_job_and_forgets_a_finished_one(jobd, conn, hung):
    refused = conn.request({"action": "remove", "job_id": hung})
    assert (refused["ok"], refused["code"]) == (False, "job_active")
    job_id = conn.payload({"action": "submit", "job": "update"})["job_id"]
    conn.payload({"action": "cancel", "job_id": job_id})  # queued behind the hung job: cancelled at once
    wait_complete(jobd.socket, job_id)
    assert conn.payload({"action": "remove", "job_id": job_id}) == {"job_id": job_id, "removed": True}
    for action in ("poll_job", "get_job", "cancel", "remove", "follow"):
        gone = conn.request({"action": action, "job_id": job_id})
        assert (gone["ok"], gone["code"]) == (False, "unknown_job"), action
        assert job_id in gone["error"]


def test_prune_forgets_every_finished_job(jobd, conn, hung):
    finished = conn.payload({"action": "submit", "job": "install", "packages": ["libc"], "update": "never"})
    conn.payload({"action": "cancel", "job_id": finished["job_id"]})
    wait_complete(jobd.socket, finished["job_id"])
    answer = conn.payload({"action": "prune"})
    assert answer["removed"] >= 1
    left = conn.payload({"action": "list_jobs", "limit": 500})
    assert [j["job_id"] for j in left["jobs"]] == [hung] and left["total"] == 1
    assert conn.request({"action": "poll_job", "job_id": finished["job_id"]})["code"] == "unknown_job"
    assert conn.payload({"action": "prune"})["removed"] == 0


def test_unknown_ids(conn):
    for action in ("poll_job", "get_job", "cancel", "remove", "follow"):
        answer = conn.request({"action": action, "job_id": "00000000-0000-4000-8000-000000000000"})
        assert (answer["ok"], answer["code"]) == (False, "unknown_job"), action
    assert conn.payload({"action": "ping"})["pong"] is True


# ------------------------------------------------------------------- follow
def read_until_end(line: Line) -> list[dict]:
    events = []
    while True:
        events.append(line.read())
        if events[-1].get("event") == "end":
            return events


def test_follow_streams_state_progress_and_log_until_the_end(jobd, conn, hung):
    # Queued behind the hung job, so the whole life of the job is streamed.
    job_id = conn.payload({"action": "submit", "job": "install", "packages": ["tool-a"]})["job_id"]
    with Line(jobd.socket) as follower:
        assert follower.request({"action": "follow", "job_id": job_id, "id": "f"}) == {
            "ok": True, "payload": {"following": job_id}, "id": "f"}
        first = follower.read()
        assert first["event"] == "state" and first["data"]["state"] == "queued"
        conn.payload({"action": "cancel", "job_id": hung})  # let it run
        events = read_until_end(follower)
        # The connection is an ordinary one again.
        assert follower.request({"action": "ping"})["payload"]["pong"] is True
    kinds = [e["event"] for e in events]
    states = [e["data"]["state"] for e in events if e["event"] == "state"]
    assert states[0] == "running" and states[-1] == "succeeded"
    assert "progress" in kinds and "log" in kinds
    logs = [e["line"] for e in events if e["event"] == "log"]
    assert "$ opkg install tool-a" in logs and "Configuring tool-a." in logs
    fractions = [e["data"]["fraction"] for e in events
                 if e["event"] == "progress" and e["data"]["fraction"] is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    end = events[-1]
    assert end["job_id"] == job_id and end["job"] == poll(jobd.socket, job_id)
    assert all(e["job_id"] == job_id for e in events)


def test_follow_an_already_finished_job(jobd, conn):
    job_id = conn.payload({"action": "submit", "job": "install", "packages": ["libc"]})["job_id"]
    final = wait_complete(jobd.socket, job_id)
    # Pipelined: the ping is answered after the end line.
    conn.send(json.dumps({"action": "follow", "job_id": job_id}).encode() + b"\n"
              + json.dumps({"action": "ping", "id": "after"}).encode() + b"\n")
    assert conn.read()["payload"] == {"following": job_id}
    events = read_until_end(conn)
    assert events[0] == {"event": "state", "job_id": job_id, "data": final}
    assert [e["line"] for e in events if e["event"] == "log"] == get(jobd, job_id)["log"]
    assert events[-1] == {"event": "end", "job_id": job_id, "job": final}
    assert conn.read() == {"ok": True, "payload": {"pong": True, "version": "0.1.0"}, "id": "after"}


def test_follow_without_log_and_requests_sent_while_following(jobd, conn, hung):
    job_id = conn.payload({"action": "submit", "job": "install", "packages": ["tool-a"]})["job_id"]
    with Line(jobd.socket) as follower:
        assert follower.request({"action": "follow", "job_id": job_id, "log": False})["ok"]
        assert follower.read()["event"] == "state"
        follower.send({"action": "ping", "id": 1})  # sent mid-stream: answered after the end line
        follower.send({"action": "poll_job", "job_id": job_id, "id": 2})
        conn.payload({"action": "cancel", "job_id": hung})
        events = read_until_end(follower)
        assert follower.read()["id"] == 1
        second = follower.read()
        assert second["id"] == 2 and second["payload"]["is_complete"] is True
    assert events[-1]["job"]["state"] == "succeeded"


def test_many_followers_of_one_job(jobd, conn, hung):
    followers = [Line(jobd.socket) for _ in range(5)]
    try:
        for follower in followers:
            assert follower.request({"action": "follow", "job_id": hung, "log": False})["ok"]
            assert follower.read()["data"]["state"] == "running"
        conn.payload({"action": "cancel", "job_id": hung})
        ends = [read_until_end(f)[-1] for f in followers]
    finally:
        for follower in followers:
            follower.close()
    assert all(end["job"]["state"] == "cancelled" for end in ends)
    assert len({json.dumps(end, sort_keys=True) for end in ends}) == 1


def test_a_follower_that_half_closes_still_gets_the_stream_then_eof(jobd, conn, hung):
    with Line(jobd.socket) as follower:
        follower.send({"action": "follow", "job_id": hung, "log": False})
        follower.sock.shutdown(socket.SHUT_WR)  # nothing more to say; still listening
        assert follower.read()["payload"] == {"following": hung}
        assert follower.read()["event"] == "state"
        conn.payload({"action": "cancel", "job_id": hung})
        assert read_until_end(follower)[-1]["job"]["state"] == "cancelled"
        assert follower.closed_by_peer()  # and then the daemon hangs up
