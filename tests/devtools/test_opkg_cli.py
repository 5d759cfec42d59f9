"""opkg stand-in: command line, launcher, configuration, sandbox helpers."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import pytest

from devtools.sandbox import OPKG_PATH, PackageSpec, Sandbox

from .conftest import Runner, errors, read_until

REPO = pathlib.Path(__file__).resolve().parents[2]
USAGE_START = "usage: opkg [options...] sub-command [arguments...]\nwhere sub-command is one of:\n"


def test_unknown_sub_command_prints_usage(sandbox: Sandbox, opkg: Runner) -> None:
    result = opkg("bogus")
    assert result.stderr == f"{OPKG_PATH}: unknown sub-command bogus\n"
    assert result.stdout.startswith(USAGE_START)
    assert result.returncode == 1


def test_missing_sub_command_and_bad_option(sandbox: Sandbox) -> None:
    result = subprocess.run([str(OPKG_PATH)], capture_output=True, text=True, env=sandbox.env(), timeout=30)
    assert (result.stderr, result.returncode) == ("opkg must have one sub-command argument\n", 1)
    result = sandbox.run("--bogus", "list-installed")
    assert result.stderr == "opkg: unrecognized option '--bogus'\nopkg must have one sub-command argument\n"
    assert result.stdout.startswith(USAGE_START) and result.returncode == 1


def test_command_without_required_argument(opkg: Runner) -> None:
    result = opkg("install")
    assert result.stderr == f"{OPKG_PATH}: the ``install'' command requires at least one argument\n"
    assert result.returncode == 1


def test_version(sandbox: Sandbox) -> None:
    result = sandbox.run("-v")
    assert result.stdout.startswith("opkg version ") and result.returncode == 0


def test_options_anywhere_and_single_dash_long_options(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "myapp")
    result = opkg("remove", "myapp", "-autoremove")
    assert "mylib was autoinstalled and is now orphaned, removing.\n" in result.stdout
    assert sandbox.installed() == {}


def test_works_through_a_symlink_from_any_cwd(sandbox: Sandbox, tmp_path: pathlib.Path) -> None:
    link = tmp_path / "bin" / "opkg"
    link.parent.mkdir()
    link.symlink_to(OPKG_PATH)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    result = subprocess.run([str(link), "-o", str(sandbox.root), "-f", str(sandbox.conf), "install", "mylib"],
                            capture_output=True, text=True, env=sandbox.env(), cwd=cwd, timeout=30)
    assert result.returncode == 0, result.stderr
    assert sandbox.installed() == {"mylib": "1.0-1"}


def test_process_name_is_opkg(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    proc = spawn("install", "mylib", hang="download")
    read_until(proc, "Downloading ")
    assert pathlib.Path(f"/proc/{proc.pid}/comm").read_text() == "opkg\n"


def test_refuses_the_host_root(sandbox: Sandbox) -> None:
    result = subprocess.run([str(OPKG_PATH), "-f", str(sandbox.conf), "list-installed"],
                            capture_output=True, text=True, env=sandbox.env(), timeout=30)
    assert result.returncode == 255
    assert "refusing to work on the host's /" in result.stderr


def test_offline_root_from_environment(sandbox: Sandbox, opkg: Runner) -> None:
    opkg("install", "mylib")
    env = sandbox.env(OFFLINE_ROOT=str(sandbox.root))
    result = subprocess.run([str(OPKG_PATH), "-f", str(sandbox.conf), "list-installed"],
                            capture_output=True, text=True, env=env, timeout=30)
    assert (result.stdout, result.returncode) == ("mylib - 1.0-1\n", 0)


def test_conf_d_files_under_the_offline_root_are_read(sandbox: Sandbox, opkg: Runner) -> None:
    conf_d = sandbox.root / "etc" / "opkg"
    conf_d.mkdir(parents=True)
    (conf_d / "usb.conf").write_text("dest usb /mnt/usb\n")
    result = opkg("-d", "usb", "install", "mylib")
    assert result.stdout.startswith("Installing mylib (1.0-1) to usb...\n")
    assert (sandbox.root / "mnt/usb/usr/lib/opkg/status").exists()


def test_invalid_conf_line_is_reported(sandbox: Sandbox, opkg: Runner) -> None:
    sandbox.conf.write_text(sandbox.conf.read_text() + "bogus line\n")
    result = opkg("list-installed")
    assert result.returncode == 0
    assert f"opkg_conf_parse_file: {sandbox.conf}:7: Ignoring invalid line: `bogus line'" in result.stderr


def test_missing_conf_file(sandbox: Sandbox, tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.conf"
    result = subprocess.run([str(OPKG_PATH), "-o", str(sandbox.root), "-f", str(missing), "list-installed"],
                            capture_output=True, text=True, env=sandbox.env(), timeout=30)
    assert result.stderr == errors(f"opkg_conf_load: Couldn't stat {missing}: No such file or directory.")
    assert result.returncode == 255


@pytest.mark.parametrize(("v1", "op", "v2", "rc"), [
    ("1.0-1", "<<", "1.0-2", 1), ("1.10", ">>", "1.9", 1), ("1:0.1", ">>", "9.9", 1),
    ("1.0~rc1", "<<", "1.0", 1), ("2.0", "=", "2.0", 1), ("2.0", "<<", "1.0", 0),
])
def test_compare_versions(opkg: Runner, v1: str, op: str, v2: str, rc: int) -> None:
    assert opkg("compare-versions", v1, op, v2).returncode == rc


def test_not_simulated_sub_command(opkg: Runner) -> None:
    result = opkg("upgrade", "mylib")
    assert result.returncode == 1 and "not simulated" in result.stderr


def test_sandbox_demo_cli(tmp_path: pathlib.Path) -> None:
    result = subprocess.run([sys.executable, "-m", "devtools.sandbox", "demo", str(tmp_path / "demo")],
                            capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["root"] == str(tmp_path / "demo" / "root")
    assert lines["conf"] == str(tmp_path / "demo" / "opkg.conf")
    demo = Sandbox(base=tmp_path / "demo", feeds={"base": tmp_path / "demo/feeds/base"},
                   dests={"root": "/", "sd": "/mnt/sd"})
    assert demo.installed() == {"libc": "1.2.4-4"}
    install = demo.run("install", "nmap", "python3-requests")
    assert install.returncode == 0, install.stderr
    assert {"nmap", "libpcap1", "python3-requests", "python3-urllib3"} <= set(demo.installed())


def test_package_spec_defaults_and_env_knobs(tmp_path: pathlib.Path) -> None:
    spec = PackageSpec("thing")
    assert spec.file_map() == {"/usr/share/thing/README": b"thing 1.0-1\n"}
    assert spec.control()["Architecture"] == "all"
    sb = Sandbox.create(tmp_path / "sb", packages=[spec], update=False)
    env = sb.env(download_delay=2, hang="configure:thing", free_kb=10, OPKG_STANDIN_LOCK_HOLD=1)
    assert env["OPKG_STANDIN_DOWNLOAD_DELAY"] == "2"
    assert env["OPKG_STANDIN_HANG"] == "configure:thing"
    assert env["OPKG_STANDIN_FREE_KB"] == "10"
    assert env["OPKG_STANDIN_LOCK_HOLD"] == "1"
    assert env["TMPDIR"] == str(sb.tmp_dir)
    assert sb.conf.read_text() == (
        f"src/gz base file://{sb.feed_dir.resolve()}\ndest root /\ndest sd /mnt/sd\n"
        "lists_dir ext /var/opkg-lists\narch all 1\narch noarch 1\n")
    assert sb.argv("update") == [str(OPKG_PATH), "-o", str(sb.root), "-f", str(sb.conf), "update"]
    assert not sb.lists_path.exists() or not any(sb.lists_path.iterdir())
    assert os.access(OPKG_PATH, os.X_OK)
