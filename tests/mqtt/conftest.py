"""Fleets of real daemons for the MQTT tests: each device its own sandbox
root (so "installed exactly once" can be counted per device), socket,
state directory and opkg call log."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from devtools.sandbox import Sandbox
from tests.conftest import feed_packages
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.mqtt import Recorder


def device_args(broker, device: str, *extra: str) -> list[str]:
    args = ["--set", "mqtt.enabled=1", "--set", f"mqtt.port={broker.port}", "--set", f"mqtt.device_id={device}",
            "--set", "mqtt.commands=1", "--set", "mqtt.keepalive=5"]
    for item in extra:
        args += ["--set", item]
    return args


class Device:
    """One device: a daemon on its own sandbox, stoppable and startable again."""

    def __init__(self, name: str, daemon: DaemonProcess, port: int) -> None:
        self.name, self.daemon, self.port = name, daemon, port

    def wait_online(self, timeout: float = 30) -> Device:
        """Until the device says ``online``: it publishes that once subscribed and publishing."""
        watcher = Recorder(self.port, [f"pineapple/{self.name}/status"], client_id=f"watch-{os.urandom(4).hex()}")
        try:
            watcher.wait_for(lambda msgs: bool(msgs) and msgs[-1][1] == b"online", timeout=timeout)
        finally:
            watcher.close()
        return self

    def installs(self, package: str) -> int:
        """How many times opkg was asked to install ``package`` on this device."""
        path = pathlib.Path(self.daemon.env["OPKG_STANDIN_CALL_LOG"])
        if not path.exists():
            return 0
        argvs = [json.loads(line)["argv"] for line in path.read_text().splitlines() if line.strip()]
        return sum(1 for argv in argvs if "install" in argv and package in argv)

    def installed(self, package: str) -> str | None:
        return self.daemon.client().installed([package])[package]


@pytest.fixture
def fleet_device(tmp_path: pathlib.Path, broker):
    """Factory: ``fleet_device("pine1", "mqtt.command_key=...")`` -> a started :class:`Device`."""
    template = Sandbox.create(tmp_path / "template", packages=feed_packages(), installed=["libc"])
    started: list[DaemonProcess] = []

    def make(name: str, *extra: str, env: dict | None = None, wait_online: bool = True) -> Device:
        work = tmp_path / name
        work.mkdir()
        daemon = DaemonProcess(template.clone(work / "sb"), work, device_args(broker, name, *extra), env)
        started.append(daemon)
        device = Device(name, daemon.start(), broker.port)
        return device.wait_online() if wait_online else device

    yield make
    for daemon in started:
        daemon.close()


def fleet_cli(broker, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pineapple.cli.main", "fleet", *args, "--broker", "127.0.0.1",
                           "--port", str(broker.port)], capture_output=True, text=True, timeout=timeout, env=env)


def rollout_id_of(output: str) -> str:
    """The id from a ``roll-out ID: ...`` line."""
    for line in output.splitlines():
        if line.startswith("roll-out "):
            return line.split()[1].rstrip(":")
    raise AssertionError(f"no roll-out id in {output!r}")
