"""What the publisher still owes the broker.

Job states are retained and must not be lost: the latest state of every job
is kept until it is handed to paho, then tracked until the broker
acknowledged it (QoS 1); what was in flight when the connection dropped is
owed again and republished after the reconnect (unless a newer state for
the job replaced it). The newest state of every job the daemon knows is
also remembered, so that all of them can be owed again on every connect (a
restarted broker without persistence has forgotten its retained messages).
Progress and log messages are best-effort: a bounded queue whose oldest
entries are dropped while the broker is away.

Everything owed is handed out in the order it happened (a sequence number
per message): a job's progress never overtakes an earlier one, nor its state.
"""
from __future__ import annotations

import heapq
import threading
from collections import OrderedDict, deque
from typing import NamedTuple, Tuple  # noqa: UP035 (a runtime alias: 3.7 has no tuple[...])

CLEAR = b""  # an empty retained message removes the retained state


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    job_id: str | None = None  # set for state (and clear) messages


Entry = Tuple[int, Message]  # noqa: UP006 (sequence number, message)


class PublishBuffer:
    """Thread-safe: events come from the job-event thread, acks from paho's."""

    def __init__(self, capacity: int = 1000) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._states: OrderedDict[str, Entry] = OrderedDict()  # owed: not handed to paho yet
        self._stream: deque[Entry] = deque(maxlen=capacity)
        self._inflight: dict[int, Entry] = {}
        self._early_acks: set[int] = set()  # acks that beat sent() (paho's thread is fast)
        self._retained: set[str] = set()  # jobs whose state the broker holds
        self._latest: dict[str, Message] = {}  # newest state of every known job
        self.dropped = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def add_state(self, message: Message) -> None:
        with self._lock:
            self._states.pop(message.job_id, None)  # keep order of the newest update
            self._states[message.job_id] = (self._next(), message)
            self._latest[message.job_id] = message

    def add_clear(self, job_id: str, topic: str) -> bool:
        """Queue removal of a job's retained state; False if there is none to remove."""
        with self._lock:
            self._states.pop(job_id, None)
            self._latest.pop(job_id, None)
            if job_id not in self._retained:
                return False
            self._states[job_id] = (self._next(), Message(topic, CLEAR, 1, True, job_id))
            return True

    def add_stream(self, message: Message) -> None:
        with self._lock:
            if len(self._stream) == self._stream.maxlen:
                self.dropped += 1
            self._stream.append((self._next(), message))

    def owe_all_states(self) -> None:
        """Owe the newest state of every known job again (on connect: the
        broker may have lost them). A state already owed keeps its place."""
        with self._lock:
            for job_id, message in self._latest.items():
                if job_id not in self._states:
                    self._states[job_id] = (self._next(), message)

    def take_all(self) -> list[Entry]:
        """Everything owed, in the order it happened; call :meth:`sent`
        for each once handed to paho (or :meth:`unsent` if paho refused it)."""
        with self._lock:
            owed = list(heapq.merge(sorted(self._states.values()), self._stream))
            self._states.clear()
            self._stream.clear()
            return owed

    def sent(self, mid: int, entry: Entry) -> None:
        """``entry`` was handed to paho as ``mid`` (every message, so that
        acks of stream messages are matched too)."""
        with self._lock:
            if mid in self._early_acks:
                self._early_acks.discard(mid)
                self._settle(entry[1])
            else:
                self._inflight[mid] = entry

    def unsent(self, *entries: Entry) -> None:
        """paho did not take ``entries`` (its queue is full): states are owed
        again unless newer ones are; stream messages are lost (counted)."""
        with self._lock:
            self.dropped += sum(1 for _, message in entries if message.job_id is None)
            self._reowe(*entries)

    def acknowledged(self, mid: int) -> None:
        with self._lock:
            entry = self._inflight.pop(mid, None)
            if entry is None:
                if len(self._early_acks) > 1024:  # acks of paho's resends after a reconnect
                    self._early_acks.clear()
                self._early_acks.add(mid)
                return
            self._settle(entry[1])

    def _settle(self, message: Message) -> None:
        """The broker has ``message``. Lock held."""
        if message.job_id is None:
            return
        if message.payload == CLEAR:
            self._retained.discard(message.job_id)
        else:
            self._retained.add(message.job_id)

    def _reowe(self, *entries: Entry) -> None:
        """Owe the states among ``entries`` again, in their original order. Lock held."""
        added = False
        for seq, message in entries:
            job_id = message.job_id
            if job_id is None or job_id in self._states:
                continue  # a stream message (lost), or a newer state is owed already
            if message.payload != CLEAR:
                message = self._latest.get(job_id)  # never an older state than the newest
                if message is None:
                    continue  # removed since (the sweep on connect clears what the broker kept)
            self._states[job_id] = (seq, message)
            added = True
        if added:
            self._states = OrderedDict(sorted(self._states.items(), key=lambda item: item[1][0]))

    def connection_lost(self) -> None:
        """States in flight are owed again (unless a newer one is queued)."""
        with self._lock:
            self._reowe(*self._inflight.values())
            self._inflight.clear()
            self._early_acks.clear()

    def has_owed_states(self) -> bool:
        with self._lock:
            return bool(self._states)

    def pending_states(self) -> int:
        """States not yet acknowledged by the broker."""
        with self._lock:
            return len(self._states) + sum(1 for _, m in self._inflight.values() if m.job_id is not None)
