"""Cron triggers: wall-clock schedules in a time zone."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from ._base import (
    ONE_MICROSECOND,
    ScheduleError,
    Trigger,
    apply_jitter,
    check_date_order,
    explicit_timezone,
    options_dict,
    overlap_end,
    parse_datetime,
    reference_instant,
    to_utc,
    wall_to_instant,
)
from .durations import coerce_jitter

FIELD_NAMES = ("second", "minute", "hour", "day", "month", "day_of_week", "year")
_BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 6),
    "year": (1970, 9999),
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CRONTAB_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ONE_SECOND = timedelta(seconds=1)


def day_of_week_number(name: str) -> int | None:
    """``"mon"``/``"Monday"`` -> 0 ... ``"sun"`` -> 6; ``None`` if not a day."""
    key = name.strip().lower()
    for names in (DAY_NAMES, FULL_DAY_NAMES):
        if key in names:
            return names.index(key)
    return None


class _Field:
    """One parsed cron field: its normalized text and the matching values.

    ``is_star`` records whether the text starts with ``*``; like Vixie cron,
    that decides how day and day_of_week combine.
    """

    __slots__ = ("expr", "is_star", "name", "values")

    def __init__(self, name: str, expr: str, values: Sequence[int]) -> None:
        self.name = name
        self.expr = expr
        self.values = values
        self.is_star = expr.startswith("*")


def _parse_field(name: str, value: object, *, crontab: bool = False) -> _Field:
    expr = _normalize(name, value)
    low, high = _BOUNDS[name]
    if crontab and name == "day_of_week":
        high = 7  # 0 and 7 are both Sunday in crontab
    ranges = [_parse_item(name, item, expr, low, high, crontab) for item in expr.split(",")]
    values: Sequence[int] = ranges[0] if len(ranges) == 1 else tuple(sorted(set().union(*ranges)))
    if crontab and name == "day_of_week":
        values = tuple(sorted({(number + 6) % 7 for number in values}))  # Sunday-first -> Monday=0
    if not values:
        raise ScheduleError(f"{name}: {expr!r} matches nothing")
    return _Field(name, expr, values)


def _normalize(name: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ScheduleError(
            f"{name}: {value!r} is not a cron field (use a string such as '*/15' or a number)"
        )
    expr = re.sub(r"\s*,\s*", ",", value.strip().lower())
    if not expr:
        raise ScheduleError(f"{name}: empty value")
    return expr


def _parse_item(name: str, item: str, expr: str, low: int, high: int, crontab: bool) -> range:
    if not item:
        raise ScheduleError(f"{name}: empty list item in {expr!r}")
    base, has_step, step_text = item.partition("/")
    step = _parse_step(name, step_text) if has_step else 1
    if base == "*":
        return range(low, high + 1, step)
    first_text, is_range, last_text = base.partition("-")
    if not first_text or (is_range and (not last_text or "-" in last_text)):
        raise ScheduleError(f"{name}: {item!r} is not a valid value or range")
    first = _parse_value(name, first_text, low, high, crontab, range_end=False)
    if is_range:
        last = _parse_value(name, last_text, low, high, crontab, range_end=True)
    else:
        last = high if has_step else first
    if last < first:
        raise ScheduleError(f"{name}: range {base!r} goes backwards")
    return range(first, last + 1, step)


def _parse_step(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ScheduleError(f"{name}: step {text!r} is not a number")
    step = int(text)
    if step < 1:
        raise ScheduleError(f"{name}: step {step} must be at least 1")
    return step


def _parse_value(
    name: str, text: str, low: int, high: int, crontab: bool, *, range_end: bool
) -> int:
    if text.isascii() and text.isdigit():
        number = int(text)
        if not low <= number <= high:
            raise ScheduleError(f"{name}: {number} is out of range {low}-{high}")
        return number
    if name == "month":
        if text in MONTH_NAMES:
            return MONTH_NAMES.index(text) + 1
        raise ScheduleError(f"{name}: {text!r} is not a month name")
    if name == "day_of_week":
        number = day_of_week_number(text)
        if number is None:
            raise ScheduleError(f"{name}: {text!r} is not a day name")
        if not crontab:
            return number
        # crontab counts from Sunday=0; as a range end Sunday is 7 ("sat-sun")
        return 7 if number == 6 and range_end else (number + 1) % 7
    raise ScheduleError(f"{name}: {text!r} is not a number")


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return _LONGEST_MONTH[month - 1]


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class CronTrigger(Trigger):
    """Fire whenever the local wall-clock time in ``timezone`` matches all
    fields, like cron, at one-second resolution.

    Fields (strings, or ints for single values): ``second`` 0-59,
    ``minute`` 0-59, ``hour`` 0-23, ``day`` 1-31, ``month`` 1-12 or
    ``jan``-``dec``, ``day_of_week`` 0-6 with Monday=0 or ``mon``-``sun``
    (full names too), ``year`` 1970-9999. Forms: ``*``, ``5``, ``1-5``,
    ``*/15``, ``1-30/5``, ``5/10`` (5, 15, ... to the maximum), lists
    ``1,15,30`` and name ranges ``mon-fri``; ranges must not wrap around.
    (:meth:`from_crontab` uses crontab's Sunday=0/7 numbering instead.)

    Day and day_of_week combine like classic (Vixie) cron: when BOTH fields
    are restricted (their text does not start with ``*``) a day matches if
    EITHER matches, so ``0 0 13 * fri`` runs on every 13th and every Friday;
    otherwise both must match (``*/2`` counts as unrestricted). This differs
    from APScheduler, which always requires both.

    A ``day`` a month does not have is skipped, not clamped: ``day=31``
    runs only in 31-day months, Feb 29 only in leap years. A day/month
    combination that can never occur (``0 0 31 2 *``) is rejected.

    Daylight saving (cron is wall-clock):

    * spring forward: a matching wall time inside the gap fires once, at
      the first valid instant after the gap (02:30 Europe/Berlin on the
      spring-forward day -> 03:00 CEST). Several matches inside one gap
      (``*/15``) collapse into that single run.
    * fall back: a wall time that happens twice fires once, at its first
      occurrence (``fold=0``, still summer time); wall times of the repeated
      hour are not run again.
    * hence ``0 * * * *`` in Berlin fires at 01:00 CET and 03:00 CEST on the
      spring-forward day (consecutive real hours), and at 02:00 CEST and
      03:00 CET on the fall-back day (the repeated 02:00 CET is skipped).

    ``start_date``/``end_date`` bound the fire times (both inclusive);
    ``jitter`` delays each run by a random 0..jitter seconds, drawn from
    ``rng`` (a ``random.Random``; default: the ``random`` module). Keep
    jitter below the gap between runs. ``timezone=None`` means the router's
    local zone, looked up again when a persisted trigger is loaded.
    """

    __slots__ = (
        "_fields",
        "_rng",
        "_timezone_key",
        "crontab",
        "end_date",
        "jitter",
        "start_date",
        "timezone",
    )

    def __init__(
        self,
        *,
        second: str | int = 0,
        minute: str | int = "*",
        hour: str | int = "*",
        day: str | int = "*",
        month: str | int = "*",
        day_of_week: str | int = "*",
        year: str | int = "*",
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        timezone: str | tzinfo | None = None,
        jitter: float | str | timedelta | None = None,
        rng: Any = None,
    ) -> None:
        given = {
            "second": second,
            "minute": minute,
            "hour": hour,
            "day": day,
            "month": month,
            "day_of_week": day_of_week,
            "year": year,
        }
        fields = {name: _parse_field(name, value) for name, value in given.items()}
        self._setup(fields, None, start_date, end_date, timezone, jitter, rng)

    @classmethod
    def from_crontab(
        cls,
        expr: str,
        *,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        timezone: str | tzinfo | None = None,
        jitter: float | str | timedelta | None = None,
        rng: Any = None,
    ) -> CronTrigger:
        """Build from a standard 5-field crontab line: ``minute hour
        day-of-month month day-of-week``, day-of-week 0-7 with 0 and 7 =
        Sunday (names allowed), plus the nicknames ``@hourly``, ``@daily``,
        ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``.
        Runs at second 0."""
        if not isinstance(expr, str):
            raise ScheduleError(f"crontab: {expr!r} is not a string")
        text = " ".join(expr.split())
        if text.startswith("@"):
            if text.lower() not in _CRONTAB_NICKNAMES:
                raise ScheduleError(f"crontab: unknown nickname {text!r}")
            text = text.lower()
            parts = _CRONTAB_NICKNAMES[text].split()
        else:
            parts = text.split()
        if len(parts) != 5:
            raise ScheduleError(f"crontab: expected 5 fields, got {len(parts)}")
        minute, hour, day, month, day_of_week = parts
        fields = {
            "second": _parse_field("second", 0),
            "minute": _parse_field("minute", minute),
            "hour": _parse_field("hour", hour),
            "day": _parse_field("day", day),
            "month": _parse_field("month", month),
            "day_of_week": _parse_field("day_of_week", day_of_week, crontab=True),
            "year": _parse_field("year", "*"),
        }
        trigger = cls.__new__(cls)
        trigger._setup(fields, text, start_date, end_date, timezone, jitter, rng)
        return trigger

    def _setup(
        self,
        fields: dict[str, _Field],
        crontab: str | None,
        start_date: datetime | str | None,
        end_date: datetime | str | None,
        timezone: str | tzinfo | None,
        jitter: float | str | timedelta | None,
        rng: Any,
    ) -> None:
        zone, zone_key = explicit_timezone(timezone)
        start = None if start_date is None else parse_datetime(start_date, zone, "start_date")
        end = None if end_date is None else parse_datetime(end_date, zone, "end_date")
        check_date_order(start, end)
        self._set(
            _fields=fields,
            crontab=crontab,
            timezone=zone,
            _timezone_key=zone_key,
            start_date=start,
            end_date=end,
            jitter=coerce_jitter(jitter),
            _rng=rng,
        )
        self._check_can_fire()

    @property
    def fields(self) -> dict[str, str]:
        """The normalized text of each field (field-form numbering)."""
        return {name: field.expr for name, field in self._fields.items()}

    # -- computing fire times ------------------------------------------------

    def next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The first matching instant strictly after ``now`` and
        ``previous_fire_time`` and not before ``start_date``, jittered;
        ``None`` once past ``end_date`` or the last matching year."""
        reference = reference_instant(previous_fire_time, now)
        if self.start_date is not None:
            reference = max(reference, to_utc(self.start_date) - ONE_MICROSECOND)
        try:
            fire = self._first_fire_after(reference)
        except OverflowError:  # ran past year 9999
            return None
        if fire is None or (self.end_date is not None and to_utc(fire) > to_utc(self.end_date)):
            return None
        return apply_jitter(fire, self.jitter, self._rng)

    def _first_fire_after(self, reference: datetime) -> datetime | None:
        wall: datetime | None = self._first_candidate_wall_time(reference)
        while wall is not None:
            match = self._next_matching_wall_time(wall)
            if match is None:
                return None
            fire = wall_to_instant(match, self.timezone)
            if to_utc(fire) > reference:
                return fire
            # Unreachable with ordinary zones (the start already skips the
            # repeated hour); kept so odd zone data cannot return the past.
            wall = match + _ONE_SECOND
        return None

    def _first_candidate_wall_time(self, reference: datetime) -> datetime:
        """The earliest wall time whose instant can lie after ``reference``.
        In the second pass of a fall-back overlap every wall time up to the
        end of the overlap already had its (first) occurrence."""
        local = reference.astimezone(self.timezone)
        wall = local.replace(tzinfo=None, microsecond=0, fold=0) + _ONE_SECOND
        end_of_repeat = overlap_end(local)
        return wall if end_of_repeat is None else max(wall, end_of_repeat)

    def _next_matching_wall_time(self, start: datetime) -> datetime | None:
        """The first naive wall time at or after ``start`` matching all fields.
        Bounded: it walks the year field's values (at most 1970-9999) and
        construction guarantees that an unrestricted year finds a match
        within 8 years."""
        start_month = (start.year, start.month)
        for year in self._fields["year"].values:
            if year < start.year:
                continue
            for month in self._fields["month"].values:
                if (year, month) < start_month:
                    continue
                first_day = start.day if (year, month) == start_month else 1
                for day in self._matching_days(year, month, first_day):
                    if date(year, month, day) == start.date():
                        clock = self._first_time_of_day_from(start.hour, start.minute, start.second)
                    else:
                        clock = self._earliest_time_of_day()
                    if clock is not None:
                        return datetime(year, month, day, *clock)
        return None

    def _matching_days(self, year: int, month: int, first_day: int) -> Iterator[int]:
        day_field, weekday_field = self._fields["day"], self._fields["day_of_week"]
        either = not day_field.is_star and not weekday_field.is_star
        weekday_of_first = date(year, month, 1).weekday()
        for day in range(first_day, _days_in_month(year, month) + 1):
            day_matches = day in day_field.values
            weekday_matches = (weekday_of_first + day - 1) % 7 in weekday_field.values
            if (day_matches or weekday_matches) if either else (day_matches and weekday_matches):
                yield day

    def _earliest_time_of_day(self) -> tuple[int, int, int]:
        return (
            self._fields["hour"].values[0],
            self._fields["minute"].values[0],
            self._fields["second"].values[0],
        )

    def _first_time_of_day_from(
        self, hour: int, minute: int, second: int
    ) -> tuple[int, int, int] | None:
        minutes, seconds = self._fields["minute"].values, self._fields["second"].values
        for candidate_hour in self._fields["hour"].values:
            if candidate_hour < hour:
                continue
            if candidate_hour > hour:
                return (candidate_hour, minutes[0], seconds[0])
            for candidate_minute in minutes:
                if candidate_minute < minute:
                    continue
                if candidate_minute > minute:
                    return (candidate_hour, candidate_minute, seconds[0])
                for candidate_second in seconds:
                    if candidate_second >= second:
                        return (candidate_hour, candidate_minute, candidate_second)
        return None

    def _check_can_fire(self) -> None:
        """Reject day/month combinations that never occur, so that no search
        for a next fire time can run through thousands of years."""
        day_field, weekday_field = self._fields["day"], self._fields["day_of_week"]
        if not day_field.is_star and not weekday_field.is_star:
            return  # either may match, and every month has every weekday
        month_field, year_field = self._fields["month"], self._fields["year"]
        possible = {
            (month, day)
            for month in month_field.values
            for day in day_field.values
            if day <= _LONGEST_MONTH[month - 1]
        }
        if not possible:
            raise ScheduleError(
                f"cron: day {day_field.expr!r} never occurs in month {month_field.expr!r}"
            )
        if possible == {(2, 29)} and not any(_is_leap(year) for year in year_field.values):
            raise ScheduleError(f"cron: February 29 never occurs in year {year_field.expr!r}")

    # -- persistence and display ---------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "cron"}
        if self.crontab is not None:
            spec["expr"] = self.crontab
        else:
            spec.update(self.fields)
        spec.update(options_dict(self._timezone_key, self.start_date, self.end_date, self.jitter))
        return spec

    def describe(self) -> str:
        text = self._friendly_description() or f"cron {self._expression_text()}"
        return text if self._timezone_key is None else f"{text} ({self._timezone_key})"

    def _expression_text(self) -> str:
        if self.crontab is not None:
            return self.crontab
        fields = self.fields
        if fields["second"] == "0" and fields["year"] == "*":
            weekdays = re.sub(
                r"(?<![/\d])[0-6]", lambda m: DAY_NAMES[int(m.group())], fields["day_of_week"]
            )
            return " ".join(
                (fields["minute"], fields["hour"], fields["day"], fields["month"], weekdays)
            )
        defaults = {"second": "0"}
        return " ".join(
            f"{name}={expr}" for name, expr in fields.items() if expr != defaults.get(name, "*")
        )

    def _friendly_description(self) -> str | None:
        """``every day at 09:00`` and friends for the shapes that
        :func:`daily`, :func:`weekly`, :func:`monthly` and :func:`hourly` build."""
        if self.crontab is not None:
            return None
        fields = self.fields
        second, minute, hour = fields["second"], fields["minute"], fields["hour"]
        day, weekday = fields["day"], fields["day_of_week"]
        if (
            fields["year"] != "*"
            or fields["month"] != "*"
            or not (second.isdigit() and minute.isdigit())
        ):
            return None
        seconds = f":{int(second):02d}" if int(second) else ""
        if hour == "*":
            if day == "*" and weekday == "*":
                return f"every hour at :{int(minute):02d}{seconds}"
            return None
        if not hour.isdigit():
            return None
        clock = f"{int(hour):02d}:{int(minute):02d}{seconds}"
        if day == "*" and weekday == "*":
            return f"every day at {clock}"
        single_weekday = self._fields["day_of_week"].values
        if day == "*" and len(single_weekday) == 1 and "-" not in weekday and "/" not in weekday:
            return f"every {FULL_DAY_NAMES[single_weekday[0]]} at {clock}"
        if weekday == "*" and day.isdigit():
            return f"every month on day {int(day)} at {clock}"
        return None
