"""Wire format of the socket API (see docs/protocol.md).

Newline-delimited JSON over a Unix stream socket: one request object per
line, one answer per line, in order. Answers are
``{"ok": true, "payload": ...}`` or
``{"ok": false, "error": "human message", "code": "stable_code"}``; a
request's optional ``"id"`` is echoed back.
"""
from __future__ import annotations

import json
from typing import Any

from .. import errors
from ..values import accepts, describe

MAX_LINE = 64 * 1024

# Protocol-level error codes (job and opkg codes live in pineapple.errors).
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
UNKNOWN_ACTION = "unknown_action"
MISSING_FIELD = errors.MISSING_FIELD
INVALID_FIELD = errors.INVALID_FIELD
REQUEST_TOO_LARGE = "request_too_large"
FORBIDDEN = "forbidden"
TOO_MANY_CONNECTIONS = "too_many_connections"
INTERNAL_ERROR = "internal_error"

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


class ApiError(Exception):
    """An error answer: ``code`` is stable, ``message`` is for humans."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


def _fast_encoder():
    """The C encoder built once (``JSONEncoder.encode`` builds it per call,
    which costs more than encoding a poll answer). No cycle check: payloads
    are trees. Falls back to the documented encoder if the C one is missing
    or its signature ever changes."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder = make(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)
        if "".join(encoder({"a": [1, 1.5, None, True, "\u00e9"]}, 0)) != '{"a":[1,1.5,null,true,"\u00e9"]}':
            return None
    except Exception:
        return None
    return encoder


_c_encoder = _fast_encoder()


def dumps(value: Any) -> str:
    """Compact JSON text (non-ASCII kept, unknown objects as ``str``)."""
    if _c_encoder is not None:
        return "".join(_c_encoder(value, 0))
    return _encoder.encode(value)


def encode(message: dict) -> bytes:
    """One line of the protocol."""
    return (dumps(message) + "\n").encode("utf-8")


def ok(payload: Any, request_id: Any = None) -> bytes:
    message = {"ok": True, "payload": payload}
    if request_id is not None:
        message["id"] = request_id
    return encode(message)


def answer_ok(payload: Any, request_id: Any = None) -> bytes:
    """Same bytes as :func:`ok`, without building the wrapping object (the hot path)."""
    if request_id is not None:
        return ok(payload, request_id)
    return b'{"ok":true,"payload":' + dumps(payload).encode("utf-8") + b"}\n"


def answer_raw(payload: bytes, request_id: Any = None) -> bytes:
    """An ``ok`` answer around a payload that is already encoded JSON."""
    if request_id is None:
        return b'{"ok":true,"payload":' + payload + b"}\n"
    return b'{"ok":true,"payload":' + payload + b',"id":' + dumps(request_id).encode("utf-8") + b"}\n"


def fail(message: str, code: str, request_id: Any = None) -> bytes:
    answer = {"ok": False, "error": message, "code": code}
    if request_id is not None:
        answer["id"] = request_id
    return encode(answer)


_scan_once = json.decoder.JSONDecoder().scan_once


def _parse(text: str) -> Any:
    """``json.loads(text)`` minus its two regex passes when the text is
    exactly one JSON value; anything else goes to ``json.loads`` (its errors)."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text) and not text[end:].isspace():
        return json.loads(text)
    return value


def decode_request(line: bytes) -> dict:
    """Parse one request line; raises :class:`ApiError` for anything that is
    not a JSON object with a string ``action``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("request is not valid UTF-8", INVALID_JSON) from None
    try:
        request = _parse(text)
    except ValueError as exc:
        raise ApiError(f"request is not valid JSON: {exc}", INVALID_JSON) from None
    except RecursionError:
        raise ApiError("request is not valid JSON: nested too deeply", INVALID_JSON) from None
    if not isinstance(request, dict):
        raise ApiError(f"request must be a JSON object, got {type(request).__name__}", INVALID_REQUEST)
    action = request.get("action")
    if action is None:
        raise ApiError("request has no 'action'", MISSING_FIELD)
    if not isinstance(action, str):
        raise ApiError("'action' must be a string", INVALID_FIELD)
    return request


_MISSING = object()


def field(request: dict, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """``request[name]`` checked against ``kind``; raises ``missing_field`` or
    ``invalid_field``. ``None`` counts as absent when a default is given."""
    value = request.get(name, _MISSING)
    if type(value) is kind:  # the common case (exact type: a bool is never taken for an int)
        return value
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise ApiError(f"missing field '{name}'", MISSING_FIELD)
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not accepts(value, kinds):
        raise ApiError(f"field '{name}' must be {describe(kinds)}", INVALID_FIELD)
    return value
