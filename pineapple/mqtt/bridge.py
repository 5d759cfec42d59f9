"""The daemon's MQTT side: job events published to the broker, commands
taken from it. The broker being down, slow or restarted never blocks or
fails a job: events are handed to a :class:`PublishBuffer` on the job-event
thread, and paho's own network thread does the talking.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from ..api import actions
from ..api.protocol import INVALID_JSON, INVALID_REQUEST, ApiError, parse_json
from ..jobs.events import LOG, PROGRESS, REMOVED, STATE, JobEvent
from ._paho import make_client, wait_published
from .buffer import Message, PublishBuffer
from .rollouts import RolloutAgent
from .signing import Verifier, describe, load_key
from .topics import REF_PATTERN, Topics, device_id

log = logging.getLogger("pineapple.mqtt")

STATE_QOS = 1
RECONNECT_MAX = 30
SWEEP_SECONDS = 3.0  # how long to listen for stale retained states after connecting
RETRY_SECONDS = 1.0  # paho's queue was full: try the owed states again after this
QUEUE_FULL = 15  # paho's MQTT_ERR_QUEUE_SIZE (same number in 1.5 and 2.x)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class MqttBridge:
    """Publishes every job's state/progress/log, serves submit/cancel commands
    and applies roll-outs (with ``commands`` on), signed ones only when a
    ``command_key`` is set."""

    def __init__(self, service: Any, settings: Any, state_dir: str | None = None) -> None:
        self.service = service
        self.settings = settings
        self.device = device_id(settings.device_id)
        self.topics = Topics.for_device(self.device, settings.topic_prefix)
        self.buffer = PublishBuffer(settings.buffer)
        # One flush at a time (the event thread, paho's thread and timers all
        # flush): two taking turns would publish a batch out of order.
        self._flush_lock = threading.Lock()
        self._highest: dict[str, float] = {}  # highest progress fraction published per job
        self._retry_armed = False
        self.connected = False
        # Publishing waits for the SUBACK after a (re)connect: paho resends what it
        # still held from the old connection right after on_connect, and a stale
        # "running" must never overtake (and replace) a newer retained state.
        self._ready = False
        self._sweep_mid: int | None = None
        self._stopping = False  # a disconnect we asked for is no "connection lost"
        self.verifier = Verifier(load_key(settings.command_key), settings.command_max_age, state_dir) \
            if settings.command_key else None
        self.rollouts = RolloutAgent(service, self.topics, self.device, self._publish_retained, self.verifier,
                                     state_dir, encode=_json) if settings.commands else None
        self._results_mid: int | None = None
        self._records_mid: int | None = None
        self.client = make_client(settings.client_id or f"pineapple-jobd-{self.device}",
                                  on_connect=self._on_connect, on_disconnect=self._on_disconnect,
                                  on_publish=self._on_publish, on_subscribe=self._on_subscribe,
                                  on_message=self._on_message)
        self._configure()
        self._unsubscribe = None

    def _configure(self) -> None:
        s, c = self.settings, self.client
        if s.username:
            c.username_pw_set(s.username, s.password or None)
        if s.ca_file or s.cert_file:
            c.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None)
        c.will_set(self.topics.status, b"offline", qos=1, retain=True)
        c.reconnect_delay_set(1, RECONNECT_MAX)
        c.max_queued_messages_set(max(100, s.buffer))

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect in the background (never blocks on a dead broker)."""
        self._unsubscribe = self.service.manager.add_listener(self._on_job_event)
        for job in reversed(self.service.manager.list_jobs()):  # every connect publishes them (owe_all_states)
            self.buffer.add_state(self._state_message(job.id, job.summary()))
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self.client.loop_start()
        log.info("MQTT: publishing to %s:%s under %s", self.settings.host, self.settings.port, self.topics.prefix)

    def stop(self) -> None:
        """Say ``offline``, disconnect, stop paho's thread."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopping = True
        if self.connected:
            info = self.client.publish(self.topics.status, b"offline", qos=1, retain=True)
            wait_published(info, 2.0)
        self.client.disconnect()
        self.client.loop_stop()
        log.info("MQTT: disconnected")

    def notify(self, summary: dict, message: str) -> None:
        """Publish a job hook's notification (QoS 1, not retained)."""
        payload = _json({"device": self.device, "message": message, "job": summary})
        if self.client.publish(self.topics.notifications, payload, qos=1).rc == QUEUE_FULL:
            raise RuntimeError("too many MQTT messages waiting for the broker; notification dropped")

    def status(self) -> dict:
        return {"connected": self.connected, "prefix": self.topics.prefix,
                "pending_states": self.buffer.pending_states(), "dropped": self.buffer.dropped}

    # --------------------------------------------------------- job events
    def _on_job_event(self, event: JobEvent) -> None:
        if event.kind == STATE:
            self.buffer.add_state(self._state_message(event.job_id, event.data))
            if self.rollouts is not None:
                self.rollouts.on_job_state(event.job_id, event.data)
        elif event.kind == REMOVED:
            self._highest.pop(event.job_id, None)
            self.buffer.add_clear(event.job_id, self.topics.state(event.job_id))
        elif event.kind == PROGRESS:
            payload = _json(self._monotonic(event.job_id, event.data.to_dict()))
            self.buffer.add_stream(Message(self.topics.progress(event.job_id), payload, 0, False))
        elif event.kind == LOG:
            self.buffer.add_stream(Message(self.topics.log(event.job_id), event.data.encode(), 0, False))
        if self._ready:
            self._flush()

    def _monotonic(self, job_id: str, progress: dict) -> dict:
        """Progress as published never goes back (a retry starts over at 0):
        the fraction stays at the highest reached; the message is the new one.
        Called on the job-event thread only, in event order."""
        fraction = progress.get("fraction")
        if fraction is not None:
            highest = self._highest.get(job_id)
            if highest is not None and fraction < highest:
                progress["fraction"] = highest
            else:
                self._highest[job_id] = fraction
        return progress

    def _state_message(self, job_id: str, summary: dict) -> Message:
        return Message(self.topics.state(job_id), _json(summary), STATE_QOS, True, job_id)

    def _flush(self) -> None:
        with self._flush_lock:
            owed = self.buffer.take_all()
            for index, entry in enumerate(owed):
                message = entry[1]
                info = self.client.publish(message.topic, message.payload, message.qos, message.retain)
                if info.rc == QUEUE_FULL:  # paho holds too much already: keep the rest owed
                    self.buffer.unsent(*owed[index:])
                    self._retry_later()
                    return
                self.buffer.sent(info.mid, entry)

    def _retry_later(self) -> None:
        if not self._retry_armed:
            self._retry_armed = True
            self.service.manager.timers.call_later(RETRY_SECONDS, self._retry)

    def _retry(self) -> None:
        self._retry_armed = False
        if self._ready:
            self._flush()

    # ------------------------------------------------------ paho callbacks
    def _on_connect(self, client: Any, failure: str | None) -> None:
        if failure is not None:
            log.warning("MQTT: broker refused the connection: %s", failure)
            return
        self.connected = True
        log.info("MQTT: connected to %s:%s", self.settings.host, self.settings.port)
        self.buffer.owe_all_states()  # a restarted broker has lost them; any reconnect might
        if self.settings.commands:
            client.subscribe([(self.topics.submit, 1), (self.topics.cancel, 1)])
            # Own retained results first: what was applied here before is known before any record comes.
            self._results_mid = client.subscribe(self.topics.all_rollout_results, 1)[1]
        # Sweep retained states of forgotten jobs; its SUBACK also says paho's resend is done.
        self._sweep_mid = client.subscribe(self.topics.all_states, 1)[1]
        self.service.manager.timers.call_later(SWEEP_SECONDS, self._end_sweep)

    def _on_subscribe(self, client: Any, mid: int) -> None:
        if mid == self._results_mid:  # the retained results came before this SUBACK... (docs/mqtt.md)
            self.rollouts.republish()
            self._records_mid = client.subscribe(self.topics.all_rollouts, 1)[1]
        elif mid == self._records_mid:  # ...and before this one: no need to hear our own results any more
            client.unsubscribe(self.topics.all_rollout_results)
        if mid == self._sweep_mid:
            self._ready = True
            # "online" once publishing: a subscriber that waits for it sees every state from then on.
            client.publish(self.topics.status, b"online", qos=1, retain=True)
            self._flush()

    def _end_sweep(self) -> None:
        if self.connected:
            self.client.unsubscribe(self.topics.all_states)

    def _on_disconnect(self, client: Any, reason: str) -> None:
        if self.connected and not self._stopping:
            log.warning("MQTT: connection lost (%s); reconnecting", reason)
        self.connected = self._ready = False
        self.buffer.connection_lost()

    def _on_publish(self, client: Any, mid: int) -> None:
        self.buffer.acknowledged(mid)

    def _on_message(self, client: Any, message: Any) -> None:
        topic = message.topic
        if topic in (self.topics.submit, self.topics.cancel):
            self._command(topic, message.payload)
        elif self.rollouts is not None and topic.startswith(self.topics.rollout("")):
            if topic.endswith("/result"):
                self.rollouts.on_own_result(topic, message.payload)
            else:
                self.rollouts.on_record(topic, message.payload)
        elif message.retain:
            self._sweep(message.topic, message.payload)

    def _sweep(self, topic: str, payload: bytes) -> None:
        job_id = self.topics.job_id_of(topic)
        if job_id and payload and self.service.manager.get_job(job_id, remove_if_complete=False) is None:
            log.info("MQTT: clearing retained state of unknown job %s", job_id)
            self.client.publish(topic, b"", qos=1, retain=True)

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True)

    # ------------------------------------------------------------ commands
    def _command(self, topic: str, payload: bytes) -> None:
        ref = None  # unreadable: the answer goes to P/jobs/reply, no valid ref's topic
        try:
            request = _decode_command(payload)
            ref = request["ref"]
            if self.verifier is not None:
                request = self._verified(topic, request)
            del request["ref"]
            _check_command(request)
            request["action"] = "submit" if topic == self.topics.submit else "cancel"
            answer = {"ok": True, "payload": actions.handle(self.service, request)}
        except ApiError as exc:
            answer = {"ok": False, "error": exc.message, "code": exc.code}
        except Exception as exc:  # never let a command kill paho's thread
            log.exception("MQTT command failed")
            answer = {"ok": False, "error": f"internal error: {exc}", "code": "internal_error"}
        answer["ref"] = ref
        answer["device"] = self.device
        self.client.publish(self.topics.reply(ref), _json(answer), qos=1)

    def _verified(self, topic: str, request: dict) -> dict:
        """The command without its signature, or ApiError (logged: nothing runs)."""
        try:
            return self.verifier.check(topic, request, live=True)
        except ApiError as exc:
            log.warning("MQTT: refusing %s command (%s): %s (%s)", topic.rsplit("/", 1)[-1],
                        describe(request), exc.message, exc.code)
            raise


def _decode_command(payload: bytes) -> dict:
    try:
        request = parse_json(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError("command is not valid UTF-8", INVALID_JSON) from None
    except RecursionError:
        raise ApiError("command is not valid JSON: nested too deeply", INVALID_JSON) from None
    except ValueError as exc:
        raise ApiError(f"command is not valid JSON: {exc}", INVALID_JSON) from None
    if not isinstance(request, dict):
        raise ApiError("command must be a JSON object", INVALID_REQUEST)
    ref = request.get("ref")
    if not isinstance(ref, str) or not REF_PATTERN.match(ref):
        raise ApiError("command needs a 'ref' of 1-64 letters, digits, '_', '-' or '.'", INVALID_REQUEST)
    return request


def _check_command(request: dict) -> None:
    if "action" in request:
        raise ApiError("the topic gives the action: remove 'action' from the command", INVALID_REQUEST)
