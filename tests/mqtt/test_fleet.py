"""`pineapple-jobs fleet`: durable roll-outs through a real broker to real daemons."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.mqtt import Recorder, wait_until
from tests.mqtt.conftest import fleet_cli, rollout_id_of


def test_fleet_install_to_listed_devices_with_a_summary(broker, fleet_device):
    devices = [fleet_device(name) for name in ("pine1", "pine2")]
    done = fleet_cli(broker, "install", "tool-a", "--devices", "pine1,pine2,ghost", "--wait-timeout", "20")
    assert done.returncode == 4, done.stdout + done.stderr  # ghost has not applied it: the roll-out goes on
    assert "pine1: succeeded" in done.stdout and "pine2: succeeded" in done.stdout
    rollout = rollout_id_of(done.stdout)
    assert f"roll-out {rollout}: 1 pending, 2 succeeded" in done.stdout
    assert "fleet status" in done.stdout
    for device in devices:
        assert device.installed("tool-a") == "1.0-1" and device.installs("tool-a") == 1


def test_fleet_discovers_devices_and_reports_failures_and_refusals(broker, fleet_device):
    for name in ("dev-a", "dev-b"):
        fleet_device(name)
    done = fleet_cli(broker, "install", "failpkg", "--wait-timeout", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ": 2 failed" in done.stdout and "script_failed" in done.stdout
    refused = subprocess.run([sys.executable, "-m", "pineapple.cli.main", "--json", "fleet", "install", "a;b",
                              "--broker", "127.0.0.1", "--port", str(broker.port), "--devices", "dev-a"],
                             capture_output=True, text=True, timeout=60)
    outcome = json.loads(refused.stdout)["devices"]["dev-a"]
    assert (outcome["outcome"], outcome["error_code"]) == ("refused", "invalid_package_name")
    assert refused.returncode == 1


def test_fleet_without_a_broker_exits_3():
    done = subprocess.run([sys.executable, "-m", "pineapple.cli.main", "fleet", "install", "x", "--broker",
                           "127.0.0.1", "--port", "1", "--devices", "a"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "pineapple-jobs:" in done.stderr


def test_devices_stopped_during_a_roll_out_apply_it_exactly_once_when_they_come_back(broker, fleet_device):
    devices = [fleet_device(f"pine{i}") for i in range(5)]
    away = devices[3:]
    for device in away:  # known to the broker (retained "offline"), not online
        assert device.daemon.stop() == 0
    done = fleet_cli(broker, "install", "tool-a", "--wait-timeout", "30")  # discovery finds all five
    assert done.returncode == 4, done.stdout + done.stderr
    rollout = rollout_id_of(done.stdout)
    assert f"roll-out {rollout}: 2 pending, 3 succeeded" in done.stdout
    for device in away:
        device.daemon.start()
    later = fleet_cli(broker, "--json", "status", rollout, "--wait-timeout", "60")
    assert later.returncode == 0, later.stdout + later.stderr
    status = json.loads(later.stdout)
    assert status["rollout"] == rollout
    assert {name: run["outcome"] for name, run in status["devices"].items()} == \
        {f"pine{i}": "succeeded" for i in range(5)}
    # Restarted (the retained record comes again): remembered, not applied again.
    for device in (devices[0], devices[3]):
        device.daemon.restart()
        device.wait_online()
    shown = fleet_cli(broker, "status", rollout)
    assert shown.returncode == 0 and f"roll-out {rollout}: 5 succeeded" in shown.stdout
    for device in devices:
        assert device.installed("tool-a") == "1.0-1"
        assert device.installs("tool-a") == 1, f"{device.name} installed it {device.installs('tool-a')} times"


def test_a_device_whose_state_dir_was_wiped_learns_from_its_results_on_the_broker(broker, fleet_device):
    device = fleet_device("pine1")
    done = fleet_cli(broker, "install", "tool-b", "--devices", "pine1", "--wait-timeout", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    device.daemon.stop()
    (device.daemon.state_dir / "rollouts.json").unlink()
    device.daemon.start()
    device.wait_online()
    rollout = rollout_id_of(done.stdout)
    wait_until(lambda: "was applied here before" in device.daemon.log(), what="the result learnt back")
    assert fleet_cli(broker, "status", rollout).returncode == 0
    assert device.installs("tool-b") == 1


def test_cancel_a_pending_roll_out(broker, fleet_device):
    fleet_device("pine1")
    away = fleet_device("pine2")
    away.daemon.stop()
    done = fleet_cli(broker, "install", "tool-c", "--wait-timeout", "20")
    assert done.returncode == 4
    rollout = rollout_id_of(done.stdout)
    cancelled = fleet_cli(broker, "cancel", rollout)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled for 1 device(s) that had not applied it: pine2" in cancelled.stdout
    assert "pine1 (succeeded)" in cancelled.stdout
    away.daemon.start()
    away.wait_online()
    watcher = Recorder(broker.port, [f"pineapple/pine2/rollouts/{rollout}/result"], client_id="watcher")
    try:  # the device says so itself once it is back
        watcher.wait_for(lambda msgs: any(json.loads(p).get("state") == "cancelled" for _, p, _ in msgs if p))
    finally:
        watcher.close()
    shown = fleet_cli(broker, "--json", "status", rollout)
    outcomes = {name: run["outcome"] for name, run in json.loads(shown.stdout)["devices"].items()}
    assert outcomes == {"pine1": "succeeded", "pine2": "cancelled"}
    assert shown.returncode == 1
    assert away.installs("tool-c") == 0 and away.installed("tool-c") is None


def test_status_of_an_unknown_roll_out(broker):
    shown = fleet_cli(broker, "--json", "status", "no-such-rollout")
    assert shown.returncode == 1 and json.loads(shown.stdout)["devices"] == {}


def rollout_job_state(device, package: str) -> str | None:
    jobs = device.daemon.client().list(package=package)["jobs"]
    return jobs[0]["state"] if jobs else None


def test_devices_stopped_in_the_middle_of_a_roll_out_finish_it_exactly_once(broker, fleet_device):
    """Stopped while the roll-out's job runs (it finishes within the shutdown
    grace) and while it still waits behind another job (it never started:
    nothing ran, so the device applies the roll-out when it is back)."""
    devices = [fleet_device(f"pine{i}") for i in range(3)]
    running = fleet_device("pine3", env={"OPKG_STANDIN_DOWNLOAD_DELAY": "2"})
    # pine4 runs one job at a time, and that one hangs until the shutdown cancels it.
    busy = fleet_device("pine4", "daemon.workers=1", "daemon.shutdown_grace=1",
                        env={"OPKG_STANDIN_HANG": "download:tool-b"})
    blocker = busy.daemon.client().install(["tool-b"])["job_id"]
    wait_until(lambda: busy.daemon.client().poll(blocker)["state"] == "running", what="pine4 busy")
    done = fleet_cli(broker, "install", "tool-a", "--wait-timeout", "0")
    rollout = rollout_id_of(done.stdout)
    wait_until(lambda: rollout_job_state(busy, "tool-a") == "queued", what="pine4 has it queued")
    assert busy.daemon.stop() == 0
    wait_until(lambda: rollout_job_state(running, "tool-a") == "running", what="pine3 applying it")
    assert running.daemon.stop() == 0  # the running job gets the shutdown grace to finish
    assert busy.installs("tool-a") == 0 and running.installs("tool-a") == 1
    for device in (running, busy):
        device.daemon.start()
    later = fleet_cli(broker, "--json", "status", rollout, "--wait-timeout", "60")
    assert later.returncode == 0, later.stdout + later.stderr
    status = json.loads(later.stdout)
    assert {name: run["outcome"] for name, run in status["devices"].items()} == \
        {f"pine{i}": "succeeded" for i in range(5)}
    shown = fleet_cli(broker, "status", rollout)
    assert shown.returncode == 0 and f"roll-out {rollout}: 5 succeeded" in shown.stdout
    for device in [*devices, running, busy]:
        assert device.installed("tool-a") == "1.0-1"
        assert device.installs("tool-a") == 1, f"{device.name} installed it {device.installs('tool-a')} times"
    assert busy.daemon.client().poll(blocker)["state"] == "cancelled"


def test_a_roll_out_that_finds_the_queue_full_is_pending_and_applied_once_the_device_is_back(broker, fleet_device):
    device = fleet_device("pine1", "daemon.workers=1", "daemon.max_queued=1", "daemon.shutdown_grace=1",
                          env={"OPKG_STANDIN_HANG": "download:tool-b"})
    client = device.daemon.client()
    blocker = client.install(["tool-b"])["job_id"]
    wait_until(lambda: client.poll(blocker)["state"] == "running", what="pine1 busy")
    waiting = client.install(["tool-c"])["job_id"]  # the one place in the queue
    done = fleet_cli(broker, "--json", "install", "tool-a", "--devices", "pine1", "--wait-timeout", "20")
    assert done.returncode == 4, done.stdout + done.stderr  # nothing failed; not applied yet
    run = json.loads(done.stdout)["devices"]["pine1"]
    assert (run["outcome"], run["error_code"]) == ("pending", "queue_full"), run
    assert device.installs("tool-a") == 0
    device.daemon.restart()  # the record comes again on connect: room now
    later = fleet_cli(broker, "--json", "status", json.loads(done.stdout)["rollout"], "--wait-timeout", "60")
    assert later.returncode == 0, later.stdout + later.stderr
    assert json.loads(later.stdout)["devices"]["pine1"]["outcome"] == "succeeded"
    assert device.installs("tool-a") == 1
    assert [client.poll(job)["state"] for job in (blocker, waiting)] == ["cancelled", "interrupted"]
