"""Wire format of the socket API (see docs/protocol.md).

Newline-delimited JSON over a Unix stream socket: one request object per
line, one answer per line, in order. Answers are
``{"ok": true, "payload": ...}`` or
``{"ok": false, "error": "human message", "code": "stable_code"}``; a
request's optional ``"id"`` is echoed back.
"""
from __future__ import annotations

import json
import math
import re
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
INTERNAL_ERROR = errors.INTERNAL_ERROR

# allow_nan=False: every answer is strict JSON (NaN/Infinity are refused on
# the way in, so meeting one here is a bug, answered as internal_error).
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False)
NO_ID = object()  # the request had no "id" (a JSON null id is echoed as null)


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
        encoder = make(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, False)
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


def ok(payload: Any, request_id: Any = NO_ID) -> bytes:
    """A success line; ``request_id`` (any JSON value, null included) is echoed."""
    message = {"ok": True, "payload": payload}
    if request_id is not NO_ID:
        message["id"] = request_id
    return encode(message)


def answer_ok(payload: Any, request_id: Any = NO_ID) -> bytes:
    """Same bytes as :func:`ok`, without building the wrapping object (the hot path)."""
    if request_id is not NO_ID:
        return ok(payload, request_id)
    return b'{"ok":true,"payload":' + dumps(payload).encode("utf-8") + b"}\n"


def answer_raw(payload: bytes, request_id: Any = NO_ID) -> bytes:
    """An ``ok`` answer around a payload that is already encoded JSON."""
    if request_id is NO_ID:
        return b'{"ok":true,"payload":' + payload + b"}\n"
    return b'{"ok":true,"payload":' + payload + b',"id":' + dumps(request_id).encode("utf-8") + b"}\n"


def fail(message: str, code: str, request_id: Any = NO_ID) -> bytes:
    """An error line: a human ``message`` and a stable ``code``."""
    answer = {"ok": False, "error": message, "code": code}
    if request_id is not NO_ID:
        answer["id"] = request_id
    return encode(answer)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


# Strict JSON: NaN, Infinity and numbers that overflow to infinity (1e400) are refused.
_strict = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_scan_once = _strict.scan_once
# A \uD800-\uDFFF escape: only then can a lone surrogate (not Unicode text) hide in a value.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(text: str) -> Any:
    """One strict JSON value: raises ``ValueError`` for anything that is not
    JSON, for NaN/Infinity/1e400 and for strings (keys too) holding a lone
    UTF-16 surrogate (``"\\ud800"``), which no answer could encode.

    ``json.loads(text)`` minus its two regex passes when the text is exactly
    one JSON value."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        value = _strict.decode(text)
    else:
        if end != len(text) and not text[end:].isspace():
            value = _strict.decode(text)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff): not Unicode text")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def decode_request(line: bytes) -> dict:
    """Parse one request line; raises :class:`ApiError` for anything that is
    not a JSON object with a string ``action``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("request is not valid UTF-8", INVALID_JSON) from None
    try:
        request = parse_json(text)
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
