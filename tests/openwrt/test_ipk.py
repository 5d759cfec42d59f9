"""`make ipk` / `make feed`: the packages' layout, control data and
reproducibility, without installing them."""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import pineapple
from devtools import ipk
from tests.openwrt.helpers import DL_DIR, OPENWRT, SITE, build_ours, makefile_package
from tools import footprint, mkipk


def data_entries(path: Path) -> dict[str, object]:
    """name (without ./) -> TarInfo of the data archive."""
    members = ipk.read_ipk(path)[1]
    return {(info.name[2:] if info.name.startswith("./") else info.name): info
            for info in ipk.tar_entries(members["./data.tar.gz"])}


def control_of(path: Path) -> dict[str, str]:
    return ipk.parse_control(ipk.read_ipk(path)[0])


def test_the_file_name_says_version_release_and_all(built_ipk: Path) -> None:
    release = makefile_package("pineapple-jobd", "pineapple-jobd")["PKG_RELEASE"]
    assert built_ipk.name == f"pineapple-jobd_{pineapple.__version__}-{release}_all.ipk"


def test_outer_archive_is_what_opkg_lede_reads(built_ipk: Path) -> None:
    # A gzip'd tar (not ar) of debian-binary, data.tar.gz, control.tar.gz.
    assert built_ipk.read_bytes()[:2] == b"\x1f\x8b"
    names = [info.name for info in ipk.tar_entries(built_ipk.read_bytes())]
    assert names == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    assert ipk.read_ipk(built_ipk)[1]["./debian-binary"] == b"2.0\n"


def test_data_holds_the_runtime_package_entry_points_init_and_config(snapshot: Path, tmp_path: Path) -> None:
    path = mkipk.build(tmp_path / "out", repo=snapshot)
    entries = data_entries(path)
    files = {name for name, info in entries.items() if info.isfile()}
    expected = {target.lstrip("/") for target in mkipk.package_files(snapshot)}
    assert files == expected
    # Every module of every package of the checkout, nothing else under site-packages.
    site = SITE.lstrip("/") + "/"
    shipped = {name[len(site):] for name in files if name.startswith(site)}
    sources = {p.relative_to(snapshot).as_posix() for p in (snapshot / "pineapple").rglob("*.py")
               if _in_packages(p, snapshot)}
    assert {name for name in shipped if name.endswith(".py")} == sources
    assert all(name.startswith("pineapple/") for name in shipped)
    assert not [name for name in files if "__pycache__" in name or name.endswith((".pyc", ".pyo"))]
    assert not [name for name in files if name.split("/")[0] in ("tests", "devtools", "bench", "tools")]
    assert {"usr/bin/pineapple-jobd", "usr/bin/pineapple-jobs", "etc/init.d/pineapple-jobd",
            "etc/config/pineapple-jobd"} <= files


def test_modes_owners_and_timestamps(built_ipk: Path) -> None:
    entries = data_entries(built_ipk)
    modes = {name: stat.S_IMODE(info.mode) for name, info in entries.items() if info.isfile()}
    assert modes.pop("usr/bin/pineapple-jobd") == 0o755
    assert modes.pop("usr/bin/pineapple-jobs") == 0o755
    assert modes.pop("etc/init.d/pineapple-jobd") == 0o755
    assert modes.pop("etc/config/pineapple-jobd") == 0o600  # $(INSTALL_CONF), as the SDK installs it
    assert set(modes.values()) == {0o644}
    assert {(info.uid, info.gid) for info in entries.values()} == {(0, 0)}
    assert {info.mtime for info in entries.values()} == {mkipk.source_date_epoch()}


def test_entry_points_are_console_scripts(built_ipk: Path) -> None:
    members = ipk.read_ipk(built_ipk)[1]
    for name, target in (("pineapple-jobd", "pineapple.daemon.main"), ("pineapple-jobs", "pineapple.cli.main")):
        text = members[f"data/./usr/bin/{name}"].decode()
        assert text.startswith("#!/usr/bin/python3\n")
        assert f"from {target} import main\n" in text
        assert "sys.exit(main())" in text
        compile(text, name, "exec")


def test_init_script_and_config_are_the_feed_files(built_ipk: Path) -> None:
    members = ipk.read_ipk(built_ipk)[1]
    files = OPENWRT / "pineapple-jobd" / "files"
    assert members["data/./etc/init.d/pineapple-jobd"] == (files / "pineapple-jobd.init").read_bytes()
    assert members["data/./etc/config/pineapple-jobd"] == (files / "pineapple-jobd.config").read_bytes()


def test_control_fields_follow_the_feed_makefile(built_ipk: Path) -> None:
    control = control_of(built_ipk)
    make = makefile_package("pineapple-jobd", "pineapple-jobd")
    assert control["Package"] == "pineapple-jobd"
    assert control["Version"] == f"{pineapple.__version__}-{make['PKG_RELEASE']}"
    assert make["PKG_VERSION"] == pineapple.__version__
    # package-pack.mk: libc (PKG_FIXUP_DEPENDS), then DEPENDS; no version
    # constraint: every release's python3-paho-mqtt (1.5.1 on) will do.
    assert "EXTRA_DEPENDS" not in make
    listed = [dep.lstrip("+") for dep in make["DEPENDS"].split()]
    assert control["Depends"] == ", ".join(["libc", *listed])
    assert control["Architecture"] == "all"
    assert control["License"] == make["PKG_LICENSE"] == "MIT"
    assert control["Maintainer"] == make["PKG_MAINTAINER"]
    assert control["Section"] == make["SECTION"]
    assert control["Source"].endswith("/pineapple-jobd")
    assert control["Description"].startswith("pineapple-jobd runs opkg")


def test_python3_sh_is_sh_py_of_the_checked_sdist(built: dict, target: str) -> None:
    path = built["python3-sh"]
    control = control_of(path)
    make = makefile_package("python-sh", "python3-sh")
    assert path.name == "python3-sh_1.14.3-1_all.ipk"
    assert control["Depends"] == "libc, python3-light, python3-logging"
    assert (control["Source"], control["SourceName"]) == ("feeds/pineapple/python-sh", "python-sh")
    assert control["License"] == "MIT" and control["LicenseFiles"] == "LICENSE.txt"
    assert control["Maintainer"] == make["PKG_MAINTAINER"] and control["Section"] == "lang"
    files = {name for name, info in data_entries(path).items() if info.isfile()}
    assert files == {f"{mkipk.site_packages(target).lstrip('/')}/sh.py"}
    sh_py = ipk.read_ipk(path)[1][f"data/.{mkipk.site_packages(target)}/sh.py"]
    assert b'__version__ = "1.14.3"' in sh_py


def test_a_wrong_sdist_is_refused(snapshot: Path, tmp_path: Path) -> None:
    from tools.pypi import SdistError

    makefile = snapshot / "openwrt" / "python-sh" / "Makefile"
    good = makefile_package("python-sh", "python3-sh")["PKG_HASH"]
    makefile.write_text(makefile.read_text().replace(good, "0" * 64))
    dl = tmp_path / "dl"
    dl.mkdir()
    shutil.copy2(DL_DIR / "sh-1.14.3.tar.gz", dl)  # present, but not what PKG_HASH says: downloaded again, refused
    with pytest.raises(SdistError, match="PKG_HASH"):
        mkipk.build_sh(tmp_path / "out", dl, repo=snapshot)


def test_installed_size_is_the_uncompressed_data_tar(built_ipk: Path) -> None:
    # OpenWrt's ipkg-build: installed_size=$(zcat < data.tar.gz | wc -c).
    members = ipk.read_ipk(built_ipk)[1]
    data_tar = gzip.decompress(members["./data.tar.gz"])
    assert int(control_of(built_ipk)["Installed-Size"]) == len(data_tar)
    file_bytes = sum(len(v) for k, v in members.items() if k.startswith("data/") and not k.endswith("/"))
    assert len(data_tar) > file_bytes


def test_conffiles_and_maintainer_scripts(built_ipk: Path, tmp_path: Path) -> None:
    members = ipk.read_ipk(built_ipk)[1]
    assert members["control/./conffiles"] == b"/etc/config/pineapple-jobd\n"
    control_modes = {info.name: stat.S_IMODE(info.mode) for info in ipk.tar_entries(members["./control.tar.gz"])}
    for script, function in (("postinst", "default_postinst"), ("prerm", "default_prerm")):
        text = members[f"control/./{script}"].decode()
        assert control_modes[f"./{script}"] == 0o755
        assert text.startswith("#!/bin/sh\n") and f"{function} $0 $@" in text
        path = tmp_path / script
        path.write_text(text)
        assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0


def test_same_sources_give_the_same_bytes(snapshot: Path, tmp_path: Path) -> None:
    first = mkipk.build(tmp_path / "a", repo=snapshot, mtime=1700000000)
    second = mkipk.build(tmp_path / "b", repo=snapshot, mtime=1700000000)
    assert first.read_bytes() == second.read_bytes()
    other_time = mkipk.build(tmp_path / "c", repo=snapshot, mtime=1700000001)
    assert other_time.read_bytes() != first.read_bytes()


def test_any_python_packs_the_same_bytes(snapshot: Path, tmp_path: Path) -> None:
    """`make ipk` runs on any Python 3.7 or later: the one that packs makes no
    difference (tarfile's own headers did differ between 3.7 and 3.11)."""
    other = footprint.find_interpreter("3.7") if sys.version_info[:2] != (3, 7) else None
    if other is None:
        pytest.skip("needs a Python 3.7 beside this one (pyenv install 3.7) to compare with")
    reference = build_ours(tmp_path / "ref", "3.11", repo=snapshot, mtime=1700000000)
    subprocess.run([other, str(snapshot / "tools" / "mkipk.py"), "ipk", "--out", str(tmp_path / "py37"),
                    "--python-version", "3.11", "--dl", str(DL_DIR), "--mtime", "1700000000", "--no-report"],
                   check=True, capture_output=True, timeout=300, env=_clean_env())
    for path in reference.values():
        assert (tmp_path / "py37" / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("version", ["3.7", "3.11"])
def test_make_ipk_and_make_feed(snapshot: Path, tmp_path: Path, version: str) -> None:
    env_epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    reference = build_ours(tmp_path / "ref", version, repo=snapshot, mtime=1700000000)
    out, feed = tmp_path / "dist", tmp_path / "feed"
    feed.mkdir()
    (feed / "pineapple-jobd_0.0.1-1_all.ipk").write_bytes(b"an older build")
    outputs = {}
    for target, var, value in (("ipk", "IPK_OUT", out), ("feed", "FEED_OUT", feed)):
        done = subprocess.run(["make", "-s", "-C", str(snapshot), target, f"{var}={value}", f"PYTHON={sys.executable}",
                               f"IPK_PYTHON_VERSION={version}", f"DL_DIR={DL_DIR}", "FREE_FLASH_KB=100000"],
                              check=True, capture_output=True, text=True, timeout=300,
                              env={**_clean_env(), **env_epoch})
        outputs[target] = done.stdout
    # A separate process (and `make feed`) produces byte-identical packages.
    for path in reference.values():
        assert (out / path.name).read_bytes() == path.read_bytes()
        assert (feed / path.name).read_bytes() == path.read_bytes()
    assert sorted(p.name for p in feed.iterdir()) == sorted([p.name for p in reference.values()]
                                                            + ["Packages", "Packages.gz"])
    index = (feed / "Packages").read_text()
    assert gzip.decompress((feed / "Packages.gz").read_bytes()).decode() == index
    stanzas = {s["Package"]: s for s in map(ipk.parse_control, index.strip().split("\n\n"))}
    for name, path in reference.items():
        blob = path.read_bytes()
        assert stanzas[name]["Filename"] == path.name
        assert stanzas[name]["Size"] == str(len(blob))
        assert stanzas[name]["SHA256sum"] == hashlib.sha256(blob).hexdigest()
    assert index.index("SHA256sum:") < index.index("Description:")
    # make ipk reports the footprint against the free flash given.
    for name, path in reference.items():
        size_kib = -(-int(control_of(path)["Installed-Size"]) // 1024)
        assert re.search(rf"^  {name} +\S+ +{size_kib} KiB  this build$", outputs["ipk"], re.M), outputs["ipk"]
    assert "free flash 100000 KiB: fits" in outputs["ipk"]


def test_python_version_sets_the_site_packages_path(snapshot: Path, tmp_path: Path) -> None:
    path = mkipk.build(tmp_path / "out", repo=snapshot, python_version="3.13", mtime=0)
    assert "usr/lib/python3.13/site-packages/pineapple/__init__.py" in data_entries(path)
    with pytest.raises(ValueError):
        mkipk.site_packages("3")


def test_version_mismatch_stops_the_build(snapshot: Path, tmp_path: Path) -> None:
    init = snapshot / "pineapple" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{pineapple.__version__}"', '"9.9.9"'))
    with pytest.raises(ValueError, match="PKG_VERSION"):
        mkipk.build(tmp_path / "out", repo=snapshot, mtime=0)


def _in_packages(path: Path, root: Path) -> bool:
    """True when every directory from the top package down to ``path`` has
    an __init__.py (what setuptools' find_packages walks)."""
    parts = path.relative_to(root).parts
    return all((root.joinpath(*parts[:depth]) / "__init__.py").is_file() for depth in range(1, len(parts)))


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
