"""The footprint report of `make ipk` (tools/footprint.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from devtools import ipk
from devtools.sandbox import PackageSpec
from tests.openwrt.helpers import DL_DIR
from tools import footprint
from tools.releases import RELEASES, release_for


def test_what_each_release_pulls_in() -> None:
    ours = ["pineapple-jobd", "python3-sh"]
    depends = ["libc", "python3-light", "python3-logging", "python3-urllib", "python3-paho-mqtt", "python3-sh"]
    assert footprint.pulled_in(depends, release_for("3.7"), ours) == [
        "python3-logging", "python3-urllib", "python3-paho-mqtt", "python3-email"]
    assert footprint.pulled_in(depends, release_for("3.11"), ours) == [
        "python3-logging", "python3-urllib", "python3-paho-mqtt", "python3-email", "python3-uuid"]
    with pytest.raises(ValueError, match="no OpenWrt release with opkg ships Python 3.6"):
        release_for("3.6")
    assert {release.paho for release in RELEASES.values()} == {"1.5.1-1", "1.6.1-2"}


def test_a_release_index_gives_exact_sizes(built: dict, target: str, tmp_path: Path) -> None:
    release = release_for(target)
    index_dir = tmp_path / "release"
    sizes = {"python3-light": 1_000_000, "python3-logging": 123_456, "python3-urllib": 64_000,
             "python3-email": 300_000, "python3-uuid": 20_480, "python3-paho-mqtt": 250_000}
    for name, size in sizes.items():
        version = release.paho if name == "python3-paho-mqtt" else release.python
        PackageSpec(name, version, installed_size=size).build(index_dir)
    ipk.index_feed(index_dir)
    text = footprint.report(list(built.values()), target, indexes=[index_dir / "Packages.gz"], free_kb=10_000,
                            dl_dir=DL_DIR)
    pulled = ["python3-logging", "python3-urllib", "python3-paho-mqtt", "python3-email"]
    if "python3-uuid" in release.depends:
        pulled.append("python3-uuid")
    for name in pulled:
        assert f"{-(-sizes[name] // 1024)} KiB  release index" in next(
            line for line in text.splitlines() if line.startswith(f"  {name} ")), text
    ours = sum(int(ipk.parse_control(ipk.read_ipk(path)[0])["Installed-Size"]) for path in built.values())
    total = -(-(ours + sum(sizes[name] for name in pulled)) // 1024)
    assert f"total new on the device: {total} KiB;" in text
    assert f"free flash 10000 KiB: fits, {10_000 - total} KiB left" in text
    assert "python3-light" in text and "not counted" in text


def test_estimates_and_the_verdict(built: dict, target: str) -> None:
    text = footprint.report(list(built.values()), target, free_kb=100, dl_dir=DL_DIR)
    assert f"Footprint on {release_for(target).name} (Python {target})" in text
    assert "estimate: Python" in text  # the target's interpreter is on this machine (the fixture made sure)
    assert "free flash 100 KiB: DOES NOT FIT" in text and "opkg -d sd" in text
    without = footprint.report(list(built.values()), target, dl_dir=DL_DIR)
    assert "df -k /overlay" in without


def test_an_index_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "Packages"
    bogus.write_text("<html>404</html>\n")
    with pytest.raises(footprint.FootprintError, match="not a feed index"):
        footprint.read_index(bogus)
