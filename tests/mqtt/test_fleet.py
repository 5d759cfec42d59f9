"""`pineapple-jobs fleet`: a roll-out through a real broker to real daemons."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.mqtt import wait_until


def device_args(broker, device: str) -> list[str]:
    return ["--set", "mqtt.enabled=1", "--set", f"mqtt.port={broker.port}", "--set", f"mqtt.device_id={device}",
            "--set", "mqtt.commands=1"]


def fleet(broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pineapple.cli.main", "fleet", *args, "--broker", "127.0.0.1",
                           "--port", str(broker.port)], capture_output=True, text=True, timeout=120)


def online(daemon) -> bool:
    return daemon.client().stats()["mqtt"]["connected"]


def test_fleet_install_to_listed_devices_with_a_summary(broker, start_daemon):
    devices = [start_daemon(device_args(broker, name)) for name in ("pine1", "pine2")]
    for daemon in devices:
        wait_until(lambda d=daemon: online(d), what="device online")
    done = fleet(broker, "install", "tool-a", "--devices", "pine1,pine2,ghost", "--wait-timeout", "20")
    assert done.returncode == 1, done.stderr  # ghost never answers
    assert "pine1: succeeded" in done.stdout and "pine2: succeeded" in done.stdout
    assert "summary: 2 succeeded, 1 unreachable" in done.stdout
    for daemon in devices:
        assert daemon.client().installed(["tool-a"])["tool-a"] == "1.0-1"


def test_fleet_discovers_online_devices_and_reports_failures(broker, start_daemon):
    daemons = [start_daemon(device_args(broker, name)) for name in ("dev-a", "dev-b")]
    for daemon in daemons:
        wait_until(lambda d=daemon: online(d), what="device online")
    done = fleet(broker, "install", "failpkg", "--wait-timeout", "30")
    assert done.returncode == 1
    assert "summary: 2 failed" in done.stdout and "script_failed" in done.stdout
    refused = subprocess.run([sys.executable, "-m", "pineapple.cli.main", "--json", "fleet", "install", "a;b",
                              "--broker", "127.0.0.1", "--port", str(broker.port), "--devices", "dev-a"],
                             capture_output=True, text=True, timeout=60)
    outcome = json.loads(refused.stdout)["dev-a"]
    assert (outcome["outcome"], outcome["error_code"]) == ("refused", "invalid_package_name")


def test_fleet_without_a_broker_exits_3():
    done = subprocess.run([sys.executable, "-m", "pineapple.cli.main", "fleet", "install", "x", "--broker",
                           "127.0.0.1", "--port", "1", "--devices", "a"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "pineapple-jobs:" in done.stderr
