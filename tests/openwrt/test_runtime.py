"""Run what the package installed: the entry points from the offline root,
with the host Python and only the root's site-packages (plus the host's sh
and paho-mqtt standing in for python3-sh / python3-paho-mqtt)."""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from pineapple.daemon.config import SECTIONS
from tests.openwrt.helpers import SITE, installed_python_env, option_defaults, run_installed

CONFIG = "/etc/config/pineapple-jobd"


def test_the_installed_tree_is_the_one_imported(installed_template: Sandbox, tmp_path: Path) -> None:
    result = run_installed(installed_template.root, ["-c", "import pineapple; print(pineapple.__file__)"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(installed_template.path(f"{SITE}/pineapple/__init__.py"))


@pytest.mark.parametrize("name", ["pineapple-jobd", "pineapple-jobs"])
def test_entry_points_answer_help(installed_template: Sandbox, tmp_path: Path, name: str) -> None:
    script = installed_template.path(f"/usr/bin/{name}")
    result = run_installed(installed_template.root, [str(script), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name}")


def test_the_shipped_config_gives_the_defaults(installed_template: Sandbox, tmp_path: Path) -> None:
    root = installed_template.root
    result = run_installed(root, [str(installed_template.path("/usr/bin/pineapple-jobd")), "--config",
                                  str(installed_template.path(CONFIG)), "--print-config"], tmp_path)
    assert result.returncode == 0, result.stderr
    expected = [f"{section}.{option}={value}" for section in ("daemon", "opkg", "mqtt")
                for option, value in option_defaults(SECTIONS[section][1]).items()]
    assert result.stdout.splitlines() == expected


CLIENT = textwrap.dedent("""
    import json, sys, time
    import pineapple.api.client as api

    deadline = time.monotonic() + 15
    while True:
        try:
            with api.JobClient(sys.argv[1], timeout=5) as client:
                print(json.dumps({"client": api.__file__, "ping": client.ping(),
                                  "installed": client.installed(["pineapple-jobd", "python3-sh", "nmap"])}))
            break
        except api.DaemonUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
""")


def test_daemon_starts_answers_and_stops_cleanly(installed: Sandbox, tmp_path: Path) -> None:
    root = installed.root
    # AF_UNIX paths are limited to 108 bytes: keep the socket short.
    sock_dir = Path(tempfile.mkdtemp(prefix="pjo-", dir="/tmp"))
    sock = sock_dir / "s.sock"
    argv = [sys.executable, "-S", str(installed.path("/usr/bin/pineapple-jobd")),
            "--config", str(installed.path(CONFIG)), "--socket", str(sock),
            "--state-dir", str(tmp_path / "state"), "--log-level", "debug",
            # the installed daemon manages the root it was installed into
            "--opkg-binary", str(installed.opkg_path), "--opkg-root", str(root),
            "--opkg-conf", str(installed.conf)]
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(argv, cwd=tmp_path, env=installed_python_env(root, installed.env()),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        client = run_installed(root, ["-c", CLIENT, str(sock)], tmp_path, timeout=30)
        assert client.returncode == 0, client.stderr + (tmp_path / "daemon.log").read_text()
        answer = json.loads(client.stdout)
        assert answer["client"] == str(installed.path(f"{SITE}/pineapple/api/client.py"))
        assert answer["ping"]["pong"] is True
        assert answer["installed"] == {"pineapple-jobd": "0.1.0-1", "python3-sh": "2.4.0-1", "nmap": None}
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert not sock.exists()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(5)
        log.close()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        sock_dir.rmdir()
    assert "ready: pineapple-jobd" in (tmp_path / "daemon.log").read_text()
