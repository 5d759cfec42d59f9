"""Schedules in a real ``pineapple-jobd`` process (tests/fixtures/daemon.py)
against the opkg stand-in."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from pineapple.api.client import JobClient
from pineapple.api.protocol import ApiError
from pineapple.jobs.schedule.zones import posix_zone
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
    config.write_text("config schedule 'boot_update'\n    option job 'update'\n    option startup '1'\n")
    daemon = start_daemon(extra_args=["--config", str(config)])
    with daemon.client() as client:
        boot = wait_for_runs(client, "boot_update", 1)
        assert (boot["source"], boot["description"]) == ("config", "at start-up")
        with pytest.raises(ApiError) as caught:
            client.request("schedule_remove", schedule_id="boot_update")
        assert caught.value.code == "schedule_read_only"


def test_an_idle_daemon_with_schedules_uses_no_cpu(daemon):
    with daemon.client() as client:
        client.request("schedule_add", schedule_id="nightly", job="update",
                       trigger={"type": "cron", "expr": "0 4 * * *"})
        assert client.request("schedule_get", schedule_id="nightly")["next_run"]
    assert_idle(daemon.proc.pid)


def test_a_config_schedule_in_a_zone_without_data_stops_the_start(start_daemon, tmp_path):
    """On a device without the zoneinfo-* package for a named zone the daemon
    refuses the schedule at start (exit 2) and says which package to install."""
    (tmp_path / "nozones").mkdir()
    config = tmp_path / "pineapple-jobd.uci"
    config.write_text("config schedule 'nightly'\n    option job 'update'\n    option daily '04:00'\n"
                      "    option timezone 'Europe/Berlin'\n")
    daemon = start_daemon(extra_args=["--config", str(config)], env={"PYTHONTZPATH": str(tmp_path / "nozones")},
                          wait=False)
    assert daemon.proc.wait(WAIT) == 2
    log = daemon.log()
    assert "schedule 'nightly'" in log and "install the OpenWrt package zoneinfo-europe" in log, log


def test_a_schedule_without_timezone_follows_the_posix_tz_rule(start_daemon, tmp_path):
    """TZ as procd would pass /etc/TZ's rule, no zone data: next_run is 04:00 local (CET/CEST)."""
    (tmp_path / "nozones").mkdir()
    daemon = start_daemon(env={"PYTHONTZPATH": str(tmp_path / "nozones"), "TZ": "CET-1CEST,M3.5.0,M10.5.0/3"})
    with daemon.client() as client:
        client.request("schedule_add", schedule_id="nightly", job="update", trigger={"type": "daily", "at": "04:00"})
        schedule = client.request("schedule_get", schedule_id="nightly")
    next_run = datetime.fromtimestamp(schedule["next_run_epoch"], timezone.utc)
    wall = next_run.astimezone(posix_zone("CET-1CEST,M3.5.0,M10.5.0/3"))
    assert (wall.hour, wall.minute) == (4, 0)
    assert next_run - datetime.now(timezone.utc) <= timedelta(days=1, hours=1)
