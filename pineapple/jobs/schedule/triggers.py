"""The trigger layer: date and interval triggers, the cron trigger (from
:mod:`.cron`) and the friendly constructors ``once``, ``every``, ``hourly``,
``daily``, ``weekly``, ``monthly`` and ``custom``.

Every trigger answers ``next_fire_time(previous_fire_time, now)`` with the
first fire time strictly after both (``None`` = finished), persists with
``to_dict()`` / :func:`~.spec.trigger_from_dict` and explains itself with
``describe()``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any, Optional, Union

from ._base import (
    UTC,
    ScheduleError,
    Trigger,
    add_elapsed,
    apply_jitter,
    check_date_order,
    explicit_timezone,
    format_instant,
    options_dict,
    parse_datetime,
    reference_instant,
    to_utc,
)
from .cron import CronTrigger, day_of_week_number
from .durations import coerce_jitter, format_duration, parse_duration

__all__ = [
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "ScheduleError",
    "Trigger",
    "custom",
    "daily",
    "every",
    "hourly",
    "monthly",
    "once",
    "parse_time_of_day",
    "weekly",
]

DateLike = Union[datetime, str]
Jitter = Optional[Union[float, str, timedelta]]


class DateTrigger(Trigger):
    """Fire once at ``run_date``.

    A naive ``run_date`` (or ISO string without offset) is wall time in
    ``timezone`` (default: local) under the package's DST rules. The trigger
    returns ``run_date`` while it lies after ``now`` and no run happened;
    afterwards, or if ``run_date`` has already passed, it is finished.
    """

    __slots__ = ("_timezone_key", "run_date", "timezone")

    def __init__(self, run_date: DateLike, timezone: str | tzinfo | None = None) -> None:
        zone, zone_key = explicit_timezone(timezone)
        self._set(
            run_date=parse_datetime(run_date, zone, "run_date"),
            timezone=zone,
            _timezone_key=zone_key,
        )

    def next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is not None or to_utc(self.run_date) <= to_utc(now):
            return None
        return self.run_date

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "date",
            "run_date": self.run_date.isoformat(),
            **options_dict(self._timezone_key),
        }

    def describe(self) -> str:
        return f"once at {format_instant(self.run_date)}"


class IntervalTrigger(Trigger):
    """Fire every fixed interval of elapsed time, counted from ``start_date``.

    Fire times are ``start_date + k * interval`` (k = 0, 1, ...), computed in
    UTC, so a DST change neither shortens nor stretches an interval. Runs
    missed while the daemon was down are skipped: the next fire time is the
    first grid point strictly after ``now`` (and after
    ``previous_fire_time``). ``end_date`` is inclusive.

    Without ``start_date`` the grid starts one interval after ``created_at``
    (default: the current time), so ``every("30m")`` first fires 30 minutes
    after it is created; ``to_dict`` records the resolved start, so a
    reloaded trigger keeps its phase. ``jitter`` delays each run by a random
    0..jitter seconds from ``rng`` (a ``random.Random``; default: the
    ``random`` module) without moving the grid. ``timezone`` only sets how
    naive dates are read and the zone of returned datetimes.
    """

    __slots__ = (
        "_rng",
        "_timezone_key",
        "end_date",
        "interval",
        "jitter",
        "start_date",
        "timezone",
    )

    def __init__(
        self,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        *,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        jitter: Jitter = None,
        timezone: str | tzinfo | None = None,
        created_at: datetime | None = None,
        rng: Any = None,
    ) -> None:
        interval = _interval_from_units(
            weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
        )
        zone, zone_key = explicit_timezone(timezone)
        if start_date is None:
            created = datetime.now(UTC) if created_at is None else to_utc(created_at)
            start = add_elapsed(created.astimezone(zone), interval)
        else:
            start = parse_datetime(start_date, zone, "start_date")
        end = None if end_date is None else parse_datetime(end_date, zone, "end_date")
        check_date_order(start, end)
        self._set(
            interval=interval,
            start_date=start,
            end_date=end,
            jitter=coerce_jitter(jitter),
            timezone=zone,
            _timezone_key=zone_key,
            _rng=rng,
        )

    def next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        reference = reference_instant(previous_fire_time, now)
        start = to_utc(self.start_date)
        if reference < start:
            fire = start
        else:
            # Integer division of timedeltas is exact (microseconds).
            elapsed_intervals = (reference - start) // self.interval
            try:
                fire = start + (elapsed_intervals + 1) * self.interval
            except OverflowError:  # past year 9999
                return None
        if self.end_date is not None and fire > to_utc(self.end_date):
            return None
        return apply_jitter(fire.astimezone(self.timezone), self.jitter, self._rng)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "interval",
            "every": format_duration(self.interval),
            **options_dict(self._timezone_key, self.start_date, self.end_date, self.jitter),
        }

    def describe(self) -> str:
        return f"every {format_duration(self.interval)}"


def _interval_from_units(**units: float) -> timedelta:
    for unit, amount in units.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount != amount:
            raise ScheduleError(f"interval: {unit} must be a number, got {amount!r}")
        if amount < 0:
            raise ScheduleError(f"interval: {unit} {amount!r} must not be negative")
    try:
        interval = timedelta(**units)
    except OverflowError:
        raise ScheduleError("interval: the interval is too long") from None
    if interval <= timedelta(0):
        raise ScheduleError("interval: the interval must be greater than zero")
    return interval


# ---------------------------------------------------------------------------
# Friendly constructors

_TIME_OF_DAY_PATTERN = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"


def parse_time_of_day(text: str, *, field: str = "time") -> tuple[int, int, int]:
    """``"09:00"`` / ``"9:00"`` / ``"09:00:30"`` -> ``(hour, minute, second)``."""
    match = (
        re.fullmatch(_TIME_OF_DAY_PATTERN, text.strip(), re.ASCII)
        if isinstance(text, str)
        else None
    )
    if match is None:
        raise ScheduleError(f"{field}: {text!r} is not a time HH:MM")
    hour, minute, second = (int(part or 0) for part in match.groups())
    if hour > 23 or minute > 59 or second > 59:
        raise ScheduleError(f"{field}: {text!r} is not a time HH:MM")
    return hour, minute, second


def once(at: DateLike, *, timezone: str | tzinfo | None = None) -> DateTrigger:
    """Run once at ``at`` (datetime or ISO string; naive = in ``timezone``)."""
    return DateTrigger(at, timezone=timezone)


def every(
    duration: str | float | timedelta,
    *,
    start_date: DateLike | None = None,
    end_date: DateLike | None = None,
    jitter: Jitter = None,
    timezone: str | tzinfo | None = None,
    created_at: datetime | None = None,
    rng: Any = None,
) -> IntervalTrigger:
    """Run every ``duration`` (``"30m"``, ``"2h32m"``, seconds, timedelta);
    see :class:`IntervalTrigger` for the start and catch-up rules."""
    interval = parse_duration(duration, field="every")
    return IntervalTrigger(
        days=interval.days,
        seconds=interval.seconds + interval.microseconds / 1_000_000,
        start_date=start_date,
        end_date=end_date,
        jitter=jitter,
        timezone=timezone,
        created_at=created_at,
        rng=rng,
    )


def hourly(minute: int = 0, **options: Any) -> CronTrigger:
    """Run every hour at ``minute`` past. ``options``: ``timezone``,
    ``start_date``, ``end_date``, ``jitter``, ``rng`` (as for :class:`CronTrigger`)."""
    _check_int("hourly", "minute", minute, 0, 59)
    return CronTrigger(second=0, minute=minute, **options)


def daily(at: str, **options: Any) -> CronTrigger:
    """Run every day at ``at`` (``"09:00"`` or ``"09:00:30"``, local wall
    time in ``timezone``; DST rules as in :class:`CronTrigger`)."""
    hour, minute, second = parse_time_of_day(at, field="daily")
    return CronTrigger(second=second, minute=minute, hour=hour, **options)


def weekly(day: str | int, at: str, **options: Any) -> CronTrigger:
    """Run every week on ``day`` (``"mon"``, ``"monday"`` or 0-6 with
    Monday=0) at ``at``."""
    weekday = _weekday("weekly", day)
    hour, minute, second = parse_time_of_day(at, field="weekly")
    return CronTrigger(second=second, minute=minute, hour=hour, day_of_week=weekday, **options)


def monthly(day: int, at: str, **options: Any) -> CronTrigger:
    """Run every month on ``day`` (1-31) at ``at``. Months without that day
    are skipped, not clamped: ``monthly(31, ...)`` runs in seven months a
    year, ``monthly(29, ...)`` skips February except in leap years."""
    _check_int("monthly", "day", day, 1, 31)
    hour, minute, second = parse_time_of_day(at, field="monthly")
    return CronTrigger(second=second, minute=minute, hour=hour, day=day, **options)


def custom(expr: str, **options: Any) -> CronTrigger:
    """Run on a standard 5-field crontab line (see :meth:`CronTrigger.from_crontab`)."""
    return CronTrigger.from_crontab(expr, **options)


def _check_int(owner: str, name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleError(f"{owner}: {name} {value!r} is not a whole number")
    if not low <= value <= high:
        raise ScheduleError(f"{owner}: {name} {value} is out of range {low}-{high}")


def _weekday(owner: str, day: str | int) -> int:
    if isinstance(day, str):
        number = day_of_week_number(day)
        if number is None:
            raise ScheduleError(f"{owner}: {day!r} is not a day name")
        return number
    _check_int(owner, "day", day, 0, 6)
    return day
