"""Schedules for jobs: triggers that compute when a job runs next.

>>> from datetime import datetime, timezone
>>> trigger = daily("09:00", timezone="Europe/Berlin")
>>> trigger.describe()
'every day at 09:00 (Europe/Berlin)'
>>> trigger.next_fire_time(None, datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)).isoformat()
'2025-06-02T09:00:00+02:00'

See :mod:`.triggers` for the trigger classes, :mod:`.spec` for the JSON
shapes of the socket API and :mod:`.durations` for ``"2h30m"``-style
durations. Standard library only; ``zoneinfo`` and ``random`` are imported
on first use.
"""

from ._base import ScheduleError, Trigger, local_timezone, resolve_timezone
from .cron import CronTrigger
from .durations import format_duration, parse_duration
from .spec import trigger_from_dict, trigger_from_spec
from .triggers import (
    DateTrigger,
    IntervalTrigger,
    custom,
    daily,
    every,
    hourly,
    monthly,
    once,
    parse_time_of_day,
    weekly,
)

__all__ = [
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "ScheduleError",
    "Trigger",
    "custom",
    "daily",
    "every",
    "format_duration",
    "hourly",
    "local_timezone",
    "monthly",
    "once",
    "parse_duration",
    "parse_time_of_day",
    "resolve_timezone",
    "trigger_from_dict",
    "trigger_from_spec",
    "weekly",
]
