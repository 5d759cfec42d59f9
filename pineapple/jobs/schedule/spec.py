"""Triggers from the JSON objects the socket API accepts.

Shapes (every key not listed is an error, so a typo never silently means
"every minute"):

* ``{"type": "date", "run_date": "2025-06-01T09:00"}`` (+ ``timezone``)
* ``{"type": "interval", "every": "30m"}`` or
  ``{"type": "interval", "hours": 1, "minutes": 30}`` with the unit keys
  ``weeks``, ``days``, ``hours``, ``minutes``, ``seconds`` (numbers);
  ``every`` and unit keys exclude each other
* ``{"type": "cron", "expr": "0 4 * * *"}`` (crontab line) or field form
  ``{"type": "cron", "hour": "4", "day_of_week": "mon-fri"}`` with
  ``second``, ``minute``, ``hour``, ``day``, ``month``, ``day_of_week``,
  ``year`` (strings or numbers; defaults as :class:`CronTrigger`);
  ``expr`` and field keys exclude each other, and one of them is required
* ``{"type": "hourly", "minute": 15}`` (minute defaults to 0)
* ``{"type": "daily", "at": "04:00"}``
* ``{"type": "weekly", "day": "mon", "at": "09:00"}`` (day: name or 0-6,
  Monday=0)
* ``{"type": "monthly", "day": 1, "at": "09:00"}`` (day 1-31)

All but ``date`` also take ``timezone`` (IANA name, ``"UTC"``,
``"+05:30"`` or POSIX TZ string; omitted or null = router local time),
``start_date`` and ``end_date`` (ISO 8601; without offset = wall time in
``timezone``) and ``jitter`` (seconds or a duration such as ``"30s"``).

``Trigger.to_dict()`` always produces one of the ``date``, ``interval``
or ``cron`` shapes, which :func:`trigger_from_dict` reads back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Callable

from ._base import ScheduleError, Trigger
from .cron import FIELD_NAMES, CronTrigger
from .triggers import (
    DateTrigger,
    IntervalTrigger,
    daily,
    every,
    hourly,
    monthly,
    weekly,
)

_OPTIONS = ("timezone", "start_date", "end_date", "jitter")
_INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")
_ALLOWED_KEYS = {
    "date": {"run_date", "timezone"},
    "interval": {"every", *_INTERVAL_UNITS, *_OPTIONS},
    "cron": {"expr", *FIELD_NAMES, *_OPTIONS},
    "hourly": {"minute", *_OPTIONS},
    "daily": {"at", *_OPTIONS},
    "weekly": {"day", "at", *_OPTIONS},
    "monthly": {"day", "at", *_OPTIONS},
}


def trigger_from_spec(
    spec: Mapping[str, Any], *, now: datetime | None = None, rng: Any = None
) -> Trigger:
    """Build a trigger from an API spec (shapes in the module docstring).

    ``now`` is the creation time an interval without ``start_date`` counts
    from (default: the current time); ``rng`` feeds jitter. Raises
    :class:`ScheduleError` for unknown types or keys, missing or
    conflicting keys and invalid values.
    """
    if not isinstance(spec, Mapping):
        raise ScheduleError(f"spec: expected an object, got {type(spec).__name__}")
    kind = spec.get("type")
    if kind not in _BUILDERS:
        expected = ", ".join(sorted(_BUILDERS))
        if "type" not in spec:
            raise ScheduleError(f"spec: missing 'type' (one of {expected})")
        raise ScheduleError(f"spec: unknown type {kind!r} (expected one of {expected})")
    allowed = _ALLOWED_KEYS[kind]
    unknown = sorted(str(key) for key in spec if key != "type" and key not in allowed)
    if unknown:
        raise ScheduleError(
            f"{kind}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )
    options = {key: spec[key] for key in _OPTIONS if key in allowed and spec.get(key) is not None}
    return _BUILDERS[kind](spec, options, now, rng)


def trigger_from_dict(data: Mapping[str, Any], *, rng: Any = None) -> Trigger:
    """Rebuild a trigger persisted with ``Trigger.to_dict()``."""
    return trigger_from_spec(data, rng=rng)


def _date(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    return DateTrigger(_required(spec, "date", "run_date"), **options)


def _interval(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    units = {unit: spec[unit] for unit in _INTERVAL_UNITS if unit in spec}
    if "every" in spec:
        if units:
            raise ScheduleError(
                f"interval: give either 'every' or unit keys ({', '.join(units)}), not both"
            )
        return every(spec["every"], created_at=now, rng=rng, **options)
    if not units:
        raise ScheduleError(f"interval: missing 'every' (or one of {', '.join(_INTERVAL_UNITS)})")
    return IntervalTrigger(**units, created_at=now, rng=rng, **options)


def _cron(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    fields = {name: spec[name] for name in FIELD_NAMES if name in spec}
    if "expr" in spec:
        if fields:
            raise ScheduleError(
                f"cron: give either 'expr' or field keys ({', '.join(fields)}), not both"
            )
        return CronTrigger.from_crontab(spec["expr"], rng=rng, **options)
    if not fields:
        raise ScheduleError(f"cron: missing 'expr' (or field keys {', '.join(FIELD_NAMES)})")
    return CronTrigger(**fields, rng=rng, **options)


def _hourly(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    return hourly(spec.get("minute", 0), rng=rng, **options)


def _daily(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    return daily(_required(spec, "daily", "at"), rng=rng, **options)


def _weekly(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    return weekly(
        _required(spec, "weekly", "day"), _required(spec, "weekly", "at"), rng=rng, **options
    )


def _monthly(
    spec: Mapping[str, Any], options: dict[str, Any], now: datetime | None, rng: Any
) -> Trigger:
    return monthly(
        _required(spec, "monthly", "day"), _required(spec, "monthly", "at"), rng=rng, **options
    )


def _required(spec: Mapping[str, Any], kind: str, key: str) -> Any:
    if spec.get(key) is None:
        raise ScheduleError(f"{kind}: missing {key!r}")
    return spec[key]


_Builder = Callable[["Mapping[str, Any]", "dict[str, Any]", "datetime | None", Any], Trigger]  # strings: Python 3.7
_BUILDERS: dict[str, _Builder] = {
    "date": _date,
    "interval": _interval,
    "cron": _cron,
    "hourly": _hourly,
    "daily": _daily,
    "weekly": _weekly,
    "monthly": _monthly,
}
