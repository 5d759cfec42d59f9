"""``submit`` with ``wait``: a full queue is waited out, in order, instead of
answered ``queue_full`` (real daemon, max_queued 1, a hung opkg run)."""
from __future__ import annotations

import select
import threading

import pytest

from pineapple.api.client import JobClient
from pineapple.api.protocol import ApiError
from tests.api.helpers import Line, submit, wait_complete, wait_until

HANG = "tool-c"


@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons(["--set", "daemon.max_queued=1"], env={"OPKG_STANDIN_HANG": f"download:{HANG}"})


@pytest.fixture
def full(jobd):
    """The opkg lane busy (a hung install) and the one queue place taken;
    yields the queued job's id; cancels everything afterwards."""
    hung = submit(jobd.socket, job="install", packages=[HANG])["job_id"]
    wait_until(lambda: stats(jobd)["jobs"]["running"] == 1, what="the hung install to run")
    queued = submit(jobd.socket, job="install", packages=["tool-a"])["job_id"]
    yield queued
    with Line(jobd.socket) as line:
        for job in line.payload({"action": "list_jobs", "state": ["queued", "running"]})["jobs"]:
            line.payload({"action": "cancel", "job_id": job["job_id"]})
    wait_complete(jobd.socket, hung)


def stats(jobd) -> dict:
    with Line(jobd.socket) as line:
        return line.payload({"action": "stats"})


def nothing_to_read(line: Line, seconds: float = 0.3) -> bool:
    if line.buf:
        return False
    readable, _, _ = select.select([line.sock], [], [], seconds)
    return not readable


def test_without_wait_a_full_queue_is_refused(jobd, full):
    with Line(jobd.socket) as line:
        answer = line.request({"action": "submit", "job": "install", "packages": ["tool-b"]})
    assert answer["ok"] is False and answer["code"] == "queue_full"


def test_a_waiting_submit_is_answered_once_there_is_room_and_keeps_the_order(jobd, full):
    with Line(jobd.socket) as line:
        line.send({"action": "submit", "job": "install", "packages": ["tool-b"], "wait": True, "id": 1})
        line.send({"action": "ping", "id": 2})  # pipelined behind the waiting submit
        assert nothing_to_read(line), "answered while the queue was still full"
        assert stats(jobd)["waiting"] == 1
        with Line(jobd.socket) as other:
            assert other.payload({"action": "cancel", "job_id": full})["cancelled"] is True
        first, second = line.read(), line.read()
    assert first["id"] == 1 and first["ok"] and first["payload"]["state"] == "queued"
    assert second == {"ok": True, "payload": {"pong": True, "version": second["payload"]["version"]}, "id": 2}


def test_waiting_submits_are_served_oldest_first(jobd, full):
    with Line(jobd.socket) as a, Line(jobd.socket) as b:
        a.send({"action": "submit", "job": "install", "packages": ["tool-b"], "wait": True})
        wait_until(lambda: nothing_to_read(a, 0.05), what="a to wait")
        b.send({"action": "submit", "job": "install", "packages": ["myapp"], "wait": True})
        with Line(jobd.socket) as other:
            other.payload({"action": "cancel", "job_id": full})
        served = a.read()
        assert served["ok"] and nothing_to_read(b), "the later waiter overtook the earlier one"
        with Line(jobd.socket) as other:
            other.payload({"action": "cancel", "job_id": served["payload"]["job_id"]})
        assert b.read()["ok"]


def test_a_bounded_wait_ends_with_queue_full(jobd, full):
    with Line(jobd.socket) as line:
        answer = line.request({"action": "submit", "job": "install", "packages": ["tool-b"], "wait": 0.3})
        assert answer["ok"] is False and answer["code"] == "queue_full"
        assert "after waiting" in answer["error"]
        assert line.request({"action": "ping"})["ok"]  # the connection carries on


@pytest.mark.parametrize("wait", [0, -1, 3601, "yes", [1]])
def test_bad_wait_values_are_refused(jobd, wait):
    with Line(jobd.socket) as line:
        answer = line.request({"action": "submit", "job": "install", "packages": ["libc"], "wait": wait})
    assert answer["ok"] is False and answer["code"] == "invalid_field" and "wait" in answer["error"]


def test_a_waiting_client_that_hangs_up_is_forgotten(jobd, full):
    line = Line(jobd.socket)
    line.send({"action": "submit", "job": "install", "packages": ["tool-b"], "wait": True})
    assert nothing_to_read(line, 0.1)
    line.close()
    with Line(jobd.socket) as other:
        other.payload({"action": "cancel", "job_id": full})
    wait_until(lambda: stats(jobd)["waiting"] == 0, what="the queue to empty")
    assert all("tool-b" not in job["params"].get("packages", ())
               for job in Line(jobd.socket).payload({"action": "list_jobs"})["jobs"]
               if job["state"] == "queued")


def test_the_client_waits_for_room(jobd, full):
    client = JobClient(str(jobd.socket), timeout=2.0)
    with pytest.raises(ApiError) as refused:
        client.install(["tool-b"])
    assert refused.value.code == "queue_full"
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(client.install(["tool-b"], wait=True)))
    waiter.start()
    wait_until(lambda: stats(jobd)["connections"] >= 1 and not answers, what="the client to wait")
    with Line(jobd.socket) as other:
        other.payload({"action": "cancel", "job_id": full})
    waiter.join(30)
    assert answers and answers[0]["state"] == "queued"
    client.close()
