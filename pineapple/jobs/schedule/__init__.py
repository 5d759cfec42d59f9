"""Schedules for jobs: triggers that compute when a job runs next.

>>> from datetime import datetime, timezone
>>> trigger = daily("09:00", timezone="Europe/Berlin")
>>> trigger.describe()
'every day at 09:00 (Europe/Berlin)'
>>> trigger.next_fire_time(None, datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)).isoformat()
'2025-06-02T09:00:00+02:00'

See :mod:`.triggers` for the trigger classes, :mod:`.spec` for the JSON
shapes of the socket API and :mod:`.durations` for ``"2h30m"``-style
durations, :mod:`.zones` for time zones (POSIX TZ rules and zone files,
without the ``zoneinfo`` module). Standard library only; ``random`` is
imported on first use.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

# Exports are loaded on first use (PEP 562): the daemon imports the
# scheduler at start, but the trigger layer only once a schedule needs it.
_EXPORTS = {
    "ScheduleError": "._base", "Trigger": "._base", "local_timezone": "._base", "resolve_timezone": "._base",
    "CronTrigger": ".cron", "format_duration": ".durations", "parse_duration": ".durations",
    "trigger_from_dict": ".spec", "trigger_from_spec": ".spec",
    "DateTrigger": ".triggers", "IntervalTrigger": ".triggers", "custom": ".triggers", "daily": ".triggers",
    "every": ".triggers", "hourly": ".triggers", "monthly": ".triggers", "once": ".triggers",
    "parse_time_of_day": ".triggers", "weekly": ".triggers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
