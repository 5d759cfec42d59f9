"""Install and remove the built packages with opkg in an offline root whose
feeds offer only what a release feed offers (python3-light, python3-logging,
python3-urllib, python3-email, python3-uuid on 22.03+, the release's own
python3-paho-mqtt) plus this feed's python3-sh and pineapple-jobd. Each test
runs with the opkg stand-in and, when PINEAPPLE_TEST_OPKG names it, the
real opkg-lede, for each target Python (19.07's 3.7, 23.05's 3.11)."""
from __future__ import annotations

import gzip
import hashlib
import stat
from pathlib import Path

import pytest

from devtools import ipk
from devtools.opkgsim.control import parse_stanzas
from devtools.sandbox import Sandbox
from tests.openwrt.helpers import OPKGS, feed_dependencies, opkg
from tools import mkipk
from tools.releases import release_for

CONFIG = "/etc/config/pineapple-jobd"


def shipped_files(ipk_path: Path) -> dict[str, tuple[bytes, int]]:
    """Target path -> (content, mode) of every regular file in the .ipk."""
    members = ipk.read_ipk(ipk_path)[1]
    return {(info.name[1:] if info.name.startswith(".") else info.name):
            (members[f"data/{info.name}"], stat.S_IMODE(info.mode))
            for info in ipk.tar_entries(members["./data.tar.gz"]) if info.isfile()}


def own_stanza(sandbox: Sandbox) -> dict[str, str]:
    return next(s for s in parse_stanzas(sandbox.status_path().read_text()) if s["Package"] == "pineapple-jobd")


@pytest.mark.parametrize("binary", OPKGS)
def test_install_pulls_only_release_packages_and_ours(feed: Sandbox, target: str, binary: str) -> None:
    result = opkg(feed, binary, "install", "pineapple-jobd")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Installing pineapple-jobd (0.1.0-1) to root..." in result.stdout
    assert "Configuring pineapple-jobd." in result.stdout
    installed = feed.installed()
    release = release_for(target)
    assert installed["pineapple-jobd"] == "0.1.0-1"
    assert installed["python3-sh"] == "1.14.3-1"
    assert installed["python3-paho-mqtt"] == release.paho  # the release's own, 1.5.1 or 1.6.1
    for dependency in feed_dependencies()["pineapple-jobd"]:
        assert dependency in installed
    expected = {"libc", "python3-light", "python3-logging", "python3-urllib", "python3-email",
                "python3-paho-mqtt", "python3-sh", "pineapple-jobd"}
    if "python3-uuid" in release.depends:
        expected.add("python3-uuid")  # paho's dependency from 22.03 on
    assert set(installed) == expected


@pytest.mark.parametrize("binary", OPKGS)
def test_remove_deletes_every_file_and_an_unmodified_conffile(installed: Sandbox, built: dict[str, Path],
                                                              target: str, binary: str) -> None:
    result = opkg(installed, binary, "remove", "pineapple-jobd")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Removing package pineapple-jobd from root..." in result.stdout
    for path in shipped_files(built["pineapple-jobd"]):
        assert not installed.path(path).exists(), path
    site = installed.path(mkipk.site_packages(target))
    assert not [p for p in site.rglob("*") if p.is_file() and "pineapple" in p.parts]
    assert not list(installed.info_dir().glob("pineapple-jobd.*"))
    remaining = installed.installed()
    assert "pineapple-jobd" not in remaining and "python3-sh" in remaining  # no --autoremove


@pytest.mark.parametrize("binary", OPKGS)
def test_autoremove_takes_everything_back(installed: Sandbox, built: dict[str, Path], binary: str) -> None:
    result = opkg(installed, binary, "remove", "--autoremove", "pineapple-jobd")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(installed.installed()) == {"libc"}
    for path in list(shipped_files(built["pineapple-jobd"])) + list(shipped_files(built["python3-sh"])):
        assert not installed.path(path).exists(), path


@pytest.mark.parametrize("binary", OPKGS)
def test_remove_keeps_a_modified_conffile(installed: Sandbox, binary: str) -> None:
    config = installed.path(CONFIG)
    config.write_text(config.read_text().replace("option workers '2'", "option workers '4'"))
    result = opkg(installed, binary, "remove", "pineapple-jobd")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Not deleting modified conffile" in result.stdout + result.stderr and CONFIG in result.stdout
    assert "option workers '4'" in config.read_text()
    assert not installed.path("/usr/bin/pineapple-jobd").exists()


@pytest.mark.parametrize("binary", OPKGS)
def test_a_device_without_our_feed_cannot_install_it(feed: Sandbox, binary: str) -> None:
    # python3-sh is in no release feed: without this feed's python3-sh opkg refuses.
    (feed.feeds["pineapple"] / "python3-sh_1.14.3-1_all.ipk").unlink()
    ipk.index_feed(feed.feeds["pineapple"])
    assert opkg(feed, binary, "update").returncode == 0
    result = opkg(feed, binary, "install", "pineapple-jobd")
    assert result.returncode != 0
    assert "cannot find dependency python3-sh for pineapple-jobd" in result.stderr
    assert "pineapple-jobd" not in feed.installed()


def test_every_file_lands_where_the_target_expects(installed_template: Sandbox, built: dict[str, Path],
                                                   target: str) -> None:
    for path_of_ipk in built.values():
        files = shipped_files(path_of_ipk)
        for path, (content, mode) in files.items():
            landed = installed_template.path(path)
            assert landed.is_file(), path
            assert landed.read_bytes() == content, path
            assert stat.S_IMODE(landed.stat().st_mode) == mode, path
        name = path_of_ipk.name.split("_")[0]
        listed = installed_template.info_dir().joinpath(f"{name}.list").read_text().split()
        assert sorted(listed) == sorted(files)
    site = installed_template.path(mkipk.site_packages(target))
    assert (site / "pineapple" / "daemon" / "main.py").is_file() and (site / "sh.py").is_file()
    for script in ("pineapple-jobd", "pineapple-jobs"):
        assert installed_template.path(f"/usr/bin/{script}").stat().st_mode & stat.S_IXUSR
    assert installed_template.path("/etc/init.d/pineapple-jobd").stat().st_mode & stat.S_IXUSR


def test_the_config_is_registered_as_a_conffile(installed_template: Sandbox) -> None:
    info = installed_template.info_dir()
    assert (info / "pineapple-jobd.conffiles").read_text() == f"{CONFIG}\n"
    checksum = hashlib.sha256(installed_template.path(CONFIG).read_bytes()).hexdigest()
    conffiles = own_stanza(installed_template)["Conffiles"].split()
    assert conffiles == [CONFIG, checksum]
    assert (info / "pineapple-jobd.postinst").is_file() and (info / "pineapple-jobd.prerm").is_file()


def test_installed_size_is_what_opkg_checks(installed_template: Sandbox, built_ipk: Path, feed: Sandbox) -> None:
    data_tar = gzip.decompress(ipk.read_ipk(built_ipk)[1]["./data.tar.gz"])
    control = ipk.parse_control(installed_template.info_dir().joinpath("pineapple-jobd.control").read_text())
    assert int(control["Installed-Size"]) == len(data_tar)
    # opkg's verify_pkg_installable pre-check refuses it on a too small overlay.
    assert feed.run("install", "python3-sh", "python3-paho-mqtt", "python3-urllib").returncode == 0
    needed_kb = (len(data_tar) + 1023) // 1024
    result = feed.run("install", "pineapple-jobd", env=feed.env(free_kb=needed_kb - 1))
    assert result.returncode == 255
    assert "pineapple-jobd needs" in result.stderr and str(needed_kb) in result.stderr


def test_maintainer_scripts_hand_over_to_openwrts_defaults(feed: Sandbox) -> None:
    # On a device /lib/functions.sh provides default_postinst/default_prerm
    # (enable+start / stop+disable the init script); record their calls.
    calls = feed.root / "calls"
    functions = feed.root / "lib" / "functions.sh"
    functions.parent.mkdir(parents=True)
    functions.write_text(
        'default_postinst() { echo "postinst $(basename "$1") $2" >> "$IPKG_INSTROOT/calls"; }\n'
        'default_prerm() { echo "prerm $(basename "$1") $2" >> "$IPKG_INSTROOT/calls"; }\n')
    env = feed.env(IPKG_INSTROOT=str(feed.root))
    assert feed.run("install", "--force-postinstall", "pineapple-jobd", env=env).returncode == 0
    assert "postinst pineapple-jobd.postinst configure" in calls.read_text().splitlines()
    assert feed.run("remove", "--force-postinstall", "pineapple-jobd", env=env).returncode == 0
    assert calls.read_text().splitlines()[-1] == "prerm pineapple-jobd.prerm remove"
    calls.unlink()
    quiet = feed.env(IPKG_INSTROOT=str(feed.root), IPKG_NO_SCRIPT="1")
    assert feed.run("install", "--force-postinstall", "pineapple-jobd", env=quiet).returncode == 0
    assert not calls.exists()


def test_scripts_do_nothing_without_openwrts_functions(feed: Sandbox) -> None:
    result = feed.run("install", "--force-postinstall", "pineapple-jobd")
    assert result.returncode == 0, result.stderr
    assert feed.installed()["pineapple-jobd"] == "0.1.0-1"
