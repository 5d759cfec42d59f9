"""Time zones without zoneinfo (pineapple/jobs/schedule/zones.py): POSIX TZ
rules as OpenWrt keeps them in /etc/TZ, TZif files, and the refusal of a
named zone whose data is not installed."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from pineapple.jobs.schedule import ScheduleError, _base, daily, local_timezone, resolve_timezone, zones
from pineapple.jobs.schedule.zones import PosixZone, TzifZone, ZoneNotFound, named_zone, package_for, posix_zone

UTC = timezone.utc
BERLIN_RULE = "CET-1CEST,M3.5.0,M10.5.0/3"
HAVE_SYSTEM_ZONES = os.path.isfile("/usr/share/zoneinfo/Europe/Berlin")
needs_system_zones = pytest.mark.skipif(not HAVE_SYSTEM_ZONES, reason="no /usr/share/zoneinfo (apt-get install tzdata)")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(moment: datetime, zone) -> tuple[str, int, str]:
    """``moment`` in ``zone``: wall time, fold and abbreviation."""
    there = moment.astimezone(zone)
    return there.strftime("%Y-%m-%d %H:%M:%S"), there.fold, there.tzname()


@pytest.fixture
def no_zone_data(tmp_path, monkeypatch):
    """No tz database anywhere on the search path."""
    empty = tmp_path / "zoneinfo"
    empty.mkdir()
    monkeypatch.setenv("PYTHONTZPATH", str(empty))
    zones.clear_cache()
    yield empty
    zones.clear_cache()


# -------------------------------------------------------------- POSIX rules
def test_openwrt_rule_for_central_europe_follows_dst():
    zone = posix_zone(BERLIN_RULE)
    assert local(utc(2025, 1, 15, 12), zone) == ("2025-01-15 13:00:00", 0, "CET")
    assert local(utc(2025, 7, 15, 12), zone) == ("2025-07-15 14:00:00", 0, "CEST")
    # last Sunday of March at 02:00 CET, last Sunday of October at 03:00 CEST
    assert local(utc(2025, 3, 30, 0, 59, 59), zone) == ("2025-03-30 01:59:59", 0, "CET")
    assert local(utc(2025, 3, 30, 1), zone) == ("2025-03-30 03:00:00", 0, "CEST")
    assert local(utc(2025, 10, 26, 0, 59, 59), zone) == ("2025-10-26 02:59:59", 0, "CEST")
    assert local(utc(2025, 10, 26, 1), zone) == ("2025-10-26 02:00:00", 1, "CET")


def test_wall_times_in_the_gap_and_the_overlap_follow_pep_495():
    zone = posix_zone(BERLIN_RULE)
    gap = datetime(2025, 3, 30, 2, 30)
    assert gap.replace(tzinfo=zone).utcoffset() == timedelta(hours=1)  # fold 0: offset before
    assert gap.replace(tzinfo=zone, fold=1).utcoffset() == timedelta(hours=2)
    repeated = datetime(2025, 10, 26, 2, 30)
    assert repeated.replace(tzinfo=zone).utcoffset() == timedelta(hours=2)  # first pass
    assert repeated.replace(tzinfo=zone, fold=1).utcoffset() == timedelta(hours=1)
    assert repeated.replace(tzinfo=zone).dst() == timedelta(hours=1)
    assert repeated.replace(tzinfo=zone, fold=1).dst() == timedelta(0)


@pytest.mark.parametrize(("rule", "winter", "summer"), [
    # southern hemisphere: DST across the new year
    ("NZST-12NZDT,M9.5.0,M4.1.0/3", ("2025-07-01 12:00:00", 0, "NZST"), ("2025-01-01 13:00:00", 0, "NZDT")),
    # negative DST (Europe/Dublin's footer: winter is the "daylight" period)
    ("IST-1GMT0,M10.5.0,M3.5.0/1", ("2025-01-01 00:00:00", 0, "GMT"), ("2025-07-01 01:00:00", 0, "IST")),
    # quoted names, minutes in the offset, 30-minute DST
    ("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", ("2025-07-01 10:30:00", 0, "+1030"),
     ("2025-01-01 11:00:00", 0, "+11")),
    # DST all year (how zic writes permanent DST)
    ("EST5EDT,0/0,J365/25", ("2024-12-31 20:00:00", 0, "EDT"), ("2025-06-30 20:00:00", 0, "EDT")),
    # no DST at all, as OpenWrt writes Asia/Shanghai
    ("CST-8", ("2025-01-01 08:00:00", 0, "CST"), ("2025-07-01 08:00:00", 0, "CST")),
])
def test_rule_variants(rule, winter, summer):
    zone = posix_zone(rule)
    january, july = utc(2025, 1, 1), utc(2025, 7, 1)
    northern = not rule.startswith(("NZ", "<+1030>"))
    assert local(january if northern else july, zone) == winter
    assert local(july if northern else january, zone) == summer


def test_julian_and_zero_based_day_rules_and_extended_times():
    # Jn never counts February 29: J60 is March 1 in every year
    j60 = posix_zone("AAA3BBB,J60/2,J300")
    assert j60.transitions(2024)[0] == int((utc(2024, 3, 1, 5) - utc(1970, 1, 1)).total_seconds())
    assert j60.transitions(2025)[0] == int((utc(2025, 3, 1, 5) - utc(1970, 1, 1)).total_seconds())
    # n counts from 0 and counts February 29: 59 is February 29 in a leap year
    n59 = posix_zone("AAA3BBB,59/2,300")
    assert j60.transitions(2025)[0] == n59.transitions(2025)[0]
    assert n59.transitions(2024)[0] == int((utc(2024, 2, 29, 5) - utc(1970, 1, 1)).total_seconds())
    # RFC 8536 allows transition times below 0 and past 24 hours
    late = posix_zone("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1")
    assert late.transitions(2025)[0] == int((utc(2025, 3, 30, 1) - utc(1970, 1, 1)).total_seconds())


def test_dst_name_without_dates_uses_the_us_rules():
    assert posix_zone("EST5EDT").transitions(2025) == posix_zone("EST5EDT,M3.2.0,M11.1.0").transitions(2025)


@pytest.mark.parametrize("rule", ["", "CET", "C1", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
                                  "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,J0,J365", "CET-25", "CET-1CEST,366,1",
                                  "CET-1:60"])
def test_malformed_rules_are_refused(rule):
    with pytest.raises(ZoneNotFound):
        PosixZone(rule)


def test_zones_are_cached_by_key():
    assert posix_zone(BERLIN_RULE) is posix_zone(BERLIN_RULE)
    assert str(posix_zone(BERLIN_RULE)) == BERLIN_RULE


# ------------------------------------------------------------------- TZif
def tzif(transitions, types, footer: str | None, version: bytes = b"2") -> bytes:
    """A TZif file: ``types`` are (offset, isdst, abbreviation)."""
    names = b""
    raw_types = []
    for offset, isdst, name in types:
        raw_types.append(struct.pack(">lBB", offset, isdst, len(names)))
        names += name.encode() + b"\0"

    def block(time_format: str, transitions) -> bytes:
        header = b"TZif" + version + bytes(15) + struct.pack(">6l", 0, 0, 0, len(transitions), len(types),
                                                               len(names))
        times = b"".join(struct.pack(time_format, instant) for instant, _ in transitions)
        return header + times + bytes(index for _, index in transitions) + b"".join(raw_types) + names

    if version == b"\0":
        return block(">l", transitions)
    # version 2+: readers skip the 32-bit block, so (like zic -b slim) leave it empty
    return block(">l", []) + block(">q", transitions) + b"\n" + (footer or "").encode() + b"\n"


def seconds(moment: datetime) -> int:
    return int((moment - utc(1970, 1, 1)).total_seconds())


def test_tzif_transitions_then_footer():
    # LMT until 1900, then CET/CEST by rule from the footer (a "slim" file)
    data = tzif([(seconds(utc(1900, 1, 1)), 1)], [(3208, 0, "LMT"), (3600, 0, "CET")], BERLIN_RULE)
    zone = TzifZone("Test/Slim", data)
    assert local(utc(1899, 6, 1), zone) == ("1899-06-01 00:53:28", 0, "LMT")
    assert local(utc(2025, 7, 1), zone) == ("2025-07-01 02:00:00", 0, "CEST")
    assert local(utc(2025, 10, 26, 1), zone) == ("2025-10-26 02:00:00", 1, "CET")


def test_tzif_version_1_keeps_the_last_period():
    data = tzif([(0, 0), (seconds(utc(2000, 1, 1)), 1)], [(-18000, 0, "EST"), (-14400, 1, "EDT")], None,
                version=b"\0")
    zone = TzifZone("Test/V1", data)
    assert local(utc(1999, 1, 1), zone) == ("1998-12-31 19:00:00", 0, "EST")
    assert local(utc(2030, 1, 1), zone) == ("2029-12-31 20:00:00", 0, "EDT")
    assert datetime(2030, 1, 1, tzinfo=zone).dst() == timedelta(hours=1)


@pytest.mark.parametrize("data", [b"", b"TZif2" + bytes(10), b"NotTZif" + bytes(60),
                                  tzif([(0, 5)], [(0, 0, "UTC")], "UTC0")])
def test_broken_tzif_files_are_refused(data):
    with pytest.raises(ZoneNotFound):
        TzifZone("Test/Broken", data)


@needs_system_zones
@pytest.mark.parametrize("key", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                                 "Europe/Dublin", "Pacific/Apia", "America/Sao_Paulo", "Africa/Casablanca",
                                 "Antarctica/Troll", "America/St_Johns"])
def test_named_zones_agree_with_the_standard_library(key):
    zoneinfo = pytest.importorskip("zoneinfo")
    ours, theirs = named_zone(key), zoneinfo.ZoneInfo(key)
    instants = [instant + step for instant in ours._transitions for step in (-1, 0, 1)]
    instants += [seconds(utc(year, month, 1)) for year in range(2025, 2060) for month in (1, 4, 7, 10)]
    for instant in instants:
        moment = utc(1970, 1, 1) + timedelta(seconds=instant)
        a, b = moment.astimezone(ours), moment.astimezone(theirs)
        assert (a.replace(tzinfo=None), a.fold, a.utcoffset(), a.tzname()) == \
               (b.replace(tzinfo=None), b.fold, b.utcoffset(), b.tzname()), moment
        wall = a.replace(tzinfo=None)
        for fold in (0, 1):
            mine, reference = wall.replace(tzinfo=ours, fold=fold), wall.replace(tzinfo=theirs, fold=fold)
            assert (mine.utcoffset(), mine.tzname()) == (reference.utcoffset(), reference.tzname()), (wall, fold)


# ----------------------------------------------------- lookup and packages
@pytest.mark.parametrize(("key", "package"), [
    ("Europe/Berlin", ("zoneinfo-europe", "zoneinfo-europe")),
    ("America/New_York", ("zoneinfo-america", "zoneinfo-northamerica")),
    ("America/Argentina/Salta", ("zoneinfo-america", "zoneinfo-southamerica")),
    ("Indian/Maldives", ("zoneinfo-indian", "zoneinfo-india")),
    ("Australia/Sydney", ("zoneinfo-australia-nz", "zoneinfo-australia-nz")),
    ("Etc/GMT-3", ("zoneinfo-core", "zoneinfo-core")),
    ("Mars/Base", None),
])
def test_package_for(key, package):
    assert package_for(key) == package


def test_a_named_zone_without_data_names_the_openwrt_package(no_zone_data):
    with pytest.raises(ScheduleError) as caught:
        daily("09:00", timezone="Europe/Berlin")
    message = str(caught.value)
    assert message.startswith("timezone: 'Europe/Berlin' has no time zone data on this device")
    assert f"searched {no_zone_data}" in message
    assert "install the OpenWrt package zoneinfo-europe" in message
    with pytest.raises(ScheduleError, match="zoneinfo-america .zoneinfo-northamerica on OpenWrt 19.07."):
        resolve_timezone("America/New_York")


def test_a_zone_file_on_the_search_path_is_used(no_zone_data):
    (no_zone_data / "Europe").mkdir()
    (no_zone_data / "Europe" / "Testburg").write_bytes(tzif([], [(3600, 0, "CET")], BERLIN_RULE))
    trigger = daily("09:00", timezone="Europe/Testburg")
    assert trigger.next_fire_time(None, utc(2025, 7, 1)) == utc(2025, 7, 1, 7)
    assert trigger.to_dict()["timezone"] == "Europe/Testburg"
    # the region is installed: a typo is an unknown zone, not a missing package
    with pytest.raises(ScheduleError, match=r"^timezone: 'Europe/Testbrug' is not a known time zone \(use"):
        resolve_timezone("Europe/Testbrug")


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "Europe/../../x", "Europe//Berlin"])
def test_names_that_leave_the_search_path_are_refused(key):
    with pytest.raises(ZoneNotFound, match="is not a time zone name"):
        named_zone(key)


# --------------------------------------------------- the device's own zone
def test_local_zone_from_tz_posix_rule_without_zone_data(no_zone_data, monkeypatch):
    monkeypatch.setenv("TZ", BERLIN_RULE)
    assert local_timezone() is posix_zone(BERLIN_RULE)
    trigger = daily("09:00")
    assert "timezone" not in trigger.to_dict()
    assert trigger.next_fire_time(None, utc(2025, 7, 1)) == utc(2025, 7, 1, 7)  # CEST
    assert trigger.next_fire_time(None, utc(2025, 12, 1)) == utc(2025, 12, 1, 8)  # CET
    # across the change to summer time the daily run stays at 09:00 local
    assert trigger.next_fire_time(None, utc(2025, 3, 29, 9)) == utc(2025, 3, 30, 7)


def test_local_zone_from_etc_tz_without_zone_data(no_zone_data, monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(_base, "_read_etc_tz", lambda: "EST5EDT,M3.2.0,M11.1.0")
    assert datetime(2025, 7, 1, tzinfo=local_timezone()).utcoffset() == timedelta(hours=-4)
    assert datetime(2025, 1, 1, tzinfo=local_timezone()).utcoffset() == timedelta(hours=-5)


def test_openwrt_default_utc(no_zone_data, monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(_base, "_read_etc_tz", lambda: "UTC")
    assert local_timezone() is UTC


SCRIPT = """
import json, sys
from datetime import datetime, timezone
from pineapple.jobs.schedule import daily, custom
now = datetime(2025, 3, 29, 12, tzinfo=timezone.utc)
trigger = custom("30 2 * * *")
fires = []
for _ in range(3):
    now = trigger.next_fire_time(None, now)
    fires.append(now.astimezone(timezone.utc).isoformat())
print(json.dumps({"fires": fires, "zoneinfo": "zoneinfo" in sys.modules,
                  "daily": daily("09:00").next_fire_time(None, now).isoformat()}))
"""


def test_a_process_with_a_posix_tz_and_no_zone_database(tmp_path):
    """What the daemon sees on OpenWrt: TZ is a POSIX rule, no zoneinfo data,
    and the zoneinfo module is never imported (3.7 has none)."""
    empty = tmp_path / "nozones"
    empty.mkdir()
    env = {**os.environ, "TZ": BERLIN_RULE, "PYTHONTZPATH": str(empty), "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    result = json.loads(done.stdout)
    # 02:30 does not exist on 30 March (clocks jump 02:00 -> 03:00): that run is at 03:00 CEST
    assert result["fires"] == ["2025-03-30T01:00:00+00:00", "2025-03-31T00:30:00+00:00",
                               "2025-04-01T00:30:00+00:00"]
    assert result["daily"] == "2025-04-01T09:00:00+02:00"
    assert result["zoneinfo"] is False
