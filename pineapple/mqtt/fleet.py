"""Fleet roll-outs: one command to many devices through the MQTT broker.

Each device's pineapple-jobd (with ``mqtt.commands`` on) receives a submit
command on ``pineapple/<device>/jobs/submit``, answers on
``…/jobs/reply/<ref>`` and then publishes the job's retained state, which
this module follows until every device has finished or the time is up.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._paho import make_client

ROOT = "pineapple"
WAITING, SUBMITTED, DONE = "waiting", "submitted", "done"


@dataclass
class DeviceRun:
    """What one device did with the roll-out."""

    device: str
    ref: str
    phase: str = WAITING
    job_id: str | None = None
    state: str = "no answer"
    fraction: float | None = None
    message: str = ""
    error_code: str | None = None
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.phase == DONE:
            return self.state
        return "unreachable" if self.phase == WAITING else "timeout"


@dataclass
class Rollout:
    """Sends one job to many devices and follows it (see :meth:`run`)."""

    host: str
    port: int = 1883
    job: dict = field(default_factory=dict)  # e.g. {"job": "install", "packages": [...]}
    devices: list[str] | None = None        # None: every device seen online
    timeout: float = 300.0
    discover_seconds: float = 2.0
    username: str = ""
    password: str = ""
    ca_file: str = ""
    root: str = ROOT  # devices publish under <root>/<device> (the default topic prefix)

    def run(self, on_change: Callable[[dict[str, DeviceRun]], None] | None = None) -> dict[str, DeviceRun]:
        """Roll out and wait; returns every device's run (see DeviceRun.outcome)."""
        self._runs: dict[str, DeviceRun] = {}
        self._changed = threading.Condition()
        self._on_change = on_change or (lambda runs: None)
        client = self._connect()
        try:
            devices = self.devices if self.devices is not None else self._discover(client)
            self._submit(client, devices)
            self._wait()
        finally:
            client.disconnect()
            client.loop_stop()
        return self._runs

    # -------------------------------------------------------------- setup
    def _connect(self) -> Any:
        connected = threading.Event()
        client = make_client(f"pineapple-fleet-{os.getpid()}", on_message=self._on_message,
                             on_connect=lambda client, failure: connected.set())
        if self.username:
            client.username_pw_set(self.username, self.password or None)
        if self.ca_file:
            client.tls_set(ca_certs=self.ca_file)
        client.connect(self.host, self.port, 30)
        client.loop_start()
        if not connected.wait(10):
            client.loop_stop()
            raise ConnectionError(f"no answer from the MQTT broker at {self.host}:{self.port}")
        return client

    def _discover(self, client: Any) -> list[str]:
        self._online: set[str] = set()
        client.subscribe(f"{self.root}/+/status", 1)
        time.sleep(self.discover_seconds)  # retained "online" messages arrive right after subscribing
        client.unsubscribe(f"{self.root}/+/status")
        return sorted(self._online)

    def _submit(self, client: Any, devices: list[str]) -> None:
        for device in devices:
            ref = f"fleet-{os.urandom(6).hex()}"
            with self._changed:
                self._runs[device] = DeviceRun(device, ref)
            prefix = f"{self.root}/{device}/jobs"
            client.subscribe([(f"{prefix}/reply/{ref}", 1), (f"{prefix}/+/state", 1), (f"{prefix}/+/progress", 0)])
        for device in devices:  # subscribe everywhere first: no reply can be missed
            payload = json.dumps({**self.job, "ref": self._runs[device].ref})
            client.publish(f"{self.root}/{device}/jobs/submit", payload, qos=1)
        self._on_change(self._runs)

    def _wait(self) -> None:
        deadline = time.monotonic() + self.timeout
        with self._changed:
            while any(run.phase != DONE for run in self._runs.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    # ----------------------------------------------------------- messages
    def _on_message(self, client: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) == 3 and parts[2] == "status":
            if message.payload == b"online":
                self._online.add(parts[1])
            return
        run = self._runs.get(parts[1]) if len(parts) > 3 else None
        if run is None:
            return
        with self._changed:
            self._apply(run, parts[3:], message.payload)
            self._changed.notify_all()
        self._on_change(self._runs)

    def _apply(self, run: DeviceRun, rest: list[str], payload: bytes) -> None:
        data = _loads(payload)
        if rest[:1] == ["reply"] and rest[1:] == [run.ref] and isinstance(data, dict):
            self._on_reply(run, data)
        elif len(rest) == 2 and rest[0] == run.job_id and isinstance(data, dict):
            if rest[1] == "state":
                self._on_state(run, data)
            elif rest[1] == "progress" and run.phase != DONE:
                run.fraction, run.message = data.get("fraction"), data.get("message", "")

    @staticmethod
    def _on_reply(run: DeviceRun, reply: dict) -> None:
        if reply.get("ok"):
            run.phase, run.job_id, run.state = SUBMITTED, reply["payload"]["job_id"], "submitted"
        else:
            run.phase, run.state = DONE, "refused"
            run.error_code, run.error = reply.get("code"), reply.get("error")

    @staticmethod
    def _on_state(run: DeviceRun, summary: dict) -> None:
        run.state = summary.get("state", run.state)
        progress = summary.get("progress") or {}
        run.fraction, run.message = progress.get("fraction"), progress.get("message", "")
        run.error_code, run.error = summary.get("error_code"), summary.get("job_error")
        if summary.get("is_complete"):
            run.phase = DONE


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def summary_counts(runs: dict[str, DeviceRun]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs.values():
        counts[run.outcome] = counts.get(run.outcome, 0) + 1
    return counts
