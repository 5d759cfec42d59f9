"""Schedules in a real ``pineapple-jobd`` process (tests/fixtures/daemon.py)
against the opkg stand-in."""
from __future__ import annotations

import time

import pytest

from pineapple.api.client import JobClient
from pineapple.api.protocol import ApiError
from tests.daemon.test_idle import assert_idle

WAIT = 20.0


def wait_for_runs(client: JobClient, schedule_id: str, runs: int) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        schedule = client.request("schedule_get", schedule_id=schedule_id)
        if schedule["runs"] >= runs:
            return schedule
        assert time.monotonic() < deadline, f"{schedule_id} ran {schedule['runs']} time(s), expected {runs}"
        time.sleep(0.05)


def test_a_schedule_added_over_the_socket_survives_a_restart_and_fires(daemon):
    with daemon.client() as client:
        client.request("schedule_add", schedule_id="refresh", job="update", trigger={"type": "interval", "every": "1s"})
        first = wait_for_runs(client, "refresh", 1)
        assert client.wait(first["last_job_id"], timeout=WAIT)["is_complete"]
    daemon.restart()
    with daemon.client() as client:
        [kept] = client.request("schedule_list")["schedules"]
        assert (kept["schedule_id"], kept["source"], kept["job"]) == ("refresh", "api", "update")
        later = wait_for_runs(client, "refresh", kept["runs"] + 1)
        assert later["last_job_id"] != first["last_job_id"]
        client.request("schedule_remove", schedule_id="refresh")


def test_a_config_schedule_runs_at_start_up(start_daemon, tmp_path):
    config = tmp_path / "pineapple-jobd.uci"
    config.write_text("config schedule 'boot-update'\n    option job 'update'\n    option startup '1'\n")
    daemon = start_daemon(extra_args=["--config", str(config)])
    with daemon.client() as client:
        boot = wait_for_runs(client, "boot-update", 1)
        assert (boot["source"], boot["description"]) == ("config", "at start-up")
        with pytest.raises(ApiError) as caught:
            client.request("schedule_remove", schedule_id="boot-update")
        assert caught.value.code == "schedule_read_only"


def test_an_idle_daemon_with_schedules_uses_no_cpu(daemon):
    with daemon.client() as client:
        client.request("schedule_add", schedule_id="nightly", job="update",
                       trigger={"type": "cron", "expr": "0 4 * * *"})
        assert client.request("schedule_get", schedule_id="nightly")["next_run"]
    assert_idle(daemon.proc.pid)
