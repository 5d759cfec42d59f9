"""Reading status files and feed lists from real files in an offline root."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from pineapple.opkg.conf import OpkgConf, load_conf
from pineapple.opkg.status import (
    AvailablePackage,
    Dependency,
    InstalledPackage,
    available_packages,
    compare_versions,
    dependents_of,
    free_kb,
    installed_packages,
    lists_age,
    parse_control,
    parse_depends,
    required_kb,
    which_installed,
)

ROOT_STATUS = """\
Package: libc
Version: 1.2.4-4
Depends: libgcc1
Provides: libc.so.6
Status: install hold installed
Architecture: mipsel_24kc
Installed-Time: 1700000000

Package: mylib
Version: 1.0-1
Depends: libc
Status: install user installed
Architecture: all
Auto-Installed: yes
Installed-Time: 1700000100

Package: myapp
Version: 1.2.3-1
Depends: mylib (>= 1.0), libc
Status: install user installed
Architecture: all
Conffiles:
 /etc/config/myapp 5f2c0d1e
Installed-Time: 1700000200

Package: failpkg
Version: 0.1-1
Status: install user unpacked
Architecture: all

Package: gone
Version: 3.0-1
Status: deinstall hold not-installed
Architecture: all

Package: leftover
Version: 2.0-1
Status: deinstall user config-files
Architecture: all

Package: libgcc1
Version: 12.3.0-4
Status: install hold installed
Architecture: mipsel_24kc
"""
SD_STATUS = """\
Package: bigtool
Version: 5.0-1
Depends: libc.so.6
Status: install user installed
Architecture: mipsel_24kc

Package: failpkg
Version: 0.1-1
Status: install user installed
Architecture: all

Package: truncat
Version: 1.0
Sta"""
BASE_LIST = """\
Package: libc
Version: 1.2.4-4
Architecture: mipsel_24kc
Installed-Size: 650000
Filename: libc_1.2.4-4_mipsel_24kc.ipk
Size: 300000
SHA256sum: 00
Description: the C library

Package: newapp
Version: 2.0-1
Depends: libc, newlib | altlib, virtual-ssl
Architecture: all
Installed-Size: 10000
Filename: newapp_2.0-1_all.ipk
Size: 4000
Description: a new application
 spanning two lines

Package: newlib
Version: 1.0-1
Depends: libc, deeplib
Architecture: mipsel_24kc
Installed-Size: 2049
Filename: newlib_1.0-1_mipsel_24kc.ipk
Size: 1000

Package: deeplib
Version: 0.9-1
Architecture: mipsel_24kc
Installed-Size: 1024
Filename: deeplib_0.9-1_mipsel_24kc.ipk
Size: 700

Package: altlib
Version: 1.0-1
Architecture: mipsel_24kc
Installed-Size: 99999
Filename: altlib_1.0-1_mipsel_24kc.ipk

Package: libopenssl3
Version: 3.0.13-1
Provides: virtual-ssl
Architecture: mipsel_24kc
Installed-Size: 3000
Filename: libopenssl3_3.0.13-1_mipsel_24kc.ipk

Package: nosize
Version: 1.0-1
Architecture: all
Filename: nosize_1.0-1_all.ipk

Package: needsnosize
Version: 1.0-1
Depends: nosize
Architecture: all
Installed-Size: 10
Filename: needsnosize_1.0-1_all.ipk

Package: broken
Version: 1.0-1
Depends: does-not-exist
Architecture: all
Installed-Size: 10

Package: armonly
Version: 1.0-1
Architecture: aarch64_cortex-a53
Installed-Size: 10
"""
CUSTOM_LIST = """\
Package: newapp
Version: 2.0-10
Depends: libc
Architecture: all
Installed-Size: 20000
Filename: newapp_2.0-10_all.ipk

Package: libc
Version: 1.2.3-1
Architecture: mipsel_24kc
Installed-Size: 1
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write(tmp_path / "etc/opkg.conf",
          "dest root /\ndest sd /mnt/sd\nlists_dir ext /var/opkg-lists\n"
          "arch all 1\narch noarch 1\narch mipsel_24kc 10\n")
    write(tmp_path / "etc/opkg/feeds.conf",
          "src/gz base http://feed.example/base\nsrc custom file:///srv/custom\n")
    write(tmp_path / "usr/lib/opkg/status", ROOT_STATUS)
    write(tmp_path / "mnt/sd/usr/lib/opkg/status", SD_STATUS)
    write(tmp_path / "var/opkg-lists/base", gzip.compress(BASE_LIST.encode()))
    write(tmp_path / "var/opkg-lists/custom", CUSTOM_LIST)
    return tmp_path


@pytest.fixture
def conf(root: Path) -> OpkgConf:
    return load_conf(str(root / "etc/opkg.conf"), str(root))


# ---------------------------------------------------------------- parsing


def test_parse_control_stanzas_and_continuations() -> None:
    text = ("Package: a\nDescription: first\n second line\n\tthird\n\n\n"
            "Package: b\nConffiles:\n /etc/x 123\n /etc/y 456\n")
    assert parse_control(text) == [
        {"Package": "a", "Description": "first\nsecond line\nthird"},
        {"Package": "b", "Conffiles": "/etc/x 123\n/etc/y 456"},
    ]


def test_parse_control_tolerates_garbage_and_a_cut_off_stanza() -> None:
    text = (" orphan continuation\nnot a field\nPackage: a\nVersion: 1\nbad key: x\n\n"
            "Package: b\nVersi")
    assert parse_control(text) == [{"Package": "a", "Version": "1"}, {"Package": "b"}]


def test_parse_control_handles_crlf_and_values_with_colons() -> None:
    text = "Package: a\r\nFilename: http://x/a_1_all.ipk\r\n\r\nPackage: b\r\n"
    assert parse_control(text) == [{"Package": "a", "Filename": "http://x/a_1_all.ipk"},
                                   {"Package": "b"}]


def test_parse_control_keeps_only_requested_fields() -> None:
    text = "Package: a\nDescription: long\n more\nVersion: 1\n"
    assert parse_control(text, keep={"Package", "Version"}) == [{"Package": "a", "Version": "1"}]


def test_parse_control_empty() -> None:
    assert parse_control("") == [] and parse_control("\n\n  \n") == []


def test_parse_depends() -> None:
    assert parse_depends("libc, mylib (>= 1.0), a | b (<< 2), c (= 1:2.0-1)") == [
        [Dependency("libc")],
        [Dependency("mylib", ">=", "1.0")],
        [Dependency("a"), Dependency("b", "<<", "2")],
        [Dependency("c", "=", "1:2.0-1")],
    ]


def test_parse_depends_odd_forms() -> None:
    assert parse_depends("") == []
    assert parse_depends(" , ,") == []
    assert parse_depends("x(>=1.0)") == [[Dependency("x", ">=", "1.0")]]
    assert parse_depends("x (< 2), y (> 1)") == [[Dependency("x", "<=", "2")],
                                                 [Dependency("y", ">=", "1")]]
    assert parse_depends("z (1.0)") == [[Dependency("z", None, "1.0")]]
    assert parse_depends("a |") == [[Dependency("a")]]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0-1", "1.0-2", -1),
        ("1.10", "1.9", 1),
        ("1.0~rc1", "1.0", -1),
        ("1:0.1", "2.0", 1),
        ("2.0-10", "2.0-1", 1),
        ("1.0a", "1.0", 1),
        ("1.0+git", "1.0a", 1),
        ("1.01", "1.1", 0),
        ("2023.10.01", "2023.9.30", 1),
        ("", "0", 0),
    ],
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


# -------------------------------------------------------------- installed


def test_installed_packages_across_dests(conf: OpkgConf) -> None:
    installed = installed_packages(conf)
    assert sorted(installed) == ["bigtool", "failpkg", "libc", "libgcc1", "myapp", "mylib", "truncat"]
    assert installed["myapp"] == InstalledPackage(
        name="myapp", version="1.2.3-1", dest="root", state="installed", auto_installed=False,
        depends=[[Dependency("mylib", ">=", "1.0")], [Dependency("libc")]],
    )
    assert installed["mylib"].auto_installed
    assert installed["libc"].provides == ("libc.so.6",)
    assert installed["bigtool"].dest == "sd"
    assert installed["truncat"].state == "unknown"  # cut off before its Status line


def test_a_fully_installed_entry_beats_a_half_installed_one(conf: OpkgConf) -> None:
    failpkg = installed_packages(conf)["failpkg"]
    assert (failpkg.dest, failpkg.state) == ("sd", "installed")


def test_half_configured_package_is_reported_as_such(root: Path, conf: OpkgConf) -> None:
    (root / "mnt/sd/usr/lib/opkg/status").unlink()
    assert installed_packages(conf)["failpkg"].state == "unpacked"
    assert which_installed(conf, ["failpkg"]) == {"failpkg": None}


def test_missing_status_files_mean_nothing_installed(tmp_path: Path) -> None:
    conf = load_conf(None, str(tmp_path))
    assert installed_packages(conf) == {}
    assert which_installed(conf, ["libc"]) == {"libc": None}


def test_which_installed(conf: OpkgConf) -> None:
    assert which_installed(conf, ["myapp", "gone", "leftover", "nosuchpkg", "bigtool"]) == {
        "myapp": "1.2.3-1",
        "gone": None,
        "leftover": None,
        "nosuchpkg": None,
        "bigtool": "5.0-1",
    }


def test_dependents_of(conf: OpkgConf) -> None:
    installed = installed_packages(conf)
    assert dependents_of(installed, "mylib") == ["myapp"]
    assert dependents_of(installed, "libc") == ["bigtool", "myapp", "mylib"]  # bigtool via Provides
    assert dependents_of(installed, "myapp") == []
    assert dependents_of(installed, "nosuchpkg") == []


def test_dependents_of_ignores_half_installed_dependents() -> None:
    def pkg(name: str, state: str, depends: str = "") -> InstalledPackage:
        return InstalledPackage(name, "1", "root", state, False, parse_depends(depends))

    installed = {p.name: p for p in [pkg("lib", "installed"), pkg("a", "unpacked", "lib"),
                                     pkg("b", "installed", "x | lib")]}
    assert dependents_of(installed, "lib") == ["b"]


# -------------------------------------------------------------- available


def test_available_packages_reads_gzip_and_plain_lists(conf: OpkgConf) -> None:
    available = available_packages(conf)
    assert available["newlib"] == AvailablePackage(
        name="newlib", version="1.0-1",
        depends=[[Dependency("libc")], [Dependency("deeplib")]],
        size=1000, installed_size=2049, filename="newlib_1.0-1_mipsel_24kc.ipk",
        feed="base", architecture="mipsel_24kc",
    )
    assert available["nosize"].installed_size is None
    assert available["libopenssl3"].provides == ("virtual-ssl",)


def test_highest_version_wins_across_feeds(conf: OpkgConf) -> None:
    available = available_packages(conf)
    assert (available["newapp"].version, available["newapp"].feed) == ("2.0-10", "custom")
    assert (available["libc"].version, available["libc"].feed) == ("1.2.4-4", "base")


def test_other_architectures_are_left_out(conf: OpkgConf) -> None:
    assert "armonly" not in available_packages(conf)
    conf.arches.clear()  # no arch lines: opkg's defaults, unknown here, so no filter
    assert "armonly" in available_packages(conf)


def test_missing_list_contributes_nothing(root: Path, conf: OpkgConf) -> None:
    (root / "var/opkg-lists/base").unlink()
    assert sorted(available_packages(conf)) == ["libc", "newapp"]


def test_truncated_gzip_list_yields_what_it_can(root: Path, conf: OpkgConf) -> None:
    data = gzip.compress(BASE_LIST.encode())
    write(root / "var/opkg-lists/base", data[: len(data) * 2 // 3])
    available = available_packages(conf)
    assert "libc" in available
    write(root / "var/opkg-lists/base", b"\x1f\x8bnot really gzip")
    assert sorted(available_packages(conf)) == ["libc", "newapp"]


def test_lists_age(root: Path, conf: OpkgConf) -> None:
    os.utime(root / "var/opkg-lists/base", (1000, 1000))
    os.utime(root / "var/opkg-lists/custom", (5000, 5000))
    assert lists_age(conf, now=6000.0) == 5000.0
    assert lists_age(conf, now=500.0) == 0.0  # clock set back: clamped


def test_lists_age_is_none_when_a_feed_was_never_updated(root: Path, conf: OpkgConf) -> None:
    (root / "var/opkg-lists/custom").unlink()
    assert lists_age(conf, now=6000.0) is None
    assert lists_age(OpkgConf(), now=6000.0) is None


# ------------------------------------------------------------------- space


def test_required_kb_counts_missing_dependencies_transitively(conf: OpkgConf) -> None:
    installed = installed_packages(conf)
    # newapp 2.0-10 from custom only needs libc (installed): 20000 bytes → 20 kB.
    assert required_kb(conf, ["newapp"], installed) == 20
    # newlib needs deeplib: 2049 → 3 kB, 1024 → 1 kB, rounded per package as opkg does.
    assert required_kb(conf, ["newlib"], installed) == 4
    assert required_kb(conf, ["newlib", "deeplib", "newlib"], installed) == 4


def test_required_kb_uses_alternatives_and_provides(conf: OpkgConf) -> None:
    available = available_packages(conf)
    available["newapp"] = AvailablePackage(
        "newapp", "2.0-1", parse_depends("libc, newlib | altlib, virtual-ssl"),
        4000, 10000, "newapp_2.0-1_all.ipk", "base")
    installed = installed_packages(conf)
    # newapp 10 + newlib 3 + deeplib 1 + libopenssl3 (provides virtual-ssl) 3
    assert required_kb(conf, ["newapp"], installed, available) == 17


def test_required_kb_is_zero_for_installed_packages(conf: OpkgConf) -> None:
    assert required_kb(conf, ["myapp", "libc"], installed_packages(conf)) == 0


def test_required_kb_unknown_cases(conf: OpkgConf) -> None:
    installed = installed_packages(conf)
    assert required_kb(conf, ["nosize"], installed) is None
    assert required_kb(conf, ["needsnosize"], installed) is None
    assert required_kb(conf, ["broken"], installed) is None
    assert required_kb(conf, ["nosuchpkg"], installed) is None


def test_free_kb_of_an_existing_and_a_not_yet_created_path(tmp_path: Path) -> None:
    stats = os.statvfs(tmp_path)
    expected = stats.f_bavail * stats.f_frsize // 1024
    assert abs(free_kb(str(tmp_path)) - expected) < 1024
    assert abs(free_kb(str(tmp_path / "not/yet/there")) - expected) < 1024
    assert free_kb(str(tmp_path)) > 0
