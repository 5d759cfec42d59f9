"""The daemon's command line: the quick parser reads exactly what argparse
would, anything unusual goes to argparse; configuration from every source."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pineapple.daemon.config import DaemonSettings, MqttSettings, OpkgSettings, load_config
from pineapple.daemon.main import _quick_parse, build_parser, parse_args

SAME = [
    [],
    ["--socket", "/x.sock"],
    ["--socket=/x.sock", "--set", "daemon.idle_timeout=1", "--set=mqtt.host=a=b", "--print-config"],
    ["--config", "/dev/null", "--socket", "/a", "--state-dir", "/s", "--opkg-binary", "b", "--opkg-root", "r",
     "--opkg-conf", "c", "--log-level", "debug", "--workers", "3", "--socket", "/b"],
    ["--socket="],
]
TO_ARGPARSE = [["--workers", "-1"], ["--sock", "x"], ["--help"], ["x"], ["--socket"], ["--print-config=1"],
               ["--version"], ["--", "--socket", "x"]]


@pytest.mark.parametrize("argv", SAME)
def test_the_quick_parser_reads_what_argparse_reads(argv):
    assert vars(_quick_parse(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", TO_ARGPARSE)
def test_anything_unusual_goes_to_argparse(argv):
    assert _quick_parse(argv) is None


def test_abbreviations_still_work_through_argparse():
    assert parse_args(["--sock", "/y.sock"]).socket == "/y.sock"


def run_daemon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pineapple.daemon.main", *args], capture_output=True, text=True,
                          timeout=30)


def test_print_config_and_errors():
    shown = run_daemon("--config", "/dev/null", "--workers", "5", "--set", "mqtt.password=secret", "--print-config")
    assert shown.returncode == 0
    assert "daemon.workers=5" in shown.stdout and "mqtt.password=***" in shown.stdout
    bad = run_daemon("--config", "/dev/null", "--set", "daemon.workers=many")
    assert bad.returncode == 2 and "daemon.workers" in bad.stderr and "command line" in bad.stderr
    unknown = run_daemon("--config", "/dev/null", "--set", "daemon.colour=red")
    assert unknown.returncode == 2 and "unknown option daemon.colour" in unknown.stderr
    assert run_daemon("--no-such-flag").returncode == 2
    assert run_daemon("--version").stdout.startswith("pineapple-jobd ")


def test_config_sources_in_order(tmp_path):
    uci = tmp_path / "pineapple-jobd"
    uci.write_text("config daemon 'main'\n\toption workers '3'\n"
                   "\tlist allowed_uids '1000'\n\tlist allowed_uids '1001'\n"
                   "config opkg 'opkg'\n\toption dest 'sd'\n"
                   "config schedule 'nightly'\n\toption job 'update'\n")
    config = load_config(str(uci), env={"PINEAPPLE_JOBD_WORKERS": "4", "PINEAPPLE_JOBD_MQTT_ENABLED": "yes"},
                         overrides={"daemon.idle_timeout": "7"})
    assert config.daemon.workers == 4  # the environment beats the file
    assert config.daemon.allowed_uids == ["1000", "1001"] and config.opkg.dest == "sd"
    assert config.mqtt.enabled is True and config.daemon.idle_timeout == 7.0
    assert [s.type for s in config.extra_sections] == ["schedule"] and config.source == str(uci)
    defaults = load_config("/dev/null", env={})
    assert defaults.daemon == DaemonSettings() and defaults.opkg == OpkgSettings() and defaults.mqtt == MqttSettings()
    assert DaemonSettings().to_dict()["socket"] == "/var/run/pineapple-jobd.sock"
    assert DaemonSettings().allowed_uids is not DaemonSettings().allowed_uids  # no shared list defaults
