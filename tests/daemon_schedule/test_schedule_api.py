"""The schedule actions over the real socket (ApiServer + JobClient) against
an in-process daemon-like service. Most tests drive time with a FakeClock;
one uses the real clock and a sub-second interval."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from pineapple.api.protocol import ApiError
from pineapple.jobs import FakeClock
from pineapple.jobs.schedule.scheduler import ScheduleDefinition

from .harness import WAIT, ScheduleService, install_schedule_handlers

START = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()
HOUR = 3600.0
EVERY_HOUR = {"type": "interval", "every": "1h"}


@pytest.fixture(autouse=True)
def handlers(monkeypatch):
    install_schedule_handlers(monkeypatch)


@pytest.fixture
def services(tmp_path):
    """Factory: ``services(clock=..., config=[...])`` -> a started service;
    all are closed at teardown. Every one shares the same state dir."""
    started: list[ScheduleService] = []

    def start(clock=None, config=(), **options) -> ScheduleService:
        service = ScheduleService(tmp_path / "state", clock=clock, **options).start(config)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def service(services, clock):
    return services(clock=clock)


@pytest.fixture
def client(service):
    with service.client() as c:
        yield c


def code_of(client, action: str, **fields) -> str:
    with pytest.raises(ApiError) as caught:
        client.request(action, **fields)
    return caught.value.code


def test_add_list_get_and_fire_over_the_socket(service, client, clock):
    added = client.request("schedule_add", schedule_id="hello", job="echo", params={"say": "hi"},
                           trigger=EVERY_HOUR, misfire_grace_time=600, coalesce=False, max_instances=2)
    assert added["schedule_id"] == "hello" and added["next_run_epoch"] == START + HOUR
    assert added["options"] == {"misfire_grace_time": 600.0, "coalesce": False, "max_instances": 2,
                                "enabled": True}
    assert [s["schedule_id"] for s in client.request("schedule_list")["schedules"]] == ["hello"]
    clock.advance(HOUR)
    shown = client.request("schedule_get", schedule_id="hello")
    assert shown["runs"] == 1
    job = client.wait(shown["last_job_id"], timeout=WAIT)
    assert job["state"] == "succeeded" and job["result"] == {"say": "hi"}


def test_modify_pause_resume_run_remove_over_the_socket(service, client, clock):
    client.request("schedule_add", schedule_id="s", job="echo", trigger=EVERY_HOUR)
    modified = client.request("schedule_modify", schedule_id="s", trigger={"type": "interval", "every": "30m"},
                              misfire_grace_time=None, params={"n": 1})
    assert (modified["next_run_epoch"], modified["params"]) == (START + 1800, {"n": 1})
    assert client.request("schedule_pause", schedule_id="s")["state"] == "paused"
    clock.advance(HOUR)
    assert client.request("schedule_get", schedule_id="s")["runs"] == 0
    assert client.request("schedule_resume", schedule_id="s")["next_run_epoch"] == START + HOUR + 1800
    ran = client.request("schedule_run", schedule_id="s")
    assert ran["schedule_id"] == "s" and ran["duplicate"] is False
    assert client.wait(ran["job_id"], timeout=WAIT)["result"] == {"n": 1}
    assert client.request("schedule_remove", schedule_id="s") == {"schedule_id": "s", "removed": True}
    assert client.request("schedule_list") == {"schedules": []}


def test_error_codes_over_the_socket(services, clock):
    service = services(clock=clock, config=[ScheduleDefinition("cfg", "echo", {}, EVERY_HOUR)])
    with service.client() as client:
        client.request("schedule_add", schedule_id="s", job="gate", trigger=EVERY_HOUR)
        assert code_of(client, "schedule_add", schedule_id="s", job="echo", trigger=EVERY_HOUR) == "schedule_exists"
        assert code_of(client, "schedule_get", schedule_id="nope") == "unknown_schedule"
        assert code_of(client, "schedule_add", schedule_id="t", job="echo",
                       trigger={"type": "cron", "expr": "* *"}) == "invalid_trigger"
        assert code_of(client, "schedule_add", schedule_id="t", job="nope", trigger=EVERY_HOUR) == "unknown_job_type"
        assert code_of(client, "schedule_add", schedule_id="t", job="install", trigger=EVERY_HOUR,
                       params={"packages": ["a"], "colour": 1}) == "invalid_field"
        assert code_of(client, "schedule_add", schedule_id="t", job="echo", trigger=EVERY_HOUR,
                       coalese=False) == "invalid_field"
        assert code_of(client, "schedule_add", schedule_id="t", job="echo", trigger="hourly") == "invalid_field"
        assert code_of(client, "schedule_add", job="echo", trigger=EVERY_HOUR) == "missing_field"
        assert code_of(client, "schedule_modify", schedule_id="s") == "invalid_field"
        assert code_of(client, "schedule_remove", schedule_id="cfg") == "schedule_read_only"
        client.request("schedule_run", schedule_id="s")
        assert code_of(client, "schedule_run", schedule_id="s") == "schedule_busy"


def test_the_request_id_is_still_echoed(service):
    import json
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(WAIT)
        sock.connect(service.socket)
        sock.sendall(json.dumps({"action": "schedule_list", "id": 7}).encode() + b"\n")
        answer = json.loads(sock.makefile().readline())
    assert answer == {"ok": True, "payload": {"schedules": []}, "id": 7}


def test_a_schedule_added_over_the_socket_survives_a_restart_and_fires(services, clock):
    first = services(clock=clock)
    with first.client() as client:
        client.request("schedule_add", schedule_id="keep", job="echo", params={"k": 1}, trigger=EVERY_HOUR)
    first.close()
    later = FakeClock(START + 600)
    second = services(clock=later)
    with second.client() as client:
        [kept] = client.request("schedule_list")["schedules"]
        assert (kept["schedule_id"], kept["next_run_epoch"], kept["runs"]) == ("keep", START + HOUR, 0)
        later.advance(HOUR - 600)
        shown = client.request("schedule_get", schedule_id="keep")
        assert shown["runs"] == 1
        assert client.wait(shown["last_job_id"], timeout=WAIT)["result"] == {"k": 1}


def test_with_the_real_clock_a_short_interval_fires(services):
    service = services()  # SystemClock: the timer thread does the firing
    with service.client() as client:
        client.request("schedule_add", schedule_id="quick", job="echo", trigger={"type": "interval", "every": "0.2s"})
        deadline = time.monotonic() + WAIT
        while client.request("schedule_get", schedule_id="quick")["runs"] < 2:
            assert time.monotonic() < deadline, "the schedule never fired twice"
            time.sleep(0.05)
        client.request("schedule_pause", schedule_id="quick")
