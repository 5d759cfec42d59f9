#!/usr/bin/env python3
"""Fleet benchmark: one durable roll-out to 200 devices through one broker.

Starts a real mosquitto on 127.0.0.1, ``--real`` (default 20)
``pineapple-jobd`` processes (each with its own sandbox root, stand-in feed,
socket and state; MQTT commands on) and ``--simulated`` (default 180)
lightweight simulated devices: one MQTT client each, speaking the documented
topics (retained ``online`` status, the roll-out record in, a retained
result, job states, progress and log out, as a real device does for a
small install). Then it rolls an install out to all of them with
pineapple.mqtt.fleet (what ``pineapple-jobs fleet install`` runs) and
prints the time until every device reported its final outcome, the time to
read the whole roll-out back (``fleet status``), and the broker-side
message counts (mosquitto's $SYS counters) per device, beside the same
roll-out to a single real device measured in the same run (the baseline).

    python bench/fleet.py [--real 20] [--simulated 180] [--package tool-a]
"""
from __future__ import annotations

import argparse
import json
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
from pineapple.mqtt.fleet import Fleet, summary_counts  # noqa: E402
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


class SimulatedDevice:
    """A device without a daemon: answers a roll-out record with the messages
    a real daemon publishes for a small install (states, progress, log, and
    its retained result), exactly once per roll-out id."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.prefix = f"pineapple/{name}"
        self._applied: set[str] = set()
        self.client = make_client(f"sim-{name}", on_connect=self._on_connect, on_message=self._on_message)
        self.client.will_set(f"{self.prefix}/status", b"offline", qos=1, retain=True)
        self.client.connect("127.0.0.1", port, 60)
        self.client.loop_start()

    def _on_connect(self, client, failure) -> None:
        client.subscribe(f"{self.prefix}/rollouts/+", 1)
        client.publish(f"{self.prefix}/status", b"online", qos=1, retain=True)

    def _on_message(self, client, message) -> None:
        rollout_id = message.topic.rsplit("/", 1)[1]
        record = json.loads(message.payload) if message.payload else {}
        if rollout_id in self._applied or record.get("cancelled"):
            return
        self._applied.add(rollout_id)
        job_id = f"{self.name}-{rollout_id}"
        packages = record.get("job", {}).get("packages", [])
        jobs, result = f"{self.prefix}/jobs/{job_id}", f"{self.prefix}/rollouts/{rollout_id}/result"

        def state(name: str, fraction: float | None) -> bytes:
            return json.dumps({"job_id": job_id, "type": "install", "is_complete": name == "succeeded",
                               "result": None, "job_error": None, "error_code": None, "state": name,
                               "progress": {"fraction": fraction, "message": ""}}).encode()

        def outcome(name: str) -> bytes:
            return json.dumps({"rollout": rollout_id, "device": self.name, "state": name, "job_id": job_id,
                               "error_code": None, "error": None, "updated_at": time.time()}).encode()

        client.publish(f"{jobs}/state", state("queued", None), qos=1, retain=True)
        client.publish(result, outcome("queued"), qos=1, retain=True)
        client.publish(f"{jobs}/state", state("running", 0.0), qos=1, retain=True)
        client.publish(result, outcome("running"), qos=1, retain=True)
        for step, fraction in (("downloading", 0.33), ("installing", 0.66), ("installed", 1.0)):
            client.publish(f"{jobs}/progress", json.dumps({"fraction": fraction,
                                                           "message": f"{step} {' '.join(packages)}"}), qos=0)
            client.publish(f"{jobs}/log", f"{step} {' '.join(packages)}", qos=0)
        client.publish(f"{jobs}/state", state("succeeded", 1.0), qos=1, retain=True)
        client.publish(result, outcome("succeeded"), qos=1, retain=True)

    def close(self) -> None:
        self.client.publish(f"{self.prefix}/status", b"offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()


def wait_online(port: int, devices: list[str], timeout: float = 120) -> None:
    seen, done = set(), threading.Event()

    def on_message(c, message) -> None:
        if message.payload == b"online":
            seen.add(message.topic.split("/")[1])
            if seen >= set(devices):
                done.set()
        else:
            seen.discard(message.topic.split("/")[1])

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


def measure(work: Path, template: Sandbox, broker: Broker, real: int, simulated: int, first: int,
            package: str) -> dict:
    names = [f"dev{i}" for i in range(first, first + real)] + [f"sim{i}" for i in range(first, first + simulated)]
    procs = start_daemons(work, template, real, broker.port, first)
    sims = [SimulatedDevice(f"sim{i}", broker.port) for i in range(first, first + simulated)]
    try:
        wait_online(broker.port, names)
        counters = SysCounters(broker.port)
        before = counters.settled()
        started = time.perf_counter()
        with Fleet("127.0.0.1", broker.port) as fleet:
            rollout_id = fleet.create({"job": "install", "packages": [package]}, names)
            runs = fleet.follow(300)
        seconds = time.perf_counter() - started
        after = counters.settled()
        counters.close()
        started = time.perf_counter()
        with Fleet("127.0.0.1", broker.port) as fleet:  # what `fleet status ID` does, from a fresh client
            read_back = fleet.status(rollout_id)
        status_seconds = time.perf_counter() - started
    finally:
        for sim in sims:
            sim.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    return {"seconds": seconds, "status_seconds": status_seconds, "outcomes": summary_counts(runs),
            "read_back": summary_counts(read_back), "devices": len(names),
            "received": after["received"] - before["received"], "sent": after["sent"] - before["sent"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=20, help="real pineapple-jobd processes (default 20)")
    parser.add_argument("--simulated", type=int, default=180, help="simulated devices (default 180)")
    parser.add_argument("--package", default="tool-a")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-", dir="/tmp") as tmp:
        work = Path(tmp)
        template = Sandbox.create(work / "template", packages=PACKAGES, installed=["libc"])
        broker = Broker().start()
        try:
            single = measure(work, template, broker, 1, 0, 1000, args.package)
            fleet = measure(work, template, broker, args.real, args.simulated, 0, args.package)
        finally:
            broker.close()
    total = args.real + args.simulated
    print(f"durable roll-out of `install {args.package}` through one mosquitto on 127.0.0.1")
    for name, result in (("baseline: 1 real device", single),
                         (f"fleet: {args.real} real + {args.simulated} simulated", fleet)):
        n = result["devices"]
        print(f"  {name:34} every device final after {result['seconds']:.2f}s, read back (fleet status) in "
              f"{result['status_seconds']:.2f}s; outcomes {result['outcomes']}; broker messages received "
              f"{result['received']} ({result['received'] / n:.1f} per device), sent {result['sent']} "
              f"({result['sent'] / n:.1f} per device)")
    print(f"  ratio: {total} devices took {fleet['seconds'] / single['seconds']:.2f}x the time of one")
    ok = fleet["outcomes"] == {"succeeded": total} and fleet["read_back"] == {"succeeded": total}
    print("every device succeeded, and fleet status reads it back" if ok else "NOT every device succeeded")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
