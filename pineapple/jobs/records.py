"""The check a journal record passes before it becomes a job again.

A record is what :meth:`Job.to_dict` wrote. One read back from disk may have
been damaged or edited by hand, so every field the engine uses is checked
for its type and range; a record that fails is skipped (with a warning)
rather than stopping the daemon's start.
"""
from __future__ import annotations

import math
from typing import Any

from .state import ALL_STATES

_TEXT = (str, type(None))
# Absent fields take their defaults; present ones must have the right type.
_OPTIONAL_TEXT = ("type", "job_error", "error_code", "resource", "parent_id", "child_id")
_TIMES = ("created_at", "started_at", "finished_at")
_COUNTS = ("attempts", "max_retries", "log_total")


def record_problem(record: dict) -> str | None:
    """Why ``record`` cannot be restored as a job, or None when it can."""
    if record.get("state") not in ALL_STATES:
        return f"unknown state {_short(record.get('state'))}"
    if not isinstance(record.get("is_complete", False), bool):
        return "is_complete is not true or false"
    for name in _OPTIONAL_TEXT:
        if not isinstance(record.get(name), _TEXT):
            return f"{name} is not a string"
    for name in _TIMES:
        if not _number_or_none(record.get(name)):
            return f"{name} is not a time"
    for name in _COUNTS:
        value = record.get(name, 0)
        if not _is_int(value) or value < 0 or value > 2 ** 31:
            return f"{name} is not a count"
    timeout = record.get("timeout")
    if not _number_or_none(timeout) or (timeout is not None and timeout <= 0):
        return "timeout is not a positive number"
    return _structure_problem(record)


def _structure_problem(record: dict) -> str | None:
    log = record.get("log", [])
    if not isinstance(log, list) or not all(isinstance(line, str) for line in log):
        return "log is not a list of strings"
    for name in ("params", "hooks", "intent"):
        if not isinstance(record.get(name), (dict, type(None))):
            return f"{name} is not an object"
    hooks = record.get("hooks") or {}
    if not all(isinstance(specs, list) and all(isinstance(spec, dict) for spec in specs)
               for specs in hooks.values()):
        return "hooks is not a list of hooks per event"
    progress = record.get("progress")
    if progress is not None:
        if not isinstance(progress, dict) or not isinstance(progress.get("message"), _TEXT):
            return "progress is not {fraction, message}"
        fraction = progress.get("fraction")
        if not _number_or_none(fraction) or (fraction is not None and not 0 <= fraction <= 1):
            return "progress fraction is not between 0 and 1"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number_or_none(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
