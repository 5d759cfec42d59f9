"""Run what the packages installed: the entry points from the offline root,
with the target's Python (3.7 for 19.07, 3.11 for 23.05/24.10) and only the
root's site-packages: the installed python3-sh (sh 1.14.3) and the release's
python3-paho-mqtt (1.5.1 / 1.6.1)."""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from pineapple.daemon.config import SECTIONS
from tests.openwrt.helpers import installed_python_env, option_defaults, run_installed, target_interpreter
from tools import mkipk

CONFIG = "/etc/config/pineapple-jobd"


IMPORTED = ("import json, sys, pineapple, sh, paho.mqtt.client as c; print(json.dumps([pineapple.__file__, "
            "sh.__file__, sh.__version__, c.__file__, '%d.%d' % sys.version_info[:2]]))")


def test_the_installed_tree_is_the_one_imported(installed_template: Sandbox, tmp_path: Path, target: str) -> None:
    result = run_installed(installed_template.root, target, ["-c", IMPORTED], tmp_path)
    assert result.returncode == 0, result.stderr
    site = mkipk.site_packages(target)
    assert json.loads(result.stdout) == [str(installed_template.path(f"{site}/pineapple/__init__.py")),
                                         str(installed_template.path(f"{site}/sh.py")), "1.14.3",
                                         str(installed_template.path(f"{site}/paho/mqtt/client.py")), target]


@pytest.mark.parametrize("name", ["pineapple-jobd", "pineapple-jobs"])
def test_entry_points_answer_help(installed_template: Sandbox, tmp_path: Path, name: str, target: str) -> None:
    script = installed_template.path(f"/usr/bin/{name}")
    result = run_installed(installed_template.root, target, [str(script), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name}")


def test_the_shipped_config_gives_the_defaults(installed_template: Sandbox, tmp_path: Path, target: str) -> None:
    root = installed_template.root
    result = run_installed(root, target, [str(installed_template.path("/usr/bin/pineapple-jobd")), "--config",
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


def test_daemon_starts_answers_and_stops_cleanly(installed: Sandbox, tmp_path: Path, target: str) -> None:
    root = installed.root
    # AF_UNIX paths are limited to 108 bytes: keep the socket short.
    sock_dir = Path(tempfile.mkdtemp(prefix="pjo-", dir="/tmp"))
    sock = sock_dir / "s.sock"
    argv = [target_interpreter(target), "-S", str(installed.path("/usr/bin/pineapple-jobd")),
            "--config", str(installed.path(CONFIG)), "--socket", str(sock),
            "--state-dir", str(tmp_path / "state"), "--log-level", "debug",
            # the installed daemon manages the root it was installed into
            "--opkg-binary", str(installed.opkg_path), "--opkg-root", str(root),
            "--opkg-conf", str(installed.conf)]
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(argv, cwd=tmp_path, env=installed_python_env(root, target, installed.env()),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        client = run_installed(root, target, ["-c", CLIENT, str(sock)], tmp_path, timeout=30)
        assert client.returncode == 0, client.stderr + (tmp_path / "daemon.log").read_text()
        answer = json.loads(client.stdout)
        assert answer["client"] == str(installed.path(f"{mkipk.site_packages(target)}/pineapple/api/client.py"))
        assert answer["ping"]["pong"] is True
        assert answer["installed"] == {"pineapple-jobd": "0.1.0-1", "python3-sh": "1.14.3-1", "nmap": None}
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


def test_the_daemon_publishes_over_the_releases_paho(installed: Sandbox, tmp_path: Path, target: str,
                                                     broker) -> None:
    """MQTT with the python3-paho-mqtt a release ships (1.5.1 on 19.07, 1.6.1
    on 23.05), the daemon on that release's Python, against a real mosquitto."""
    from tests.fixtures.mqtt import Recorder

    recorder = Recorder(broker.port, ["pineapple/dev1/#"])
    sock_dir = Path(tempfile.mkdtemp(prefix="pjm-", dir="/tmp"))
    argv = [target_interpreter(target), "-S", str(installed.path("/usr/bin/pineapple-jobd")),
            "--config", str(installed.path(CONFIG)), "--socket", str(sock_dir / "s.sock"),
            "--state-dir", str(tmp_path / "state"), "--opkg-binary", str(installed.opkg_path),
            "--opkg-root", str(installed.root), "--opkg-conf", str(installed.conf),
            "--set", "mqtt.enabled=1", "--set", f"mqtt.port={broker.port}", "--set", "mqtt.device_id=dev1"]
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(argv, cwd=tmp_path, env=installed_python_env(installed.root, target, installed.env()),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        recorder.wait_for(lambda msgs: any(t == "pineapple/dev1/status" and p == b"online" for t, p, _ in msgs))
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        recorder.wait_for(lambda msgs: msgs[-1][:2] == ("pineapple/dev1/status", b"offline"))
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(5)
        log.close()
        recorder.close()
        for leftover in sock_dir.iterdir():
            leftover.unlink()
        sock_dir.rmdir()
    text = (tmp_path / "daemon.log").read_text()
    assert "MQTT: publishing to 127.0.0.1" in text, text
