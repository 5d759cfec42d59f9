"""Signed MQTT commands: HMAC-SHA256 with a key the operator and the devices
share (``mqtt.command_key``; docs/mqtt.md has the threat model).

A signed command is the command's JSON object plus three fields:

- ``ts``: when it was signed (seconds since the epoch, a number);
- ``nonce``: a unique id (16-64 letters, digits, ``_``, ``-``);
- ``sig``: the lowercase hex HMAC-SHA256, under the key, of the topic, a
  newline, and the object without ``sig`` in canonical JSON (keys sorted,
  no spaces, ASCII with ``\\uXXXX`` escapes: Python's
  ``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``).

The topic is signed too, so a command signed for one device or one action
is worthless on another topic. A live command (submit, cancel) is also
refused when its ``ts`` is more than ``max_age`` seconds away from the
device's clock, or when its nonce was seen already (the nonces of the last
``max_age`` seconds are kept, across restarts when there is a state
directory). A roll-out record is durable by design, so age does not matter
for it; it is applied once per roll-out id instead.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
import time
from typing import Any, Callable

from ..api.protocol import ApiError
from . import statefile

UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad_signature"
STALE = "stale"
REPLAYED = "replayed"
SIGNATURE_FIELDS = ("ts", "nonce", "sig")
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_NONCES = 10000  # remembered at most (more signed commands than this within max_age: oldest forgotten)
NONCE_FILE = "command-nonces.json"


def canonical(topic: str, body: dict) -> bytes:
    """What the signature covers: the topic, a newline, the canonical JSON of ``body``."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return topic.encode("utf-8") + b"\n" + text.encode("ascii")


def signature(key: bytes, topic: str, body: dict) -> str:
    return hmac.new(key, canonical(topic, body), hashlib.sha256).hexdigest()


def sign(key: bytes, topic: str, command: dict, now: float | None = None, nonce: str | None = None) -> dict:
    """``command`` with ``ts``, ``nonce`` and ``sig`` added, for ``topic``."""
    body = {k: v for k, v in command.items() if k not in SIGNATURE_FIELDS}
    body["ts"] = round(time.time() if now is None else now, 3)
    body["nonce"] = nonce or secrets.token_hex(16)
    body["sig"] = signature(key, topic, body)
    return body


class Verifier:
    """Checks signed commands for one device (thread-safe)."""

    def __init__(self, key: bytes, max_age: float = 300.0, state_dir: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._path = os.path.join(state_dir, NONCE_FILE) if state_dir else None
        self._seen: dict[str, float] = self._load()  # nonce -> ts, oldest first

    def check(self, topic: str, command: dict, live: bool = True) -> dict:
        """The command without its signature fields, if ``command`` is signed
        with the key for ``topic``; else :class:`ApiError` (``unsigned``,
        ``bad_signature``, and for a ``live`` command ``stale`` or ``replayed``)."""
        if any(name not in command for name in SIGNATURE_FIELDS):
            raise ApiError("this device takes signed commands only (ts, nonce, sig: docs/mqtt.md)", UNSIGNED)
        ts, nonce, sig = command["ts"], command["nonce"], command["sig"]
        if not (isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts)
                and isinstance(nonce, str) and NONCE_PATTERN.match(nonce)
                and isinstance(sig, str) and _HEX64.match(sig)):
            raise ApiError("malformed signature fields (ts: a number, nonce: 16-64 letters, digits, _ or -, "
                           "sig: 64 hex digits)", BAD_SIGNATURE)
        body = {k: v for k, v in command.items() if k != "sig"}
        if not hmac.compare_digest(signature(self._key, topic, body), sig):
            raise ApiError("the signature does not match (wrong key, or the command was altered)", BAD_SIGNATURE)
        if live:
            self._check_fresh(ts, nonce)
        return {k: v for k, v in command.items() if k not in SIGNATURE_FIELDS}

    def _check_fresh(self, ts: float, nonce: str) -> None:
        now = self._clock()
        if abs(now - ts) > self.max_age:
            raise ApiError(f"the command was signed {now - ts:.0f}s from this device's time "
                           f"(more than {self.max_age:g}s: stale, or a clock is wrong)", STALE)
        with self._lock:
            self._forget_old(now)
            if nonce in self._seen:
                raise ApiError("this command (its nonce) was taken already: a replay", REPLAYED)
            self._seen[nonce] = ts
            while len(self._seen) > MAX_NONCES:
                del self._seen[next(iter(self._seen))]
            self._save()

    def _forget_old(self, now: float) -> None:
        """A nonce whose ts is out of the window would be refused as stale anyway."""
        for nonce in [n for n, ts in self._seen.items() if ts + self.max_age < now]:
            del self._seen[nonce]

    def _load(self) -> dict[str, float]:
        data = statefile.load(self._path, f"replays within {self.max_age:g}s of a restart are not caught")
        if not isinstance(data, dict):
            return {}
        seen = {n: float(ts) for n, ts in data.items() if isinstance(n, str) and isinstance(ts, (int, float))}
        return dict(sorted(seen.items(), key=lambda item: item[1]))

    def _save(self) -> None:
        statefile.save(self._path, self._seen)


def load_key(text: str) -> bytes:
    """The key as bytes (the configured or given text, surrounding space removed)."""
    return text.strip().encode("utf-8")


def describe(command: Any) -> str:
    """A short description of a refused command for the log (never the whole payload)."""
    if isinstance(command, dict):
        return f"ref {command.get('ref')!r} job {command.get('job')!r} nonce {command.get('nonce')!r}"
    return "unreadable command"
