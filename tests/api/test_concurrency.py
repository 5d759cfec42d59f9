"""Many clients at once, and the connection limit."""
from __future__ import annotations

import json
import select
import socket
import threading

import pytest

from pineapple.api.client import JobClient
from pineapple.api.protocol import ApiError
from tests.api.helpers import DEADLINE, Line, ping_ok, value_if, wait_until

CLIENTS = 50
PACKAGES = ["tool-a", "tool-b", "tool-c"]


@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons()


def test_fifty_clients_submitting_and_polling_at_once(jobd):
    connected = threading.Barrier(CLIENTS + 1, timeout=DEADLINE)
    finished = threading.Barrier(CLIENTS + 1, timeout=DEADLINE * 2)
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def client_run(index: int) -> None:
        try:
            with JobClient(str(jobd.socket), timeout=DEADLINE) as client:
                client.ping()  # connected and admitted
                connected.wait()
                package = PACKAGES[index % len(PACKAGES)]
                submitted = client.install([package])
                job_id = submitted["job_id"]
                summary = wait_until(lambda: value_if(client.poll(job_id), lambda s: s["is_complete"]),
                                     DEADLINE * 2, 0.02, f"job of client {index}")
                record = client.get(job_id)
                listed = client.list(package=package, limit=500)
                results[index] = {"package": package, "submitted": submitted, "summary": summary,
                                  "record": record, "listed": [j["job_id"] for j in listed["jobs"]]}
                finished.wait()
        except BaseException as exc:
            errors.append(exc)
            connected.abort()
            finished.abort()

    threads = [threading.Thread(target=client_run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    connected.wait()
    with Line(jobd.socket) as line:
        assert line.payload({"action": "stats"})["connections"] == CLIENTS + 1  # all open at once
    finished.wait()
    for thread in threads:
        thread.join(DEADLINE)
    assert not errors, errors
    assert len(results) == CLIENTS
    jobs_per_package: dict[str, set[str]] = {}
    for result in results.values():
        package, summary = result["package"], result["summary"]
        assert summary["job_id"] == result["submitted"]["job_id"] == result["record"]["job_id"]
        assert summary["state"] == "succeeded", summary
        assert package in summary["result"]["installed"] + summary["result"]["already_present"]
        assert result["record"]["params"]["packages"] == [package]
        assert summary["job_id"] in result["listed"]
        jobs_per_package.setdefault(package, set()).add(summary["job_id"])
    # Identical installs submitted while one was active got its id (duplicate).
    duplicates = sum(r["submitted"]["duplicate"] for r in results.values())
    distinct = sum(len(ids) for ids in jobs_per_package.values())
    assert duplicates == CLIENTS - distinct and distinct < CLIENTS
    with JobClient(str(jobd.socket)) as client:
        assert client.installed(PACKAGES) == {p: "1.0-1" for p in PACKAGES}
        wait_until(lambda: client.stats()["connections"] == 1, what="the 50 connections to close")


@pytest.fixture(scope="module")
def limited(module_daemons):
    return module_daemons(["--set", "daemon.max_connections=3"])


def test_max_connections_is_enforced(limited):
    held = [Line(limited.socket) for _ in range(3)]
    try:
        for line in held:
            assert line.request({"action": "ping"})["ok"]  # admitted
        with Line(limited.socket) as fourth:
            answer = fourth.request({"action": "ping"})
            assert (answer["ok"], answer["code"]) == (False, "too_many_connections")
            assert "3" in answer["error"]
            assert fourth.closed_by_peer()
        with pytest.raises(ApiError) as refused, JobClient(str(limited.socket)) as client:
            client.ping()
        assert refused.value.code == "too_many_connections"
        for line in held:  # the admitted ones are unaffected
            assert line.request({"action": "ping"})["ok"]
        held.pop().close()
        wait_until(lambda: _admitted(limited), what="a slot to free up")
    finally:
        for line in held:
            line.close()


def _admitted(daemon) -> bool:
    try:
        return ping_ok(daemon.socket)
    except (EOFError, OSError):
        return False


def test_a_refused_client_can_still_send_its_request_and_read_the_answer(limited):
    held = [Line(limited.socket) for _ in range(3)]
    try:
        for line in held:
            assert line.request({"action": "ping"})["ok"]
        late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        late.settimeout(DEADLINE)
        late.connect(str(limited.socket))
        assert select.select([late], [], [], DEADLINE)[0]  # the daemon has answered: refused
        late.sendall(b'{"action": "ping"}\n')  # a client that writes first: no broken pipe
        data = b""
        for chunk in iter(lambda: late.recv(65536), b""):
            data += chunk
        late.close()
        assert json.loads(data.splitlines()[0])["code"] == "too_many_connections"
        assert len(data.splitlines()) == 1
    finally:
        for line in held:
            line.close()
