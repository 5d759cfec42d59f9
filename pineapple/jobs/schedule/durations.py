"""Human durations: ``"90s"``, ``"30m"``, ``"2h32m"``, ``"1d"``, ``"1w2d"``,
``"1.5h"`` and plain numbers of seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from ._base import ScheduleError

# Patterns are compiled on first use (re caches them): compiling at import
# time would cost every daemon start, even when no schedule is parsed.
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PATTERN = rf"""
    (?:(?P<weeks>{_NUMBER})\s*w\s*)?
    (?:(?P<days>{_NUMBER})\s*d\s*)?
    (?:(?P<hours>{_NUMBER})\s*h\s*)?
    (?:(?P<minutes>{_NUMBER})\s*m\s*)?
    (?:(?P<seconds>{_NUMBER})\s*s)?
"""
_UNITS = (
    ("w", timedelta(weeks=1)),
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
)


def parse_duration(value: str | float | timedelta, *, field: str = "duration") -> timedelta:
    """Parse a positive human duration.

    Units are ``w`` (weeks), ``d``, ``h``, ``m`` (minutes) and ``s``, each at
    most once and largest first, optionally with decimals and spaces:
    ``"90s"``, ``"2h32m"``, ``"1w2d"``, ``"1.5h"``, ``"2h 30m"``. A plain number
    (string or int/float) counts seconds; a timedelta is checked and returned.
    Units are lower case only (``M`` could be read as months).

    Raises :class:`ScheduleError` naming ``field`` for empty, unknown,
    negative or zero durations.
    """
    if isinstance(value, timedelta):
        return _positive(value, value, field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ScheduleError(f"{field}: {value!r} is not a number of seconds")
        return _positive(_seconds(value, value, field), value, field)
    if not isinstance(value, str):
        raise ScheduleError(f"{field}: {value!r} is not a duration like 90s, 30m, 2h32m, 1d")
    text = value.strip()
    if not text:
        raise ScheduleError(
            f"{field}: {value!r} is empty; expected a duration like 90s, 30m, 2h32m, 1d"
        )
    if text.startswith("-"):
        raise ScheduleError(f"{field}: {value!r} must be positive")
    if re.fullmatch(_NUMBER, text, re.ASCII):
        return _positive(_seconds(float(text), value, field), value, field)
    match = re.fullmatch(_DURATION_PATTERN, text, re.VERBOSE | re.ASCII)
    if match is None or not any(match.groupdict().values()):
        raise ScheduleError(f"{field}: {value!r} is not a duration like 90s, 30m, 2h32m, 1d")
    try:
        total = timedelta(
            **{unit: float(amount) for unit, amount in match.groupdict().items() if amount}
        )
    except OverflowError:
        raise ScheduleError(f"{field}: {value!r} is too long") from None
    return _positive(total, value, field)


def format_duration(duration: timedelta) -> str:
    """The compact form :func:`parse_duration` reads back exactly:
    ``timedelta(seconds=5400)`` -> ``"1h30m"``, 0.5 s -> ``"0.5s"``."""
    if duration <= timedelta(0):
        raise ScheduleError(f"duration: {duration} must be positive")
    parts = []
    rest = duration
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        seconds = f"{rest.seconds}.{rest.microseconds:06d}".rstrip("0").rstrip(".")
        parts.append(f"{seconds}s")
    return "".join(parts)


def coerce_jitter(value: float | str | timedelta | None) -> float | None:
    """Jitter as seconds, ``None`` for none. Numbers are seconds (0 means
    none); strings and timedeltas are durations (``"30s"``, ``"2m"``)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ScheduleError(f"jitter: {value!r} is not a number of seconds")
        if value < 0:
            raise ScheduleError(f"jitter: {value!r} must not be negative")
        return float(value) or None
    return parse_duration(value, field="jitter").total_seconds()


def _seconds(amount: float, original: object, field: str) -> timedelta:
    try:
        return timedelta(seconds=amount)
    except OverflowError:
        raise ScheduleError(f"{field}: {original!r} is too long") from None


def _positive(duration: timedelta, original: object, field: str) -> timedelta:
    if duration < timedelta(0):
        raise ScheduleError(f"{field}: {original!r} must be positive")
    if not duration:
        raise ScheduleError(f"{field}: {original!r} must be greater than zero")
    return duration
