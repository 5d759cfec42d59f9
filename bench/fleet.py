#!/usr/bin/env python3
"""Fleet benchmark: one install rolled out to N daemons through one broker.

Starts a real mosquitto on 127.0.0.1, N ``pineapple-jobd`` processes (each
with its own sandbox root, stand-in feed, socket and state; MQTT commands
on), then runs ``pineapple-jobs fleet``'s roll-out (pineapple.mqtt.fleet) to
every device seen online. Prints the time until every device has reported
its final state and the broker-side message counts (mosquitto's $SYS
counters), beside the same roll-out to a single device measured in the
same run (the baseline: how much a fleet costs over one device).

    python bench/fleet.py [--devices 20] [--package tool-a]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from devtools.sandbox import PackageSpec, Sandbox  # noqa: E402
from pineapple.mqtt._paho import make_client  # noqa: E402
from pineapple.mqtt.fleet import Rollout, summary_counts  # noqa: E402
from tests.fixtures.broker import Broker  # noqa: E402

PACKAGES = [PackageSpec("libc", "1.2.4-4"), PackageSpec("mylib", "1.0-1", depends=["libc"]),
            PackageSpec("tool-a", "1.0-1", depends=["mylib"]), PackageSpec("tool-b", "1.0-1", depends=["libc"])]
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


class SysCounters:
    """mosquitto's $SYS message counters (published every second)."""

    def __init__(self, port: int) -> None:
        self.values: dict[str, int] = {}
        self._updated = threading.Condition()
        self.client = make_client("bench-sys", on_message=self._on_message)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("$SYS/broker/messages/received", 0), ("$SYS/broker/messages/sent", 0)])
        self.client.loop_start()

    def _on_message(self, client, message) -> None:
        with self._updated:
            self.values[message.topic.rsplit("/", 1)[1]] = int(message.payload)
            self._updated.notify_all()

    def settled(self, timeout: float = 30.0) -> dict[str, int]:
        """The counters once ``received`` stopped moving for two publications
        (``sent`` keeps moving: $SYS itself is sent to this subscriber)."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            with self._updated:
                self._updated.wait_for(lambda: len(self.values) == 2, 3)
                self._updated.wait(1.5)
                current = dict(self.values)
            if last is not None and current.get("received") == last.get("received"):
                return current
            last = current
        raise RuntimeError("the broker's $SYS counters did not settle")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_daemons(work: Path, template: Sandbox, count: int, port: int, first: int = 0) -> list[subprocess.Popen]:
    procs = []
    for index in range(first, first + count):
        sandbox = template.clone(work / f"dev{index}")
        argv = [sys.executable, "-m", "pineapple.daemon.main", "--config", os.devnull,
                "--socket", str(work / f"d{index}.sock"), "--state-dir", str(work / f"state{index}"),
                "--opkg-binary", str(sandbox.opkg_path), "--opkg-root", str(sandbox.root),
                "--opkg-conf", str(sandbox.conf), "--log-level", "warning",
                "--set", "mqtt.enabled=1", "--set", f"mqtt.port={port}", "--set", f"mqtt.device_id=dev{index}",
                "--set", "mqtt.commands=1"]
        procs.append(subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def roll_out(port: int, devices: list[str], package: str) -> tuple[float, dict]:
    started = time.perf_counter()
    runs = Rollout("127.0.0.1", port, {"job": "install", "packages": [package]}, devices=devices,
                   timeout=300).run()
    return time.perf_counter() - started, summary_counts(runs)


def wait_online(port: int, devices: list[str], timeout: float = 60) -> None:
    seen, done = set(), threading.Event()

    def on_message(c, message) -> None:
        if message.payload == b"online":
            seen.add(message.topic.split("/")[1])
            if seen >= set(devices):
                done.set()

    client = make_client("bench-online", on_message=on_message)
    client.connect("127.0.0.1", port)
    client.subscribe("pineapple/+/status", 1)
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise RuntimeError(f"only {len(seen)} of {len(devices)} devices came online")
    finally:
        client.loop_stop()
        client.disconnect()


def measure(work: Path, template: Sandbox, broker: Broker, count: int, first: int, package: str) -> dict:
    devices = [f"dev{i}" for i in range(first, first + count)]
    procs = start_daemons(work, template, count, broker.port, first)
    try:
        wait_online(broker.port, devices)
        counters = SysCounters(broker.port)
        before = counters.settled()
        seconds, outcomes = roll_out(broker.port, devices, package)
        after = counters.settled()
        counters.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    return {"seconds": seconds, "outcomes": outcomes,
            "received": after["received"] - before["received"], "sent": after["sent"] - before["sent"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--package", default="tool-a")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-", dir="/tmp") as tmp:
        work = Path(tmp)
        template = Sandbox.create(work / "template", packages=PACKAGES, installed=["libc"])
        broker = Broker().start()
        try:
            single = measure(work, template, broker, 1, 1000, args.package)
            fleet = measure(work, template, broker, args.devices, 0, args.package)
        finally:
            broker.close()
    print(f"fleet roll-out of `install {args.package}` through one mosquitto on 127.0.0.1")
    for name, result, n in (("baseline: 1 device", single, 1), (f"fleet: {args.devices} devices", fleet, args.devices)):
        print(f"  {name:22} every device reported after {result['seconds']:.2f}s; "
              f"outcomes {result['outcomes']}; broker messages received {result['received']}, "
              f"sent {result['sent']} ({result['received'] / n:.0f} received per device)")
    print(f"  ratio: {args.devices} devices took {fleet['seconds'] / single['seconds']:.2f}x the time of one")
    ok = fleet["outcomes"] == {"succeeded": args.devices}
    print("all devices succeeded" if ok else "NOT every device succeeded")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
