"""opkg stand-in: update, list-installed, status, info."""
from __future__ import annotations

import pathlib
import re

from devtools.sandbox import PackageSpec, Sandbox

from .conftest import Runner


def test_update_ok(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("update")
    assert result.stdout == (
        f"Downloading file://{sandbox.feed_dir.resolve()}/Packages.gz\n"
        f"Updated list of available packages in {sandbox.root}//var/opkg-lists/base\n"
    )
    assert (result.stderr, result.returncode) == ("", 0)
    # stored as downloaded: opkg-lede keeps src/gz lists compressed
    assert (sandbox.lists_path / "base").read_bytes() == (sandbox.feed_dir / "Packages.gz").read_bytes()


def test_update_returns_number_of_failed_feeds(tmp_path: pathlib.Path) -> None:
    sb = Sandbox.create(tmp_path / "sb", packages=[PackageSpec("a")],
                        feeds={"extra": [PackageSpec("b")], "third": [PackageSpec("c")]}, update=False)
    sb.break_feed("extra")
    result = sb.run("update")
    broken = f"//{sb.feeds['extra'].resolve()}/Packages.gz"
    assert result.returncode == 1
    assert f"*** Failed to download the package list from file:{broken}\n\n" in result.stdout
    assert result.stdout.count("Updated list of available packages") == 2
    assert result.stderr == (
        "Collected errors:\n"
        f" * copy_file: {broken}: No such file or directory.\n"
        f" * file_copy: Failed to copy file {broken} to {sb.root}//var/opkg-lists/extra.\n"
    )
    sb.break_feed("third")
    assert sb.run("update").returncode == 2


def test_plain_src_feed_and_corrupt_index(tmp_path: pathlib.Path) -> None:
    sb = Sandbox.create(tmp_path / "sb", packages=[PackageSpec("a")], update=False)
    sb.conf.write_text(sb.conf.read_text().replace("src/gz ", "src "))
    result = sb.run("update")
    assert result.stdout.startswith(f"Downloading file://{sb.feed_dir.resolve()}/Packages\n")
    assert sb.run("install", "a").returncode == 0
    sb.conf.write_text(sb.conf.read_text().replace("src ", "src/gz "))
    sb.corrupt_index()
    assert sb.run("update").returncode == 0  # opkg copies the file as is
    result = sb.run("info", "a")
    list_file = f"{sb.root}//var/opkg-lists/base"
    assert result.stderr == (f"Collected errors:\n * pkg_hash_add_from_file: Failed to read {list_file}: "
                             "not a valid gzip stream, ignoring it.\n")
    assert result.returncode == 0
    assert "Status: install user installed" in result.stdout  # still known from the status file


def test_list_installed(opkg: Runner) -> None:
    opkg("install", "myapp", "verlib")
    result = opkg("list-installed")
    assert (result.stdout, result.stderr, result.returncode) == (
        "myapp - 1.2.3-1\nmylib - 1.0-1\nverlib - 2.0-1\n", "", 0)
    assert opkg("list-installed", "my*").stdout == "myapp - 1.2.3-1\nmylib - 1.0-1\n"


def test_status_of_installed_package(opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("status", "myapp")  # only what the status file holds
    assert re.fullmatch(r"Package: myapp\nVersion: 1.2.3-1\nDepends: mylib\nStatus: install user installed\n"
                        r"Architecture: all\nInstalled-Time: \d+\n\n", result.stdout)
    assert result.returncode == 0


def test_info_merges_feed_and_status(opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("info", "myapp")
    assert re.fullmatch(r"Package: myapp\nVersion: 1.2.3-1\nDepends: mylib\nStatus: install user installed\n"
                        r"Section: utils\nArchitecture: all\n"
                        r"Maintainer: pineapple-jobd devtools <devtools@example.invalid>\nSize: \d+\n"
                        r"Filename: myapp_1.2.3-1_all.ipk\nSource: feeds/devtools/myapp\n"
                        r"Description: myapp \(sandbox test package\)\nInstalled-Time: \d+\n\n", result.stdout)


def test_status_and_info_of_unknown_package_print_nothing(opkg: Runner) -> None:
    for command in ("status", "info"):
        result = opkg(command, "nosuchpkg")
        assert (result.stdout, result.stderr, result.returncode) == ("", "", 0)


def test_info_of_available_package(opkg: Runner) -> None:
    result = opkg("info", "mylib")
    assert result.stdout.startswith("Package: mylib\nVersion: 1.0-1\nStatus: unknown ok not-installed\n")
    assert "Filename: mylib_1.0-1_all.ipk\n" in result.stdout


def test_status_without_argument_lists_all_installed(opkg: Runner) -> None:
    opkg("install", "myapp")
    packages = re.findall(r"^Package: (\S+)$", opkg("status").stdout, re.MULTILINE)
    assert sorted(packages) == ["myapp", "mylib"]
