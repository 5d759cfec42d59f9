"""Shared pieces of the schedule package: the error type, time zones, the
daylight-saving rules for wall-clock times, datetime parsing and the
:class:`Trigger` base class.

DST rules (used by cron-style triggers and for naive datetimes everywhere):

* A wall time that does not exist (the spring-forward gap, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March) means the first valid instant
  after the gap, i.e. the transition itself (03:00 local).
* A wall time that happens twice (the fall-back overlap, e.g. 02:30 in
  Europe/Berlin on the last Sunday of October) means its first occurrence
  (``fold=0``, still on summer time).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

UTC = timezone.utc
ONE_MICROSECOND = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """A schedule, trigger spec or duration is invalid. The message names the
    offending field and value, e.g. ``hour: 24 is out of range 0-23``."""


# ---------------------------------------------------------------------------
# Time zones

_OFFSET_PATTERN = r"([+-])(\d{2}):?(\d{2})"


def resolve_timezone(value: str | tzinfo | None) -> tzinfo:
    """Turn a zone name, fixed offset or tzinfo into a tzinfo.

    Accepted strings: zone names (``"Europe/Berlin"``, read from the
    zoneinfo files of OpenWrt's ``zoneinfo-*`` packages; refused with the
    package's name when it is not installed), ``"UTC"``, fixed offsets
    (``"+05:30"``) and POSIX TZ rules with DST dates as OpenWrt keeps them in
    ``/etc/TZ`` (``"CET-1CEST,M3.5.0,M10.5.0/3"``; they need no data at
    all). Rule-less POSIX strings are refused because their sign is
    inverted: ``"UTC+2"`` means UTC-2. ``None`` means the router's local
    zone (see :func:`local_timezone`). See :mod:`.zones`.
    """
    if value is None:
        return local_timezone()
    if isinstance(value, tzinfo):
        return value
    if not isinstance(value, str):
        raise ScheduleError(f"timezone: {value!r} is not a time zone name")
    name = value.strip()
    if name.upper() in ("UTC", "Z"):
        return UTC
    offset = re.fullmatch(_OFFSET_PATTERN, name, re.ASCII)
    if offset:
        return _fixed_offset_zone(name, offset)
    from . import zones

    try:
        return _named_or_posix(name, posix_needs_rule=True)
    except zones.ZoneNotFound as exc:
        hint = "" if exc.package else (" (use a name such as 'Europe/Berlin', an offset such as '+02:00'"
                                       " or a POSIX rule such as 'CET-1CEST,M3.5.0,M10.5.0/3')")
        raise ScheduleError(f"timezone: {exc}{hint}") from None


def timezone_name(zone: tzinfo) -> str:
    """The string that :func:`resolve_timezone` turns back into ``zone``."""
    if zone is UTC:
        return "UTC"
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        sign = "-" if offset < timedelta(0) else "+"
        minutes = abs(offset) // timedelta(minutes=1)
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    key = getattr(zone, "key", None)
    if not key or key == "localtime":
        raise ScheduleError(
            f"timezone: {zone!r} has no name to save; pass a zone name such as 'Europe/Berlin'"
        )
    return key


def local_timezone() -> tzinfo:
    """The router's local zone, DST rules included, with or without zone data.

    Looked up, in order: the ``TZ`` environment variable (zone name or POSIX
    rule), OpenWrt's ``/etc/TZ`` POSIX rule (what LuCI writes from
    ``system.@system[0].timezone``; no zone data needed), the
    ``/etc/localtime`` zone file, and last the current fixed offset
    (``datetime.now().astimezone().tzinfo``), which cannot follow DST.
    """
    from . import zones

    for name in (os.environ.get("TZ", "").lstrip(":"), _read_etc_tz()):
        if not name:
            continue
        if name.upper() in ("UTC", "GMT", "UTC0", "GMT0"):
            return UTC
        try:
            return _named_or_posix(name, posix_needs_rule=False)
        except zones.ZoneNotFound:
            continue
    zone = _etc_localtime()
    if zone is not None:
        return zone
    return datetime.now().astimezone().tzinfo or UTC


def _fixed_offset_zone(name: str, match: re.Match[str]) -> tzinfo:
    sign, hours, minutes = match.groups()
    if int(hours) > 23 or int(minutes) > 59:
        raise ScheduleError(f"timezone: {name!r} is not a valid UTC offset")
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-offset if sign == "-" else offset)


def _named_or_posix(name: str, *, posix_needs_rule: bool) -> tzinfo:
    """A zone file named ``name`` or, failing that, ``name`` as a POSIX rule
    (as the C library reads ``TZ``); :class:`~.zones.ZoneNotFound` otherwise."""
    from . import zones

    try:
        return zones.named_zone(name)
    except zones.ZoneNotFound as missing:
        if not any(ch.isdigit() for ch in name):
            raise
        if posix_needs_rule and "," not in name:
            raise missing from None
        try:
            return zones.posix_zone(name)
        except zones.ZoneNotFound:
            raise missing from None


def _read_etc_tz() -> str:
    try:
        with open("/etc/TZ", encoding="ascii") as handle:
            return handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _etc_localtime() -> tzinfo | None:
    from . import zones

    path = "/etc/localtime"
    target = os.path.realpath(path)
    marker = "/zoneinfo/"
    if marker in target:
        try:
            return zones.named_zone(target.split(marker, 1)[1])
        except zones.ZoneNotFound:
            pass
    try:
        return zones.zone_from_file(path, key="localtime")
    except zones.ZoneNotFound:
        return None


# ---------------------------------------------------------------------------
# Instants and wall-clock times


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC. Aware datetimes sharing one tzinfo compare by wall
    time (fold ignored), so every comparison in this package is done in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ScheduleError(f"datetime: {moment.isoformat()!r} must be timezone-aware")
    return moment.astimezone(UTC)


def add_elapsed(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta`` as elapsed time; plain ``+`` on an aware datetime
    adds wall-clock time, which is off by the DST change across a transition."""
    return (to_utc(moment) + delta).astimezone(moment.tzinfo)


def wall_to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a naive wall-clock time stands for in ``zone``.

    Nonexistent times (spring-forward gap) map to the end of the gap;
    ambiguous times (fall-back overlap) map to their first occurrence.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(fold=0):
        return first
    # ``wall`` is in a gap: fold=0 and fold=1 read it with the offsets from
    # either side of the transition, so the transition lies between them.
    before, after = sorted((to_utc(wall.replace(tzinfo=zone, fold=1)), to_utc(first)))
    return first_instant_with_offset_of(after, before, zone).astimezone(zone)


def overlap_end(local: datetime) -> datetime | None:
    """For an aware ``local`` time in the second pass of a fall-back overlap
    (``fold=1``), the naive wall time at which the repeated period ends;
    ``None`` for any other time."""
    if not local.fold:
        return None
    first_pass_offset = local.replace(fold=0).utcoffset()
    second_pass_offset = local.utcoffset()
    if (
        first_pass_offset is None
        or second_pass_offset is None
        or first_pass_offset <= second_pass_offset
    ):
        return None
    repeat = first_pass_offset - second_pass_offset
    now_utc = to_utc(local)
    transition = first_instant_with_offset_of(now_utc, now_utc - repeat, local.tzinfo)
    return (transition + first_pass_offset).replace(tzinfo=None)


def first_instant_with_offset_of(instant: datetime, earlier: datetime, zone: tzinfo) -> datetime:
    """The earliest UTC second in ``(earlier, instant]`` from which on the UTC
    offset of ``zone`` equals the offset at ``instant`` (a binary search;
    ``earlier`` must have a different offset)."""
    target = instant.astimezone(zone).utcoffset()
    low = int((earlier - instant).total_seconds())  # offset known different
    high = 0  # offset known equal
    while high - low > 1:
        middle = (low + high) // 2
        if (instant + timedelta(seconds=middle)).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return (instant + timedelta(seconds=high)).replace(microsecond=0) if high else instant


def localize(moment: datetime, zone: tzinfo) -> datetime:
    """An aware datetime in ``zone``: naive input is read as wall time there
    (with the DST rules above), aware input is converted."""
    if moment.tzinfo is None:
        return wall_to_instant(moment, zone)
    return to_utc(moment).astimezone(zone)


def parse_datetime(value: datetime | str, zone: tzinfo, field: str) -> datetime:
    """A datetime or ISO 8601 string (``"2025-06-01T09:00"``, ``"...Z"``,
    ``"...+02:00"``, ``"2025-06-01"``) as an aware datetime in ``zone``."""
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"{field}: {value!r} is not an ISO date-time like 2025-06-01T09:00"
            ) from None
    elif not isinstance(value, datetime):
        raise ScheduleError(f"{field}: {value!r} is not a date-time")
    return localize(value, zone)


def format_instant(moment: datetime) -> str:
    """Short local rendering for descriptions: ``2025-06-01 09:00 CEST``."""
    pattern = "%Y-%m-%d %H:%M:%S" if moment.second or moment.microsecond else "%Y-%m-%d %H:%M"
    return f"{moment.strftime(pattern)} {moment.tzname()}"


# ---------------------------------------------------------------------------
# Jitter


def apply_jitter(moment: datetime, jitter: float | None, rng: Any) -> datetime:
    """``moment`` delayed by a random 0..``jitter`` seconds (elapsed time)."""
    if not jitter:
        return moment
    if rng is None:
        import random as rng  # lazily: only jittered triggers pay for it
    return add_elapsed(moment, timedelta(seconds=rng.uniform(0, jitter)))


def options_dict(
    timezone_key: str | None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    jitter: float | None = None,
) -> dict[str, Any]:
    """The optional keys shared by persisted triggers, omitting unset ones."""
    options: dict[str, Any] = {}
    if start_date is not None:
        options["start_date"] = start_date.isoformat()
    if end_date is not None:
        options["end_date"] = end_date.isoformat()
    if jitter:
        options["jitter"] = json_number(jitter)
    if timezone_key is not None:
        options["timezone"] = timezone_key
    return options


def explicit_timezone(value: str | tzinfo | None) -> tuple[tzinfo, str | None]:
    """The zone to compute in and the name to persist (``None`` = local, so
    a reloaded trigger follows the router's zone)."""
    zone = resolve_timezone(value)
    return zone, (None if value is None else timezone_name(zone))


def json_number(value: float) -> int | float:
    """``3.0`` -> ``3`` so persisted specs read the way people write them."""
    return int(value) if float(value).is_integer() else value


# ---------------------------------------------------------------------------
# Trigger base


class Trigger:
    """Base class of all triggers. Triggers are immutable and compare equal
    when their :meth:`to_dict` forms are equal.

    Contract of :meth:`next_fire_time`: return the first fire time strictly
    after both ``now`` and ``previous_fire_time`` (``None`` if the trigger is
    finished), as an aware datetime in the trigger's time zone. Convert it
    with ``.astimezone(timezone.utc)`` before storing or comparing: aware
    datetimes sharing one tzinfo compare by wall time ignoring ``fold``, and
    ``==`` across zones is always False for a time inside a fall-back
    overlap (PEP 495), while ``<``/``>`` across zones are exact. Missed runs
    are not reported; the engine decides about late runs from the fire time
    it stored.
    """

    __slots__ = ()

    def next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :func:`trigger_from_dict` rebuilds the trigger."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short human text such as ``every day at 09:00``."""
        raise NotImplementedError

    def _set(self, **attributes: Any) -> None:
        for name, value in attributes.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        from .spec import trigger_from_dict

        return (trigger_from_dict, (self.to_dict(),))


def reference_instant(previous_fire_time: datetime | None, now: datetime) -> datetime:
    """The UTC instant a next fire time must come strictly after."""
    reference = to_utc(now)
    if previous_fire_time is not None:
        reference = max(reference, to_utc(previous_fire_time))
    return reference


def check_date_order(start_date: datetime | None, end_date: datetime | None) -> None:
    if start_date is not None and end_date is not None and to_utc(end_date) < to_utc(start_date):
        raise ScheduleError(
            f"end_date: {end_date.isoformat()} is before start_date {start_date.isoformat()}"
        )
