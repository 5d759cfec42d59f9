"""Time zones without the ``zoneinfo`` module: POSIX TZ rules and TZif files.

OpenWrt installs no time zone database by default. The device's zone is
the POSIX TZ rule in ``/etc/TZ`` (LuCI writes ``system.@system[0].timezone``
there, e.g. ``CET-1CEST,M3.5.0,M10.5.0/3``), which :class:`PosixZone`
evaluates with no data at all. Named zones (``Europe/Berlin``) need the
TZif files of the ``zoneinfo-*`` packages under ``/usr/share/zoneinfo``;
:class:`TzifZone` reads them. A name whose file is missing is refused with
the OpenWrt package that provides it (:func:`package_for`).

Why not ``zoneinfo``: it does not exist on Python 3.7/3.8 (OpenWrt 19.07,
the WiFi Pineapple MK7's base, ships 3.7), and where it does it imports
``sysconfig`` for its search path, which a resident daemon pays for in RAM.
One implementation on every Python gives the same answers everywhere; the
tests check it against ``zoneinfo`` where that exists.

Search path: ``PYTHONTZPATH`` (the variable ``zoneinfo`` reads, ``:``-separated
absolute directories) or :data:`DEFAULT_TZPATH`. The PyPI ``tzdata`` package
is not consulted (there is none on a device).

Both zone classes follow PEP 495: in a spring-forward gap ``fold=0`` reads a
wall time with the offset from before the transition, in a fall-back
overlap ``fold=0`` is the first occurrence. Zones are cached by key, so the
same key gives the same object.
"""
from __future__ import annotations

import os
import re
import struct
from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import NamedTuple

DEFAULT_TZPATH = ("/usr/share/zoneinfo", "/usr/lib/zoneinfo", "/usr/share/lib/zoneinfo", "/etc/zoneinfo")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86400
_MIN_ORDINAL, _MAX_ORDINAL = date.min.toordinal(), date.max.toordinal()


class ZoneNotFound(ValueError):
    """A zone name without data, or a malformed zone; the message says why
    and, for a name, which OpenWrt package provides it (then ``package`` is
    that package's name)."""

    def __init__(self, message: str, package: str | None = None) -> None:
        super().__init__(message)
        self.package = package


class Period(NamedTuple):
    """One stretch of local time: UTC offset and DST amount in seconds, abbreviation."""

    offset: int
    dst: int
    name: str


def _seconds(moment: datetime) -> int:
    """Whole seconds of a naive (or aware, ignoring its zone) datetime since 1970-01-01."""
    days = moment.toordinal() - _EPOCH_ORDINAL
    return days * _DAY + moment.hour * 3600 + moment.minute * 60 + moment.second


def _year_of(seconds: int) -> int:
    ordinal = min(max(seconds // _DAY + _EPOCH_ORDINAL, _MIN_ORDINAL), _MAX_ORDINAL)
    return date.fromordinal(ordinal).year


class Zone(tzinfo):
    """Base of the zone classes: the :class:`tzinfo` protocol on top of two
    lookups, by UTC instant and by wall-clock time (both in seconds)."""

    key: str

    def period_at_utc(self, seconds: int) -> Period:
        raise NotImplementedError

    def period_at_wall(self, seconds: int, fold: int) -> Period:
        raise NotImplementedError

    def _period(self, moment: datetime | None) -> Period | None:
        return None if moment is None else self.period_at_wall(_seconds(moment), moment.fold)

    def utcoffset(self, moment: datetime | None) -> timedelta | None:
        period = self._period(moment)
        return None if period is None else timedelta(seconds=period.offset)

    def dst(self, moment: datetime | None) -> timedelta | None:
        period = self._period(moment)
        return None if period is None else timedelta(seconds=period.dst)

    def tzname(self, moment: datetime | None) -> str | None:
        period = self._period(moment)
        return None if period is None else period.name

    def fromutc(self, moment: datetime) -> datetime:
        if moment.tzinfo is not self:
            raise ValueError("fromutc: the datetime's tzinfo is not this zone")
        instant = _seconds(moment)
        period = self.period_at_utc(instant)
        local = moment + timedelta(seconds=period.offset)
        # The second pass of a repeated hour: its wall time read with fold=0
        # means an earlier instant (another offset).
        if self.period_at_wall(instant + period.offset, 0).offset != period.offset:
            local = local.replace(fold=1)
        return local

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    def __str__(self) -> str:
        return self.key


# ---------------------------------------------------------------------------
# POSIX TZ rules

_NAME = r"(?:<[A-Za-z0-9+-]{3,}>|[A-Za-z]{3,})"
_OFFSET = r"[+-]?\d{1,3}(?::\d{2}(?::\d{2})?)?"
_DATE = r"(?:J\d{1,3}|\d{1,3}|M\d{1,2}\.\d\.\d)"
_RULE = rf"{_DATE}(?:/{_OFFSET})?"
_POSIX = re.compile(
    rf"(?P<std>{_NAME})(?P<std_offset>{_OFFSET})"
    rf"(?:(?P<dst>{_NAME})(?P<dst_offset>{_OFFSET})?(?:,(?P<start>{_RULE}),(?P<end>{_RULE}))?)?",
    re.ASCII,
)
# When a DST name comes without dates glibc and musl use the US rules.
_DEFAULT_RULES = ("M3.2.0", "M11.1.0")


def _clock(text: str, limit: int, what: str) -> int:
    """``[+-]hh[:mm[:ss]]`` as signed seconds, hours at most ``limit``."""
    sign = -1 if text.startswith("-") else 1
    parts = [int(part) for part in text.lstrip("+-").split(":")]
    hours, minutes, seconds = (parts + [0, 0])[:3]
    if hours > limit or minutes > 59 or seconds > 59:
        raise ZoneNotFound(f"{what} {text!r} is out of range")
    return sign * (hours * 3600 + minutes * 60 + seconds)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


class _DateRule(NamedTuple):
    kind: str  # "J" (1-365, no Feb 29), "N" (0-365), "M" (month.week.weekday)
    numbers: tuple[int, ...]
    time: int  # seconds after local midnight, may be negative or past 24 h (RFC 8536)

    @classmethod
    def parse(cls, text: str) -> _DateRule:
        day, _, clock = text.partition("/")
        time = _clock(clock, 167, "transition time") if clock else 7200
        if day.startswith("M"):
            month, week, weekday = (int(part) for part in day[1:].split("."))
            if not (1 <= month <= 12 and 1 <= week <= 5 and 0 <= weekday <= 6):
                raise ZoneNotFound(f"date rule {day!r} is out of range (Mm.w.d: m 1-12, w 1-5, d 0-6)")
            return cls("M", (month, week, weekday), time)
        if day.startswith("J"):
            number = int(day[1:])
            if not 1 <= number <= 365:
                raise ZoneNotFound(f"date rule {day!r} is out of range (J1-J365)")
            return cls("J", (number,), time)
        if not 0 <= int(day) <= 365:
            raise ZoneNotFound(f"date rule {day!r} is out of range (0-365)")
        return cls("N", (int(day),), time)

    def local_seconds(self, year: int) -> int:
        """The transition in ``year`` as local seconds since 1970 (in the
        offset in force before it)."""
        jan1 = date(year, 1, 1).toordinal()
        if self.kind == "J":
            number = self.numbers[0]
            ordinal = jan1 + number - 1 + (1 if _is_leap(year) and number >= 60 else 0)
        elif self.kind == "N":
            ordinal = jan1 + self.numbers[0]
        else:
            month, week, weekday = self.numbers
            first = date(year, month, 1)
            first_weekday = (first.weekday() + 1) % 7  # POSIX counts from Sunday = 0
            day = 1 + (weekday - first_weekday) % 7 + (week - 1) * 7
            while day > _days_in_month(year, month):
                day -= 7
            ordinal = first.toordinal() + day - 1
        return (ordinal - _EPOCH_ORDINAL) * _DAY + self.time


class PosixZone(Zone):
    """A zone from a POSIX TZ rule: ``std offset [dst [offset] [,start[/time],end[/time]]]``.

    Offsets count west of Greenwich (``CET-1`` is UTC+1); the DST offset
    defaults to one hour ahead of standard time. Dates are ``Jn`` (1-365,
    February 29 never counted), ``n`` (0-365) or ``Mm.w.d`` (weekday ``d``,
    0 = Sunday, of week ``w`` of month ``m``, 5 = the last); the time after
    ``/`` defaults to 02:00 and may be negative or beyond 24 hours (RFC 8536).
    """

    __slots__ = ("key", "std", "daylight", "_rules", "_years")

    def __init__(self, rule: str) -> None:
        match = _POSIX.fullmatch(rule)
        if not match:
            raise ZoneNotFound(f"{rule!r} is not a POSIX TZ rule such as 'CET-1CEST,M3.5.0,M10.5.0/3'")
        std_offset = -_clock(match.group("std_offset"), 24, "offset")
        self.key = rule
        self.std = Period(std_offset, 0, match.group("std").strip("<>"))
        self.daylight: Period | None = None
        self._rules: tuple[_DateRule, _DateRule] | None = None
        self._years: dict[int, tuple[int, int]] = {}
        if match.group("dst"):
            given = match.group("dst_offset")
            offset = -_clock(given, 24, "offset") if given else std_offset + 3600
            self.daylight = Period(offset, offset - std_offset, match.group("dst").strip("<>"))
            starts, ends = (match.group("start"), match.group("end")) if match.group("start") else _DEFAULT_RULES
            self._rules = (_DateRule.parse(starts), _DateRule.parse(ends))

    @property
    def has_dst(self) -> bool:
        return self.daylight is not None

    def transitions(self, year: int) -> tuple[int, int]:
        """DST start and end in ``year`` as UTC seconds since 1970."""
        found = self._years.get(year)
        if found is None:
            start, end = self._rules  # type: ignore[misc]
            found = (start.local_seconds(year) - self.std.offset,
                     end.local_seconds(year) - self.daylight.offset)  # type: ignore[union-attr]
            if len(self._years) > 64:
                self._years.clear()
            self._years[year] = found
        return found

    def period_at_utc(self, seconds: int) -> Period:
        if self.daylight is None:
            return self.std
        year = _year_of(seconds + self.std.offset)
        changes = []
        for near in range(max(1, year - 1), min(9999, year + 1) + 1):
            start, end = self.transitions(near)
            changes += [(start, self.daylight), (end, self.std)]
        changes.sort(key=lambda change: change[0])
        # Before the first change, the other period is in force.
        current = self.daylight if changes[0][1] is self.std else self.std
        for instant, period in changes:
            if instant > seconds:
                break
            current = period
        return current

    def period_at_wall(self, seconds: int, fold: int) -> Period:
        if self.daylight is None:
            return self.std
        # Only two offsets exist: the wall time is valid in one, both (a
        # repeated hour) or neither (the skipped hour).
        valid = [period for period in (self.std, self.daylight)
                 if self.period_at_utc(seconds - period.offset) is period]
        if len(valid) == 1:
            return valid[0]
        low, high = sorted((self.std, self.daylight), key=lambda period: period.offset)
        if valid:  # repeated: fold 0 is the first pass, with the larger offset
            return low if fold else high
        return high if fold else low  # skipped: fold 0 keeps the offset from before


# ---------------------------------------------------------------------------
# TZif files (RFC 8536)


class TzifZone(Zone):
    """A zone read from a TZif file (versions 1 to 4; leap seconds ignored).

    Before the first transition the first time type applies; after the last
    one (always, in a file without transitions), the POSIX rule of the
    file's footer (version 2 and later).
    """

    __slots__ = ("key", "_transitions", "_periods", "_first", "_wall", "_footer")

    def __init__(self, key: str, data: bytes) -> None:
        self.key = key
        transitions, indexes, types, footer = _parse_tzif(data, key)
        periods = _periods(types, indexes)
        self._transitions: list[int] = transitions
        self._periods: list[Period] = [periods[index] for index in indexes]
        self._first: Period = periods[0]
        self._footer: PosixZone | None = None
        if footer:
            try:
                self._footer = posix_zone(footer)
            except ZoneNotFound:
                self._footer = None  # a footer we cannot read: the last period stays
        # Wall-clock times of each transition for fold 0 and fold 1: a change
        # to a larger offset skips wall times (fold 0 reads them with the old
        # offset, so the change happens at the later wall time); a change to a
        # smaller offset repeats them (fold 0 is the first pass, likewise).
        before = [self._first] + self._periods[:-1]
        pairs = [(instant + old.offset, instant + new.offset)
                 for instant, old, new in zip(transitions, before, self._periods)]  # noqa: B905 - 3.7
        self._wall = ([max(pair) for pair in pairs], [min(pair) for pair in pairs])

    def period_at_utc(self, seconds: int) -> Period:
        index = bisect_right(self._transitions, seconds) - 1
        if index < 0 and (self._transitions or self._footer is None):
            return self._first
        if index == len(self._transitions) - 1 and self._footer is not None:
            return self._footer.period_at_utc(seconds)
        return self._periods[index]

    def period_at_wall(self, seconds: int, fold: int) -> Period:
        wall = self._wall[1 if fold else 0]
        index = bisect_right(wall, seconds) - 1
        if index < 0 and (wall or self._footer is None):
            return self._first
        if index == len(wall) - 1 and self._footer is not None:
            return self._footer.period_at_wall(seconds, fold)
        return self._periods[index]


def _parse_tzif(data: bytes, key: str) -> tuple[list[int], list[int], list[tuple[int, int, str]], str]:
    """(transition times, type index per transition, types (offset, isdst,
    abbreviation), footer rule) from TZif bytes; the 64-bit block when present."""
    try:
        header = _header(data, 0, key)
        version = data[4:5]
        size = _block_size(header, 4)
        if version >= b"2":
            start = 44 + size
            header = _header(data, start, key)
            transitions, indexes, types = _block(data, start + 44, header, 8)
            end = start + 44 + _block_size(header, 8)
            footer = data[end:].split(b"\n")[1].decode("ascii") if data[end:end + 1] == b"\n" else ""
            return transitions, indexes, types, footer
        transitions, indexes, types = _block(data, 44, header, 4)
        return transitions, indexes, types, ""
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ZoneNotFound(f"{key!r}: not a valid TZif file ({exc})") from None


def _header(data: bytes, offset: int, key: str) -> tuple[int, ...]:
    if data[offset:offset + 4] != b"TZif":
        raise ZoneNotFound(f"{key!r}: not a TZif file")
    counts = struct.unpack_from(">6l", data, offset + 20)  # isut, isstd, leap, time, type, char
    if counts[4] < 1:
        raise ZoneNotFound(f"{key!r}: TZif file without time types")
    return counts


def _block_size(counts: Sequence[int], time_size: int) -> int:
    isut, isstd, leap, times, types, chars = counts
    return times * (time_size + 1) + types * 6 + chars + leap * (time_size + 4) + isstd + isut


def _block(data: bytes, offset: int, counts: Sequence[int], time_size: int
           ) -> tuple[list[int], list[int], list[tuple[int, int, str]]]:
    _isut, _isstd, _leap, times, type_count, chars = counts
    transitions = list(struct.unpack_from(f">{times}{'q' if time_size == 8 else 'l'}", data, offset))
    offset += times * time_size
    indexes = list(data[offset:offset + times])
    offset += times
    raw_types = [struct.unpack_from(">lBB", data, offset + 6 * n) for n in range(type_count)]
    offset += 6 * type_count
    names = data[offset:offset + chars]
    types = [(utoff, isdst, names[index:names.index(b"\0", index)].decode("ascii"))
             for utoff, isdst, index in raw_types]
    if any(index >= type_count for index in indexes):
        raise IndexError("transition type index out of range")
    return transitions, indexes, types


def _periods(types: list[tuple[int, int, str]], indexes: list[int]) -> list[Period]:
    """A :class:`Period` per time type. TZif stores only an is-DST flag; the
    DST amount is the difference to the nearest standard time in transition
    order (one hour when there is none)."""
    order = indexes or [0]
    amounts: dict[int, int] = {}
    for position, index in enumerate(order):
        offset, isdst, _ = types[index]
        if not isdst or index in amounts:
            continue
        neighbours = [types[other] for other in reversed(order[:position])] + \
                     [types[other] for other in order[position + 1:]]
        standard = next((kind[0] for kind in neighbours if not kind[1]), None)
        amounts[index] = offset - standard if standard is not None and standard != offset else 3600
    return [Period(offset, amounts.get(index, 3600) if isdst else 0, name)
            for index, (offset, isdst, name) in enumerate(types)]


# ---------------------------------------------------------------------------
# Lookup

_KEY = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+.-]+)*", re.ASCII)
_cache: dict[str, Zone] = {}

# Where OpenWrt's zoneinfo packages (utils/zoneinfo in openwrt/packages)
# install each top-level name. OpenWrt 19.07 splits America into -northamerica
# and -southamerica (America/Argentina, Brazil, Chile) and calls -indian
# -india; later releases keep those names as PROVIDES of -america/-indian.
_PACKAGES = {
    "zoneinfo-africa": ("Africa", "Egypt", "Libya"),
    "zoneinfo-america": ("America", "Brazil", "Canada", "Chile", "Cuba", "Jamaica", "Mexico", "Navajo", "US"),
    "zoneinfo-poles": ("Antarctica", "Arctic"),
    "zoneinfo-asia": ("Asia", "Hongkong", "Iran", "Israel", "Japan", "Singapore"),
    "zoneinfo-atlantic": ("Atlantic", "Iceland"),
    "zoneinfo-australia-nz": ("Australia", "NZ", "NZ-CHAT"),
    "zoneinfo-pacific": ("Pacific", "Kwajalein"),
    "zoneinfo-europe": ("Europe", "Eire", "Portugal", "Poland", "Turkey"),
    "zoneinfo-indian": ("Indian",),
    "zoneinfo-core": ("CET", "CST6CDT", "EET", "EST", "EST5EDT", "GB-Eire", "GB", "GMT", "GMT+0", "GMT-0",
                      "GMT0", "Greenwich", "HST", "MET", "MST", "MST7MDT", "PRC", "PST8PDT", "ROC", "ROK",
                      "UCT", "UTC", "Universal", "W-SU", "WET", "Zulu", "Etc"),
}
_OPENWRT_19_07 = {"zoneinfo-america": "zoneinfo-northamerica", "zoneinfo-indian": "zoneinfo-india"}
_SOUTH_AMERICA_19_07 = ("America/Argentina/", "Brazil/", "Chile/")


def tz_path() -> list[str]:
    """The directories searched for zone files, in order."""
    configured = os.environ.get("PYTHONTZPATH")
    if configured is None:
        return list(DEFAULT_TZPATH)
    return [entry for entry in configured.split(os.pathsep) if os.path.isabs(entry)]


def package_for(key: str) -> tuple[str, str] | None:
    """The OpenWrt package providing zone ``key`` and its OpenWrt 19.07 name
    (the same when unchanged), or None for a name no package provides."""
    top = key.split("/", 1)[0]
    for package, names in _PACKAGES.items():
        if top in names:
            if any(key.startswith(prefix) for prefix in _SOUTH_AMERICA_19_07):
                return package, "zoneinfo-southamerica"
            return package, _OPENWRT_19_07.get(package, package)
    return None


def posix_zone(rule: str) -> PosixZone:
    """The (cached) :class:`PosixZone` of ``rule``; :class:`ZoneNotFound` if malformed."""
    zone = _cache.get(rule)
    if not isinstance(zone, PosixZone):
        zone = PosixZone(rule)
        _cache[rule] = zone
    return zone


def named_zone(key: str) -> TzifZone:
    """The (cached) zone ``key`` (``Europe/Berlin``) read from :func:`tz_path`.

    Without its file: :class:`ZoneNotFound`, naming the OpenWrt package that
    installs it when the name belongs to one."""
    zone = _cache.get(key)
    if isinstance(zone, TzifZone):
        return zone
    if not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise ZoneNotFound(f"{key!r} is not a time zone name")
    directories = tz_path()
    for directory in directories:
        path = os.path.join(directory, key)
        if os.path.isfile(path):
            zone = TzifZone(key, _read(path, key))
            _cache[key] = zone
            return zone
    message, package = _missing_message(key, directories)
    raise ZoneNotFound(message, package)


def zone_from_file(path: str, key: str) -> TzifZone:
    """A zone read from a TZif file at ``path`` (e.g. ``/etc/localtime``), not cached."""
    return TzifZone(key, _read(path, key))


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 20)
    except OSError as exc:
        raise ZoneNotFound(f"{key!r}: cannot read {path}: {exc.strerror}") from None


def _missing_message(key: str, directories: list[str]) -> tuple[str, str | None]:
    package = package_for(key)
    region = key.split("/", 1)[0] if "/" in key else None
    region_installed = region is not None and any(os.path.isdir(os.path.join(d, region)) for d in directories)
    if package is None or region_installed:
        return f"{key!r} is not a known time zone", None
    name, old_name = package
    also = f" ({old_name} on OpenWrt 19.07)" if old_name != name else ""
    searched = ":".join(directories) or "nowhere: PYTHONTZPATH is empty"
    return (f"{key!r} has no time zone data on this device (searched {searched}); "
            f"install the OpenWrt package {name}{also}: opkg install {name}"), name


def clear_cache() -> None:
    """Forget cached zones (after zone files were installed or changed)."""
    _cache.clear()


__all__ = ["DEFAULT_TZPATH", "Period", "PosixZone", "TzifZone", "Zone", "ZoneNotFound", "clear_cache",
           "named_zone", "package_for", "posix_zone", "tz_path", "zone_from_file"]
