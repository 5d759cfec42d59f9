"""Durable fleet roll-outs, the device's side (docs/mqtt.md, "Fleet roll-outs").

The broker is the durable, distributed part: the fleet CLI publishes one
retained record per device on ``P/rollouts/<id>``; a device gets it whenever
it connects (now or days later), applies it once, and keeps its outcome
retained on ``P/rollouts/<id>/result``, where ``fleet status`` reads it.

Exactly once, by roll-out id: the ids a device has applied (and their
outcomes) are kept in ``rollouts.json`` in its state directory, written
*before* the job is submitted, and also learnt back from the device's own
retained results on the broker (subscribed first, before the records, so a
device whose state directory was wiped does not apply a roll-out again). A
crash between the two steps leaves the roll-out ``failed`` with
``interrupted``, never applied twice. A job the daemon never started (still
queued or held when it stopped) ran nothing, nor did a submission refused
for want of room: the roll-out is ``pending`` (``not_started``,
``queue_full``, ``shutting_down``) and is applied at the record's next
delivery.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from ..api import actions
from ..api.protocol import INVALID_REQUEST, ApiError, parse_json
from ..jobs.state import INTERRUPTED, TERMINAL_STATES
from . import statefile
from .topics import Topics

log = logging.getLogger("pineapple.mqtt")

STORE_FILE = "rollouts.json"
MAX_REMEMBERED = 1000  # roll-outs a device remembers (oldest forgotten first)
REFUSED, CANCELLED, SUBMITTING, PENDING = "refused", "cancelled", "submitting", "pending"
NOT_STARTED = "not_started"  # error code: the job never started, so the roll-out is not used up
FINAL_STATES = frozenset(TERMINAL_STATES) | {REFUSED}
_RANK = {SUBMITTING: 0, "held": 1, "queued": 1, "running": 2}  # a result never moves back
Publish = Callable[[str, bytes], None]  # retained, QoS 1


class RolloutAgent:
    """Applies this device's roll-out records; publishes their outcomes."""

    def __init__(self, service: Any, topics: Topics, device: str, publish: Publish,
                 verifier: Any = None, state_dir: str | None = None,
                 encode: Callable[[Any], bytes] = lambda value: b"") -> None:
        self.service = service
        self.topics = topics
        self.device = device
        self._publish = publish
        self._encode = encode
        self._verifier = verifier
        self._lock = threading.RLock()
        self._path = os.path.join(state_dir, STORE_FILE) if state_dir else None
        self._results: OrderedDict[str, dict] = self._load()  # rollout id -> result
        self._jobs: dict[str, str] = {}  # job id -> rollout id, while the job is not final
        self._reconcile()

    # ------------------------------------------------------------ messages
    def on_record(self, topic: str, payload: bytes) -> None:
        """A record on ``P/rollouts/<id>`` (retained or live)."""
        rollout_id = self.topics.rollout_id_of(topic)
        if rollout_id is None or topic != self.topics.rollout(rollout_id) or not payload:
            return  # not a record, or a cleared one
        try:
            record = self._authentic(topic, payload, rollout_id)
        except ApiError as exc:  # not from the operator: the id stays free for the real record
            log.warning("MQTT: refusing roll-out %s: %s (%s)", rollout_id, exc.message, exc.code)
            self._announce(rollout_id, {"state": REFUSED, "error_code": exc.code, "error": exc.message})
            return
        with self._lock:
            known = self._results.get(rollout_id)
            if known is not None and _used_up(known):
                return  # applied (or decided) once already: exactly once
            if record.get("cancelled") is True:
                self._decide(rollout_id, {"state": CANCELLED, "error_code": "rollout_cancelled",
                                          "error": "the roll-out was cancelled before this device applied it"})
                return
            self._apply(rollout_id, record)

    def on_own_result(self, topic: str, payload: bytes) -> None:
        """A retained result of this device (from before a wiped state dir)."""
        rollout_id = self.topics.rollout_id_of(topic)
        if rollout_id is None or topic != self.topics.rollout_result(rollout_id) or not payload:
            return
        try:
            result = parse_json(payload.decode("utf-8"))
        except ValueError:
            return
        if not isinstance(result, dict) or not isinstance(result.get("state"), str):
            return
        with self._lock:
            if rollout_id in self._results or result["state"] == REFUSED or not _used_up(result):
                return
            log.info("MQTT: roll-out %s was applied here before (%s): not again", rollout_id, result["state"])
            self._results[rollout_id] = _clean(result)
            self._reconcile_one(rollout_id)
            self._save()

    def on_job_state(self, job_id: str, summary: dict) -> None:
        """A job-state event (job-event thread)."""
        rollout_id = self._jobs.get(job_id)
        if rollout_id is None:
            return
        with self._lock:
            self._update_from(rollout_id, summary)

    def republish(self) -> None:
        """Every known outcome again, retained (after a connect: the broker may have lost them)."""
        with self._lock:
            for rollout_id in list(self._results):
                self._send(rollout_id)

    # ------------------------------------------------------------ applying
    def _authentic(self, topic: str, payload: bytes, rollout_id: str) -> dict:
        try:
            record = parse_json(payload.decode("utf-8"))
        except (ValueError, RecursionError):
            raise ApiError("the roll-out record is not strict UTF-8 JSON", "invalid_json") from None
        if not isinstance(record, dict):
            raise ApiError("the roll-out record must be a JSON object", INVALID_REQUEST)
        if self._verifier is not None:
            record = self._verifier.check(topic, record, live=False)  # durable: its age does not matter
        if record.get("rollout") != rollout_id:
            raise ApiError("the record's 'rollout' does not match its topic", INVALID_REQUEST)
        return record

    def _apply(self, rollout_id: str, record: dict) -> None:
        """Remember, then submit (a crash in between: interrupted, never twice). Lock held."""
        self._decide(rollout_id, {"state": SUBMITTING})
        job = record.get("job")
        try:
            if not isinstance(job, dict) or "action" in job:
                raise ApiError("the record's 'job' must be the socket API's submit fields (no 'action')",
                               INVALID_REQUEST)
            answer = actions.handle(self.service, {**job, "action": "submit"})
        except ApiError as exc:
            if exc.code in _TRANSIENT:  # no room now: pending, applied at the record's next delivery
                log.warning("MQTT: roll-out %s not applied yet: %s (%s)", rollout_id, exc.message, exc.code)
                self._decide(rollout_id, {"state": PENDING, "error_code": exc.code, "error": exc.message})
                return
            log.warning("MQTT: roll-out %s refused: %s (%s)", rollout_id, exc.message, exc.code)
            self._decide(rollout_id, {"state": REFUSED, "error_code": exc.code, "error": exc.message})
            return
        except Exception as exc:  # never let a record kill paho's thread
            log.exception("MQTT: roll-out %s failed", rollout_id)
            self._decide(rollout_id, {"state": REFUSED, "error_code": "internal_error", "error": str(exc)})
            return
        job_id = answer["job_id"]
        log.info("MQTT: roll-out %s: job %s%s", rollout_id, job_id,
                 " (an identical job already active)" if answer["duplicate"] else "")
        self._results[rollout_id] = {"state": answer["state"], "job_id": job_id}
        self._jobs[job_id] = rollout_id
        current = self.service.manager.get_job(job_id, remove_if_complete=False)
        if current is not None:
            self._update_from(rollout_id, current.summary(), force=True)
        else:
            self._save()
            self._send(rollout_id)

    def _update_from(self, rollout_id: str, summary: dict, force: bool = False) -> None:
        """Move a result forward from the job's summary (never back). Lock held."""
        result = self._results.get(rollout_id)
        if result is None or (result.get("state") in FINAL_STATES and not force):
            return
        state = summary.get("state")
        final = bool(summary.get("is_complete")) and state in TERMINAL_STATES
        if not final and _RANK.get(state, 0) < _RANK.get(result.get("state"), 0):
            return  # an event older than what is published already
        self._take_outcome(result, summary)
        if final:
            self._jobs.pop(result.get("job_id"), None)
        self._save()
        self._send(rollout_id)

    def _take_outcome(self, result: dict, summary: dict) -> None:
        """The job's state, code and error into ``result``; a job that ended
        ``interrupted`` before it ever started leaves the roll-out pending. Lock held."""
        state = summary.get("state")
        if state == INTERRUPTED and self._never_started(result.get("job_id")):
            result.update(state=PENDING, error_code=NOT_STARTED,
                          error="the daemon stopped before the job started; applied when the record comes again")
            return
        result.update(state=state, error_code=summary.get("error_code"), error=summary.get("job_error"))

    def _never_started(self, job_id: str | None) -> bool:
        job = self.service.manager.get_job(job_id, remove_if_complete=False) if job_id else None
        return job is not None and job.started_at is None and not job.attempts

    def _decide(self, rollout_id: str, result: dict) -> None:
        """Record (and publish) an outcome that needs no job. Lock held."""
        self._results[rollout_id] = result
        self._results.move_to_end(rollout_id)
        while len(self._results) > MAX_REMEMBERED:
            self._results.popitem(last=False)
        self._save()
        if result["state"] != SUBMITTING:
            self._send(rollout_id)

    def _announce(self, rollout_id: str, result: dict) -> None:
        """Publish a refusal without remembering it (the id is not used up)."""
        self._publish(self.topics.rollout_result(rollout_id), self._payload(rollout_id, result))

    def _send(self, rollout_id: str) -> None:
        result = self._results[rollout_id]
        if result.get("state") != SUBMITTING:
            self._publish(self.topics.rollout_result(rollout_id), self._payload(rollout_id, result))

    def _payload(self, rollout_id: str, result: dict) -> bytes:
        return self._encode({"rollout": rollout_id, "device": self.device, "state": result.get("state"),
                             "job_id": result.get("job_id"), "error_code": result.get("error_code"),
                             "error": result.get("error"), "updated_at": round(time.time(), 3)})

    # ---------------------------------------------------- after a restart
    def _reconcile(self) -> None:
        """Outcomes of roll-outs whose job ended (or was lost) while the daemon was down."""
        with self._lock:
            for rollout_id in list(self._results):
                self._reconcile_one(rollout_id)
            self._save()

    def _reconcile_one(self, rollout_id: str) -> None:
        result = self._results[rollout_id]
        if result.get("state") in FINAL_STATES or not _used_up(result):
            return  # decided, or free for the record's next delivery
        job_id = result.get("job_id")
        job = self.service.manager.get_job(job_id, remove_if_complete=False) if job_id else None
        if job is None:
            result.update(state="failed", error_code="interrupted",
                          error="the daemon stopped while applying the roll-out; not applied again")
            return
        self._jobs[job_id] = rollout_id
        summary = job.summary()
        if summary.get("is_complete"):
            self._take_outcome(result, summary)
            self._jobs.pop(job_id, None)
        else:
            result["state"] = summary.get("state")

    # --------------------------------------------------------------- store
    def _load(self) -> OrderedDict[str, dict]:
        data = statefile.load(self._path, "roll-outs applied before are not known (their results on the "
                                          "broker still are)")
        results: OrderedDict[str, dict] = OrderedDict()
        if isinstance(data, dict):
            for rollout_id, result in data.items():
                if isinstance(rollout_id, str) and isinstance(result, dict):
                    results[rollout_id] = _clean(result)
        return results

    def _save(self) -> None:
        statefile.save(self._path, dict(self._results))

    @property
    def results(self) -> dict[str, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self._results.items()}


# Outcomes that leave the id free: nothing ran (refused for want of room, or
# the job never started), and the next delivery of the record (the next
# connect) may apply it. Every other outcome uses it up.
_TRANSIENT = frozenset(("queue_full", "shutting_down", NOT_STARTED))


def _used_up(result: dict) -> bool:
    return result.get("error_code") not in _TRANSIENT


def _clean(result: dict) -> dict:
    return {key: result.get(key) for key in ("state", "job_id", "error_code", "error")
            if result.get(key) is not None}
