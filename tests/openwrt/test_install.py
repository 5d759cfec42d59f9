"""Install and remove the built .ipk with the opkg stand-in (opkg-lede
behaviour) in an offline root, from a feed whose dependencies are stub
packages declaring the real packages' dependencies."""
from __future__ import annotations

import gzip
import hashlib
import stat
from pathlib import Path

from devtools import ipk
from devtools.opkgsim.control import parse_stanzas
from devtools.sandbox import Sandbox
from tests.openwrt.helpers import SITE, feed_dependencies, make_sandbox

CONFIG = "/etc/config/pineapple-jobd"


def shipped_files(ipk_path: Path) -> dict[str, tuple[bytes, int]]:
    """Target path -> (content, mode) of every regular file in the .ipk."""
    members = ipk.read_ipk(ipk_path)[1]
    return {(info.name[1:] if info.name.startswith(".") else info.name):
            (members[f"data/{info.name}"], stat.S_IMODE(info.mode))
            for info in ipk.tar_entries(members["./data.tar.gz"]) if info.isfile()}


def own_stanza(sandbox: Sandbox) -> dict[str, str]:
    return next(s for s in parse_stanzas(sandbox.status_path().read_text()) if s["Package"] == "pineapple-jobd")


def test_install_pulls_the_dependencies(feed: Sandbox) -> None:
    result = feed.run("install", "pineapple-jobd")
    assert result.returncode == 0, result.stderr
    assert "Installing pineapple-jobd (0.1.0-1) to root..." in result.stdout
    assert result.stdout.rstrip().endswith("Configuring pineapple-jobd.")
    installed = feed.installed()
    assert installed["pineapple-jobd"] == "0.1.0-1"
    for dependency in feed_dependencies()["pineapple-jobd"]:
        assert dependency in installed
    assert installed["python3-paho-mqtt"] == "2.2.0-1"
    assert {"python3-asyncio", "python3-email", "python3-uuid"} <= set(installed)  # via sh / paho / urllib


def test_every_file_lands_where_the_target_expects(installed_template: Sandbox, built_ipk: Path) -> None:
    files = shipped_files(built_ipk)
    for target, (content, mode) in files.items():
        path = installed_template.path(target)
        assert path.is_file(), target
        assert path.read_bytes() == content, target
        assert stat.S_IMODE(path.stat().st_mode) == mode, target
    site = installed_template.path(SITE)
    assert (site / "pineapple" / "daemon" / "main.py").is_file()
    for script in ("pineapple-jobd", "pineapple-jobs"):
        assert installed_template.path(f"/usr/bin/{script}").stat().st_mode & stat.S_IXUSR
    assert installed_template.path("/etc/init.d/pineapple-jobd").stat().st_mode & stat.S_IXUSR
    listed = installed_template.info_dir().joinpath("pineapple-jobd.list").read_text().split()
    assert sorted(listed) == sorted(files)


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
    needed_kb = (len(data_tar) + 1023) // 1024
    result = feed.run("install", "pineapple-jobd", env=feed.env(free_kb=needed_kb - 1))
    assert result.returncode == 255
    assert "pineapple-jobd needs" in result.stderr and str(needed_kb) in result.stderr


def test_remove_deletes_every_file_and_an_unmodified_conffile(installed: Sandbox, built_ipk: Path) -> None:
    result = installed.run("remove", "pineapple-jobd")
    assert result.returncode == 0, result.stderr
    assert "Removing package pineapple-jobd from root..." in result.stdout
    for target in shipped_files(built_ipk):
        assert not installed.path(target).exists(), target
    # opkg removes the files it listed; emptied directories may stay.
    assert not [p for p in installed.path(SITE).rglob("*") if p.is_file() and "pineapple" in p.parts]
    assert not list(installed.info_dir().glob("pineapple-jobd.*"))
    remaining = installed.installed()
    assert "pineapple-jobd" not in remaining
    assert "python3-sh" in remaining  # dependencies stay without --autoremove


def test_remove_keeps_a_modified_conffile(installed: Sandbox) -> None:
    config = installed.path(CONFIG)
    config.write_text(config.read_text().replace("option workers '2'", "option workers '4'"))
    result = installed.run("remove", "pineapple-jobd")
    assert result.returncode == 0, result.stderr
    assert "Not deleting modified conffile" in result.stdout and CONFIG in result.stdout
    assert "option workers '4'" in config.read_text()
    assert not installed.path("/usr/bin/pineapple-jobd").exists()


def test_paho_mqtt_1x_is_refused(tmp_path: Path, built_ipk: Path) -> None:
    # OpenWrt 23.05/24.10's python3-paho-mqtt 1.6.1 lacks the 2.x API the
    # MQTT code uses: EXTRA_DEPENDS makes opkg refuse instead.
    sandbox = make_sandbox(tmp_path / "sb", built_ipk, paho_version="1.6.1-2")
    result = sandbox.run("install", "pineapple-jobd")
    assert result.returncode == 255
    assert "cannot find dependency python3-paho-mqtt (>= 2.0) for pineapple-jobd" in result.stderr
    assert "pineapple-jobd" not in sandbox.installed()


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
    assert calls.read_text() == "postinst pineapple-jobd.postinst configure\n"
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
