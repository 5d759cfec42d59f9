"""Fleet roll-outs, the operator's side: durable records on the broker.

A roll-out is one retained record per device on
``<root>/<device>/rollouts/<id>`` (signed when a command key is given). Each
device applies it once, whenever it comes online, and keeps its outcome
retained on ``…/rollouts/<id>/result`` (pineapple/mqtt/rollouts.py). So the
broker holds the whole roll-out: :meth:`Fleet.status` reads it back at any
later time, from any machine, and :meth:`Fleet.cancel` stops it reaching
the devices that have not applied it yet. Nothing is kept on the operator's
machine.

Reading "everything retained" needs an end marker MQTT 3.1.1 does not have:
after subscribing, the client publishes a message to a topic of its own
and waits for it to come back. The broker handles one client's packets in
order, so the retained messages of the subscriptions before it are
delivered first (:meth:`Fleet.sync`).
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._paho import make_client, wait_published
from .signing import sign
from .topics import REF_PATTERN

ROOT = "pineapple"
PENDING = "pending"
FINAL_OUTCOMES = frozenset(("succeeded", "failed", "cancelled", "interrupted", "refused"))


@dataclass
class DeviceRun:
    """Where one device is with a roll-out."""

    device: str
    state: str = PENDING  # its result's state: queued, running, succeeded, failed, refused, ...
    job_id: str | None = None
    fraction: float | None = None
    message: str = ""
    error_code: str | None = None
    error: str | None = None
    cancelled: bool = False  # the record says cancelled (what counts while the device has no result)
    record: dict | None = field(default=None, repr=False)

    @property
    def outcome(self) -> str:
        """``pending`` (not applied yet), a job state, ``refused``, or ``cancelled``."""
        if self.state == PENDING and self.cancelled:
            return "cancelled"
        return self.state

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES

    def to_dict(self) -> dict:
        return {"device": self.device, "outcome": self.outcome, "state": self.state, "job_id": self.job_id,
                "fraction": self.fraction, "message": self.message, "error_code": self.error_code,
                "error": self.error}


def new_rollout_id() -> str:
    """``20250101T120000-3fa2c1``: sortable by creation time, unique enough."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + os.urandom(3).hex()


def summary_counts(runs: dict[str, DeviceRun]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs.values():
        counts[run.outcome] = counts.get(run.outcome, 0) + 1
    return counts


class Fleet:
    """One connection to the broker for creating, following and cancelling roll-outs."""

    def __init__(self, host: str, port: int = 1883, *, username: str = "", password: str = "",
                 ca_file: str = "", cert_file: str = "", key_file: str = "", root: str = ROOT,
                 command_key: bytes | None = None, connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.root = root.rstrip("/")
        self._auth = (username, password)
        self._tls = (ca_file, cert_file, key_file)
        self._key = command_key
        self._connect_timeout = connect_timeout
        self._client_id = f"pineapple-fleet-{os.getpid()}-{os.urandom(3).hex()}"
        self._sync_topic = f"{self.root}-fleet/sync/{self._client_id}"
        self._changed = threading.Condition()
        self._synced: set[str] = set()
        self._statuses: dict[str, bytes] = {}
        self._rollout: str | None = None
        self._runs: dict[str, DeviceRun] = {}
        self._on_change: Callable[[dict[str, DeviceRun]], None] = lambda runs: None
        self._client: Any = None

    # ---------------------------------------------------------- connection
    def __enter__(self) -> Fleet:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        connected, refused = threading.Event(), []

        def on_connect(client: Any, failure: str | None) -> None:
            if failure is not None:
                refused.append(failure)
            connected.set()

        client = make_client(self._client_id, on_connect=on_connect, on_message=self._on_message)
        if self._auth[0]:
            client.username_pw_set(self._auth[0], self._auth[1] or None)
        ca_file, cert_file, key_file = self._tls
        if ca_file or cert_file:
            client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None, keyfile=key_file or None)
        client.connect(self.host, self.port, 30)
        client.loop_start()
        if not connected.wait(self._connect_timeout) or refused:
            client.loop_stop()
            why = f"it refused the connection: {refused[0]}" if refused else "no answer"
            raise ConnectionError(f"MQTT broker at {self.host}:{self.port}: {why}")
        self._client = client
        self._subscribe([(self._sync_topic, 1)])

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every retained message of the subscriptions made so far has arrived."""
        token = os.urandom(8).hex()
        self._client.publish(self._sync_topic, token, qos=1)
        with self._changed:
            if not self._changed.wait_for(lambda: token in self._synced, timeout):
                raise ConnectionError(f"the MQTT broker at {self.host}:{self.port} did not answer in {timeout:g}s")

    def _subscribe(self, topics: list[tuple[str, int]]) -> None:
        self._client.subscribe(topics)

    # ------------------------------------------------------------ devices
    def discover(self) -> list[str]:
        """Every device with a retained status on the broker: online now, or
        offline (it has been online once; a roll-out waits for it)."""
        topic = f"{self.root}/+/status"
        self._subscribe([(topic, 1)])
        self.sync()
        self._client.unsubscribe(topic)
        with self._changed:
            return sorted(device for device, status in self._statuses.items() if status)

    # ----------------------------------------------------------- roll-outs
    def create(self, job: dict, devices: list[str], rollout_id: str | None = None) -> str:
        """Publish a roll-out of ``job`` (the socket API's submit fields) to
        ``devices``; returns its id. Follow it with :meth:`follow`."""
        rollout_id = rollout_id or new_rollout_id()
        if not REF_PATTERN.match(rollout_id):
            raise ValueError("a roll-out id is 1-64 letters, digits, '_', '-' or '.'")
        self.watch(rollout_id, sync=False)
        with self._changed:
            for device in devices:
                self._runs.setdefault(device, DeviceRun(device))
        record = {"rollout": rollout_id, "job": dict(job), "created_at": round(time.time(), 3)}
        self._publish_records(rollout_id, devices, record)
        return rollout_id

    def watch(self, rollout_id: str, sync: bool = True) -> dict[str, DeviceRun]:
        """Subscribe to a roll-out's records, results and its jobs' progress;
        with ``sync``, return once what the broker retains has arrived."""
        with self._changed:
            self._rollout, self._runs = rollout_id, {}
        base = f"{self.root}/+/rollouts/{rollout_id}"
        self._subscribe([(base, 1), (f"{base}/result", 1), (f"{self.root}/+/jobs/+/progress", 0)])
        if sync:
            self.sync()
        return self.runs()

    def status(self, rollout_id: str) -> dict[str, DeviceRun]:
        """Every target device of the roll-out and where it is, as the broker has it now."""
        return self.watch(rollout_id)

    def follow(self, timeout: float, on_change: Callable[[dict[str, DeviceRun]], None] | None = None
               ) -> dict[str, DeviceRun]:
        """Wait until every device of the watched roll-out is final, or ``timeout``."""
        self._on_change = on_change or (lambda runs: None)
        self._on_change(self.runs())
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(run.final for run in self._runs.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return self.runs()

    def cancel(self, rollout_id: str) -> tuple[list[str], dict[str, DeviceRun]]:
        """Cancel the roll-out for every device that has not applied it: its
        record is replaced by a cancelled one. Returns the devices cancelled
        now, and every device's run (those already started are left alone)."""
        runs = self.status(rollout_id)
        pending = sorted(name for name, run in runs.items() if run.outcome == PENDING)
        for device in pending:
            record = dict(runs[device].record or {"rollout": rollout_id})
            record.update(cancelled=True, cancelled_at=round(time.time(), 3))
            self._publish_records(rollout_id, [device], record)
        with self._changed:
            for device in pending:
                self._runs[device].cancelled = True
        return pending, self.runs()

    def runs(self) -> dict[str, DeviceRun]:
        with self._changed:
            return {name: DeviceRun(**vars(run)) for name, run in sorted(self._runs.items())}

    def _publish_records(self, rollout_id: str, devices: list[str], record: dict) -> None:
        sent = []
        for device in devices:
            topic = f"{self.root}/{device}/rollouts/{rollout_id}"
            body = sign(self._key, topic, record) if self._key else record
            sent.append(self._client.publish(topic, json.dumps(body, separators=(",", ":")), qos=1, retain=True))
        for info in sent:
            if not wait_published(info, 30.0):
                raise ConnectionError(f"the MQTT broker at {self.host}:{self.port} did not take the roll-out")

    # ----------------------------------------------------------- messages
    def _on_message(self, client: Any, message: Any) -> None:
        topic = message.topic
        if topic == self._sync_topic:
            with self._changed:
                self._synced.add(message.payload.decode("ascii", "replace"))
                self._changed.notify_all()
            return
        if not topic.startswith(self.root + "/"):
            return
        parts = topic[len(self.root) + 1:].split("/")
        data = _loads(message.payload)
        with self._changed:
            changed = self._apply(parts, message.payload, data)
            if changed:
                self._changed.notify_all()
        if changed:
            self._on_change(self.runs())

    def _apply(self, parts: list[str], payload: bytes, data: Any) -> bool:
        """Fold one message into the runs. Lock held."""
        if len(parts) == 2 and parts[1] == "status":
            self._statuses[parts[0]] = payload
            return False
        device = parts[0]
        if len(parts) >= 3 and parts[1] == "rollouts" and parts[2] == self._rollout and isinstance(data, dict):
            run = self._runs.setdefault(device, DeviceRun(device))
            if len(parts) == 3:
                run.record = {k: v for k, v in data.items() if k not in ("ts", "nonce", "sig")}
                run.cancelled = data.get("cancelled") is True
            elif len(parts) == 4 and parts[3] == "result":
                _take_result(run, data)
            return True
        run = self._runs.get(device)
        if len(parts) == 4 and parts[1] == "jobs" and parts[3] == "progress" and run is not None \
                and run.job_id == parts[2] and not run.final and isinstance(data, dict):
            run.fraction, run.message = data.get("fraction"), str(data.get("message") or "")
            return True
        return False


def _take_result(run: DeviceRun, result: dict) -> None:
    state = result.get("state")
    if not isinstance(state, str):
        return
    if run.final and state not in FINAL_OUTCOMES:
        return  # an older result delivered late
    run.state = state
    run.job_id = result.get("job_id") or run.job_id
    run.error_code, run.error = result.get("error_code"), result.get("error")
    if state == "succeeded":
        run.fraction = 1.0


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


@dataclass
class Rollout:
    """Create a roll-out and follow it (what ``pineapple-jobs fleet install`` does)."""

    host: str
    port: int = 1883
    job: dict = field(default_factory=dict)  # e.g. {"job": "install", "packages": [...]}
    devices: list[str] | None = None        # None: every device with a status on the broker
    timeout: float = 300.0
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    command_key: bytes | None = None
    root: str = ROOT  # devices publish under <root>/<device> (the default topic prefix)
    rollout_id: str | None = None

    def run(self, on_change: Callable[[dict[str, DeviceRun]], None] | None = None) -> dict[str, DeviceRun]:
        """Roll out and wait up to ``timeout``; devices not done by then go
        on (their outcome says where they are; ``pending``: not applied yet)."""
        with self.fleet() as fleet:
            devices = self.devices if self.devices is not None else fleet.discover()
            self.rollout_id = fleet.create(self.job, devices, self.rollout_id)
            return fleet.follow(self.timeout, on_change)

    def fleet(self) -> Fleet:
        return Fleet(self.host, self.port, username=self.username, password=self.password, ca_file=self.ca_file,
                     cert_file=self.cert_file, key_file=self.key_file, root=self.root,
                     command_key=self.command_key)
