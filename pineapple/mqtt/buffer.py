"""What the publisher still owes the broker.

Job states are retained and must not be lost: the latest state of every job
is kept until it is handed to paho, then tracked until the broker
acknowledged it (QoS 1); what was in flight when the connection dropped is
owed again and republished after the reconnect (unless a newer state for
the job replaced it). Progress and log messages are best-effort: a bounded queue
whose oldest entries are dropped while the broker is away.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import NamedTuple

CLEAR = b""  # an empty retained message removes the retained state


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    job_id: str | None = None  # set for state (and clear) messages


class PublishBuffer:
    """Thread-safe: events come from the job-event thread, acks from paho's."""

    def __init__(self, capacity: int = 1000) -> None:
        self._lock = threading.Lock()
        self._states: OrderedDict[str, Message] = OrderedDict()  # owed: not handed to paho yet
        self._stream: deque[Message] = deque(maxlen=capacity)
        self._inflight: dict[int, Message] = {}
        self._early_acks: set[int] = set()  # acks that beat sent() (paho's thread is fast)
        self._retained: set[str] = set()  # jobs whose state the broker holds
        self.dropped = 0

    def add_state(self, message: Message) -> None:
        with self._lock:
            self._states.pop(message.job_id, None)  # keep order of the newest update
            self._states[message.job_id] = message

    def add_clear(self, job_id: str, topic: str) -> bool:
        """Queue removal of a job's retained state; False if there is none to remove."""
        with self._lock:
            self._states.pop(job_id, None)
            if job_id not in self._retained:
                return False
            self._states[job_id] = Message(topic, CLEAR, 1, True, job_id)
            return True

    def add_stream(self, message: Message) -> None:
        with self._lock:
            if len(self._stream) == self._stream.maxlen:
                self.dropped += 1
            self._stream.append(message)

    def take_all(self) -> list[Message]:
        """Everything owed, states first (oldest first); call :meth:`sent`
        for each once handed to paho."""
        with self._lock:
            owed = list(self._states.values()) + list(self._stream)
            self._states.clear()
            self._stream.clear()
            return owed

    def sent(self, mid: int, message: Message) -> None:
        """``message`` was handed to paho as ``mid`` (every message, so that
        acks of stream messages are matched too)."""
        with self._lock:
            if mid in self._early_acks:
                self._early_acks.discard(mid)
                self._settle(message)
            else:
                self._inflight[mid] = message

    def acknowledged(self, mid: int) -> None:
        with self._lock:
            message = self._inflight.pop(mid, None)
            if message is None:
                if len(self._early_acks) > 1024:  # acks of paho's resends after a reconnect
                    self._early_acks.clear()
                self._early_acks.add(mid)
                return
            self._settle(message)

    def _settle(self, message: Message) -> None:
        """The broker has ``message``. Lock held."""
        if message.job_id is None:
            return
        if message.payload == CLEAR:
            self._retained.discard(message.job_id)
        else:
            self._retained.add(message.job_id)

    def connection_lost(self) -> None:
        """States in flight are owed again (unless a newer one is queued)."""
        with self._lock:
            for message in self._inflight.values():
                if message.job_id is not None and message.job_id not in self._states:
                    self._states[message.job_id] = message
                    self._states.move_to_end(message.job_id, last=False)
            self._inflight.clear()
            self._early_acks.clear()

    def pending_states(self) -> int:
        """States not yet acknowledged by the broker."""
        with self._lock:
            return len(self._states) + sum(1 for m in self._inflight.values() if m.job_id is not None)
