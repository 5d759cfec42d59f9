"""``JobClient`` against the real daemon: reconnecting after restarts,
errors that carry the daemon's codes, ``follow`` and ``wait``."""
from __future__ import annotations

import threading

import pytest

from pineapple.api.client import DaemonUnavailable, JobClient, default_socket_path
from pineapple.api.protocol import ApiError
from tests.api.helpers import DEADLINE, kill_standins, wait_state, wait_until

HANG = "tool-c"


@pytest.fixture(scope="module")
def call_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("calls") / "opkg-calls.jsonl"
    yield path
    kill_standins(path)


@pytest.fixture(scope="module")
def jobd(module_daemons, call_log):
    return module_daemons(env={"OPKG_STANDIN_HANG": f"download:{HANG}", "OPKG_STANDIN_CALL_LOG": str(call_log)})


@pytest.fixture
def client(jobd):
    with jobd.client() as client:
        yield client


@pytest.fixture
def hung(jobd, client):
    job_id = client.install([HANG])["job_id"]
    wait_until(lambda: any(line.startswith("Downloading") for line in client.get(job_id)["log"]),
               what="the hung install to reach its download")
    yield job_id
    client.cancel(job_id)
    client.wait(job_id, timeout=DEADLINE)


def test_errors_carry_the_daemons_codes(client):
    with pytest.raises(ApiError) as unknown:
        client.poll("no-such-job")
    assert unknown.value.code == "unknown_job" and "no-such-job" in unknown.value.message
    with pytest.raises(ApiError) as bad_name:
        client.install(["tool-a", "a;reboot"])
    assert bad_name.value.code == "invalid_package_name" and "a;reboot" in str(bad_name.value)
    with pytest.raises(ApiError) as bad_type:
        client.submit("format-disk")
    assert bad_type.value.code == "unknown_job_type"
    with pytest.raises(ApiError) as bad_action:
        client.request("reboot")
    assert bad_action.value.code == "unknown_action"
    assert client.ping()["pong"] is True  # the connection is still good


def test_unreachable_daemon(tmp_path):
    with JobClient(str(tmp_path / "nothing.sock"), timeout=2) as client, pytest.raises(DaemonUnavailable) as exc:
        client.ping()
    assert exc.value.code == "daemon_unreachable" and "nothing.sock" in exc.value.message
    assert isinstance(exc.value, ApiError)


def test_socket_path_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PINEAPPLE_JOBD_SOCKET", str(tmp_path / "env.sock"))
    assert default_socket_path() == str(tmp_path / "env.sock")
    assert JobClient().path == str(tmp_path / "env.sock")


def test_wait_returns_the_final_summary(client):
    job_id = client.install(["tool-a"])["job_id"]
    events = []
    final = client.wait(job_id, timeout=DEADLINE, on_event=events.append)
    assert final == client.poll(job_id)
    assert final["state"] == "succeeded" and final["is_complete"] is True
    assert events[-1] == {"event": "end", "job_id": job_id, "job": final}
    assert any(e["event"] == "state" for e in events)


def test_wait_for_a_failed_job(client):
    final = client.wait(client.install(["broken"])["job_id"], timeout=DEADLINE)
    assert final["state"] == "failed" and final["error_code"] == "missing_dependency"


def test_wait_times_out(client, hung):
    with pytest.raises(TimeoutError):
        client.wait(hung, timeout=0.3)
    assert client.poll(hung)["state"] == "running"


def test_follow_yields_events_until_the_end(client, hung):
    events = client.follow(hung, log=True, timeout=DEADLINE)
    first = next(events)
    assert first["event"] == "state" and first["data"]["state"] == "running"
    client.cancel(hung)
    rest = list(events)
    assert rest[-1]["event"] == "end" and rest[-1]["job"]["state"] == "cancelled"


def test_the_client_reconnects_after_a_restart(jobd, client):
    before = client.stats()["pid"]
    jobd.restart()  # SIGTERM, then a new process on the same socket
    assert client.ping()["pong"] is True  # the old connection is gone: reconnected
    assert client.stats()["pid"] == jobd.proc.pid != before
    jobd.kill()
    jobd.start()
    job = client.install(["libc"])  # not idempotent, but it never reached the dead daemon: sent again
    assert client.wait(job["job_id"], timeout=DEADLINE)["state"] == "succeeded"


def test_wait_survives_a_crash_and_restart(jobd, client, call_log):
    job_id = client.install([HANG])["job_id"]
    wait_state(jobd.socket, job_id, "running")
    result = {}
    waiter = threading.Thread(target=lambda: result.update(
        final=JobClient(str(jobd.socket), timeout=5).wait(job_id, timeout=DEADLINE * 2, poll_interval=0.05)))
    waiter.start()
    wait_until(lambda: _following(client), what="the waiter to follow the job")
    jobd.kill()
    kill_standins(call_log)
    jobd.start()
    waiter.join(DEADLINE * 2)
    assert not waiter.is_alive()
    assert result["final"]["state"] == "interrupted" and result["final"]["is_complete"] is True
    assert result["final"]["error_code"] == "interrupted" and result["final"]["job_error"]


def _following(client: JobClient) -> bool:
    # The waiter follows on its own connection: the daemon then has two.
    return client.stats()["connections"] >= 2
