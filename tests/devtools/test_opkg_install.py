"""opkg stand-in: install, row by row of the reference table
(shared/reference/opkg.md), plus dependency resolution and dests."""
from __future__ import annotations

import hashlib
import re

from devtools.sandbox import PackageSpec, Sandbox

from .conftest import FAIL_EXIT, Runner, errors


def url(sb: Sandbox, filename: str) -> str:
    return f"file://{sb.feed_dir.resolve()}/{filename}"


def test_install_ok_prints_opkg_lines_and_records_state(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("install", "myapp")
    assert result.stdout == (
        "Installing myapp (1.2.3-1) to root...\n"
        f"Downloading {url(sandbox, 'myapp_1.2.3-1_all.ipk')}\n"
        "Installing mylib (1.0-1) to root...\n"
        f"Downloading {url(sandbox, 'mylib_1.0-1_all.ipk')}\n"
        "Configuring mylib.\n"
        "Configuring myapp.\n"
    )
    assert (result.stderr, result.returncode) == ("", 0)
    assert sandbox.installed() == {"myapp": "1.2.3-1", "mylib": "1.0-1"}
    assert sandbox.path("/usr/bin/myapp").read_bytes() == b"#!/bin/sh\necho myapp\n"
    assert sandbox.path("/usr/bin/myapp").stat().st_mode & 0o777 == 0o755


def test_status_stanzas_mark_user_and_auto_installed(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    status = {s["Package"]: s for s in sandbox.status()}
    assert status["myapp"]["Status"] == "install user installed"
    assert "Auto-Installed" not in status["myapp"]
    assert status["mylib"]["Status"] == "install ok installed"
    assert status["mylib"]["Auto-Installed"] == "yes"
    assert status["myapp"]["Depends"] == "mylib"
    assert status["myapp"]["Architecture"] == "all"
    assert int(status["myapp"]["Installed-Time"]) > 0
    text = sandbox.status_path().read_text()
    assert re.search(r"Package: myapp\nVersion: 1.2.3-1\nDepends: mylib\nStatus: install user installed\n"
                     r"Architecture: all\nInstalled-Time: \d+\n\n", text)


def test_info_files_are_written(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp", "cfgpkg")
    info = sandbox.info_dir()
    assert sorted(p.name for p in info.iterdir()) == [
        "cfgpkg.conffiles", "cfgpkg.control", "cfgpkg.list",
        "myapp.control", "myapp.list", "mylib.control", "mylib.list",
    ]
    assert (info / "myapp.list").read_text() == "/usr/bin/myapp\n"
    assert (info / "cfgpkg.conffiles").read_text() == "/etc/config/cfgpkg\n"
    assert "Package: myapp\n" in (info / "myapp.control").read_text()
    sha = hashlib.sha256(b"option a 1\n").hexdigest()
    stanza = next(s for s in sandbox.status() if s["Package"] == "cfgpkg")
    assert stanza["Conffiles"] == f"\n /etc/config/cfgpkg {sha}"


def test_already_installed_is_up_to_date(opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("install", "myapp")
    assert (result.stdout, result.stderr, result.returncode) == (
        "Package myapp (1.2.3-1) installed in root is up to date.\n", "", 0)


def test_unknown_package(opkg: Runner) -> None:
    result = opkg("install", "nosuchpkg")
    assert result.stdout == "Unknown package 'nosuchpkg'.\n"
    assert result.stderr == errors("opkg_install_cmd: Cannot install package nosuchpkg.")
    assert result.returncode == 255


def test_missing_dependency(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("install", "broken")
    assert result.stdout == "Unknown package 'broken'.\n"
    assert result.stderr == errors(
        "pkg_hash_check_unresolved: cannot find dependency does-not-exist for broken",
        "pkg_hash_fetch_best_installation_candidate: Packages for broken found, "
        "but incompatible with the architectures configured",
        "opkg_install_cmd: Cannot install package broken.",
    )
    assert result.returncode == 255
    assert sandbox.installed() == {}


def test_file_missing_in_feed(sandbox: Sandbox, opkg: Runner) -> None:
    sandbox.delete_from_feed("mylib")
    result = opkg("install", "mylib")
    source = f"//{sandbox.feed_dir.resolve()}/mylib_1.0-1_all.ipk"
    assert result.stdout == f"Installing mylib (1.0-1) to root...\nDownloading file:{source}\n"
    assert re.fullmatch(
        re.escape(f"Collected errors:\n * copy_file: {source}: No such file or directory.\n"
                  f" * file_copy: Failed to copy file {source} to {sandbox.tmp_dir}/opkg-")
        + r"\w{6}" + re.escape(
            "/mylib_1.0-1_all.ipk.\n"
            " * opkg_install_pkg: Failed to download mylib. Perhaps you need to run 'opkg update'?\n"
            " * opkg_install_cmd: Cannot install package mylib.\n"),
        result.stderr)
    assert result.returncode == 255


def test_checksum_mismatch(sandbox: Sandbox, opkg: Runner) -> None:
    sandbox.tamper("mylib")
    result = opkg("install", "myapp")
    assert result.stdout == (
        "Installing myapp (1.2.3-1) to root...\n"
        f"Downloading {url(sandbox, 'myapp_1.2.3-1_all.ipk')}\n"
        "Installing mylib (1.0-1) to root...\n"
        f"Downloading {url(sandbox, 'mylib_1.0-1_all.ipk')}\n"
    )
    assert result.stderr == errors(
        "opkg_install_pkg: Checksum or size mismatch for package mylib. Either the opkg or the "
        "package index are corrupt. Try 'opkg update'.",
        "opkg_install_cmd: Cannot install package myapp.",
    )
    assert result.returncode == 255
    assert sandbox.installed() == {}
    assert not sandbox.path("/usr/bin/myapp").exists()


def test_not_enough_space(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("install", "myapp", free_kb=0)
    assert result.stdout == "Installing myapp (1.2.3-1) to root...\n"
    assert result.stderr == errors(
        f"verify_pkg_installable: Only have 0kb available on filesystem {sandbox.root}/, pkg myapp needs 1",
        "opkg_install_cmd: Cannot install package myapp.",
    )
    assert result.returncode == 255


def test_installed_size_is_held_in_32_bits_as_opkg_lede_does(sandbox: Sandbox, opkg: Runner) -> None:
    # Measured on opkg-lede 38eccbb: a multiple of 4 GiB wraps to 0, which
    # skips the check (a 4 TiB package installs) ...
    result = opkg("install", "bigpkg")
    assert result.returncode == 0 and result.stderr == ""
    # ... and a low word with its top bit set prints a sign-extended need.
    sandbox.add_package(PackageSpec("hugepkg", installed_size=3 * 2**30))
    opkg("update")
    result = opkg("install", "hugepkg")
    assert result.stdout == "Installing hugepkg (1.0-1) to root...\n"
    assert re.fullmatch(
        re.escape(" * verify_pkg_installable: Only have ") + r"\d+"
        + re.escape(f"kb available on filesystem {sandbox.root}/, pkg hugepkg needs 18014398508433408\n"),
        result.stderr.splitlines(keepends=True)[1])
    assert result.returncode == 255


def test_force_space_skips_the_check(sandbox: Sandbox, opkg: Runner) -> None:
    assert opkg("install", "--force-space", "mylib", free_kb=0).returncode == 0


def test_postinst_failure_leaves_package_unpacked_but_listed(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("install", "failpkg")
    assert result.stdout == (
        "Installing failpkg (1.0-1) to root...\n"
        f"Downloading {url(sandbox, 'failpkg_1.0-1_all.ipk')}\n"
        "Configuring failpkg.\n"
    )
    assert result.stderr == errors(
        f'pkg_run_script: package "failpkg" postinst script returned status {FAIL_EXIT}.',
        f"opkg_configure: failpkg.postinst returned {FAIL_EXIT}.",
    )
    assert result.returncode == 255
    assert next(s for s in sandbox.status() if s["Package"] == "failpkg")["Status"] == "install user unpacked"
    assert opkg("list-installed").stdout == "failpkg - 1.0-1\n"
    again = opkg("install", "failpkg")  # "up to date", and opkg retries configuring it
    assert again.stdout == "Package failpkg (1.0-1) installed in root is up to date.\nConfiguring failpkg.\n"
    assert again.returncode == 255


def test_one_good_one_unknown(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("install", "mylib", "nosuchpkg")
    assert result.stdout == (
        "Installing mylib (1.0-1) to root...\n"
        f"Downloading {url(sandbox, 'mylib_1.0-1_all.ipk')}\n"
        "Unknown package 'nosuchpkg'.\n"
        "Configuring mylib.\n"
    )
    assert result.stderr == errors("opkg_install_cmd: Cannot install package nosuchpkg.")
    assert result.returncode == 255
    assert sandbox.installed() == {"mylib": "1.0-1"}


def test_modified_conffile_on_reinstall(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "cfgpkg")
    conffile = sandbox.path("/etc/config/cfgpkg")
    conffile.write_text("option a 2\n")
    result = opkg("install", "--force-reinstall", "cfgpkg")
    assert result.stdout == (
        "Removing package cfgpkg from root...\n"
        f"Not deleting modified conffile {conffile}.\n"
        "Installing cfgpkg (1.0-1) to root...\n"
        f"Downloading {url(sandbox, 'cfgpkg_1.0-1_all.ipk')}\n"
        "Configuring cfgpkg.\n"
    )
    assert result.stderr == errors(
        f"resolve_conffiles: Existing conffile {conffile} is different from the conffile in the new "
        f"package. The new conffile will be placed at {conffile}-opkg.")
    assert result.returncode == 0
    assert conffile.read_text() == "option a 2\n"
    assert sandbox.path("/etc/config/cfgpkg-opkg").read_text() == "option a 1\n"
    assert sandbox.installed() == {"cfgpkg": "1.0-1"}


def test_force_reinstall_of_unchanged_package(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "mylib")
    result = opkg("install", "--force-reinstall", "mylib")
    assert result.stdout.splitlines()[0] == "Removing package mylib from root..."
    assert result.stdout.splitlines()[-1] == "Configuring mylib."
    assert (result.stderr, result.returncode) == ("", 0)


def test_dependency_on_any_dest_satisfies(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "mylib")
    result = opkg("-d", "sd", "install", "myapp")
    assert result.stdout == (
        "Installing myapp (1.2.3-1) to sd...\n"
        f"Downloading {url(sandbox, 'myapp_1.2.3-1_all.ipk')}\n"
        "Configuring myapp.\n"
    )
    assert sandbox.installed("sd") == {"myapp": "1.2.3-1"}
    assert sandbox.installed("root") == {"mylib": "1.0-1"}
    assert sandbox.path("/usr/bin/myapp", dest="sd").exists()
    assert (sandbox.info_dir("sd") / "myapp.list").read_text() == "/mnt/sd/usr/bin/myapp\n"


def test_dependencies_follow_the_package_to_its_dest(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("--dest", "sd", "install", "myapp")
    assert "Installing mylib (1.0-1) to sd...\n" in result.stdout
    assert sandbox.installed("sd") == {"myapp": "1.2.3-1", "mylib": "1.0-1"}
    assert sandbox.installed("root") == {}


def test_unknown_dest(opkg: Runner) -> None:
    result = opkg("-d", "usb", "install", "mylib")
    assert (result.stdout, result.returncode) == ("", 255)
    assert result.stderr == errors("resolve_pkg_dest_list: Unknown dest name: `usb'.")


def test_version_constraints(sandbox: Sandbox, opkg: Runner) -> None:
    assert opkg("install", "needs-new-verlib").returncode == 0
    assert sandbox.installed()["verlib"] == "2.0-1"
    result = opkg("install", "needs-future-verlib")
    assert result.stdout == "Unknown package 'needs-future-verlib'.\n"
    assert " * pkg_hash_check_unresolved: cannot find dependency verlib (>= 3.0) for needs-future-verlib\n" \
        in result.stderr


def test_alternatives_take_the_first_available(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("install", "alt-user")
    assert result.returncode == 0
    assert sandbox.installed() == {"alt-user": "1.0-1", "mylib": "1.0-1"}


def test_noaction_changes_nothing(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("--noaction", "install", "myapp")
    assert result.stdout == (
        "Installing myapp (1.2.3-1) to root...\n"
        f"Downloading {url(sandbox, 'myapp_1.2.3-1_all.ipk')}\n"
        "Installing mylib (1.0-1) to root...\n"
        f"Downloading {url(sandbox, 'mylib_1.0-1_all.ipk')}\n"
    )
    assert result.returncode == 0
    assert sandbox.installed() == {}
    assert not sandbox.path("/usr/bin/myapp").exists()
    assert list(sandbox.info_dir().iterdir()) == []


def test_scripts_are_skipped_offline_unless_forced(sandbox: Sandbox, opkg: Runner) -> None:
    marker = sandbox.base / "postinst.ran"
    script = f'#!/bin/sh\necho "$1 root=$PKG_ROOT upgrade=$PKG_UPGRADE cwd=$(pwd)" > {marker}\n'
    sandbox.add_package(PackageSpec("scripted", scripts={"postinst": script}))
    opkg("update")
    verbose = opkg("-V2", "install", "scripted")
    assert "pkg_run_script: Offline root mode: not running scripted.postinst.\n" in verbose.stdout
    assert not marker.exists()
    assert (sandbox.info_dir() / "scripted.postinst").stat().st_mode & 0o755 == 0o755
    opkg("remove", "scripted")
    forced = opkg("--force-postinstall", "install", "scripted")
    assert forced.returncode == 0
    assert marker.read_text() == f"configure root={sandbox.root}/ upgrade=0 cwd={sandbox.root}\n"


def test_forced_postinst_exit_fails_even_with_force_postinstall(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("--force-postinstall", "install", "failpkg")
    assert result.returncode == 255
    assert f"failpkg.postinst returned {FAIL_EXIT}." in result.stderr


def test_upgrade_to_a_newer_feed_version(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "mylib")
    sandbox.add_package(PackageSpec("mylib", "1.1-1"))
    opkg("update")
    result = opkg("install", "mylib")
    assert result.stdout == (
        "Upgrading mylib on root from 1.0-1 to 1.1-1...\n"
        f"Downloading {url(sandbox, 'mylib_1.1-1_all.ipk')}\n"
        "Configuring mylib.\n"
    )
    assert sandbox.installed() == {"mylib": "1.1-1"}
    assert sandbox.path("/usr/share/mylib/README").read_text() == "mylib 1.1-1\n"


def test_file_clash_with_another_package(sandbox: Sandbox, opkg: Runner) -> None:
    sandbox.add_package(PackageSpec("clasher", files={"/usr/bin/myapp": b"other\n"}))
    opkg("update")
    opkg("install", "myapp")
    result = opkg("install", "clasher")
    assert result.stderr == (
        "Collected errors:\n"
        f" * check_data_file_clashes: Package clasher wants to install file {sandbox.root}/usr/bin/myapp\n"
        "\tBut that file is already provided by package  * myapp\n"
        " * opkg_install_cmd: Cannot install package clasher.\n"
    )
    assert result.returncode == 255
