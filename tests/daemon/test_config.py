"""Daemon configuration: files libuci reads are read, and every bad value is
reported with where it came from (file:line, environment variable, command line)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pineapple.daemon.config import ConfigError, load_config


def write(tmp_path, text: str) -> str:
    path = tmp_path / "pineapple-jobd"
    path.write_text(text)
    return str(path)


def error(path: str | None = None, env: dict | None = None, overrides: dict | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path or "/dev/null", env=env or {}, overrides=overrides)
    return str(caught.value)


def test_what_libuci_accepts_is_read(tmp_path):
    path = write(tmp_path, "config daemon 'main'\n"
                           "\toption socket '/tmp/a\\\n"  # single quotes keep the backslash and the newline
                           "b.sock'\n"
                           "\toption state_dir /tmp/state\\\n"  # a trailing backslash joins the lines
                           "/jobd\n"
                           "\toption log_level \"debug\" ; option workers 3 # two commands, a comment\n"
                           "config mqtt 'mqtt'\n\toption password 'multi\nline'\n")
    config = load_config(path, env={})
    assert config.daemon.socket == "/tmp/a\\\nb.sock"
    assert config.daemon.state_dir == "/tmp/state/jobd"
    assert (config.daemon.log_level, config.daemon.workers) == ("debug", 3)
    assert config.mqtt.password == "multi\nline"


@pytest.mark.parametrize(("text", "message"), [
    ("config daemon 'main'\n\toption workers '0'\n", ":2: daemon.workers must be at least 1, got 0"),
    ("config daemon 'main'\n\n\toption retention '-5'\n", ":3: daemon.retention must be at least 0, got -5"),
    ("config mqtt 'mqtt'\n\toption port '70000'\n", ":2: mqtt.port must be at most 65535, got 70000"),
    ("config mqtt 'mqtt'\n\toption keepalive 0\n", ":2: mqtt.keepalive must be at least 1, got 0"),
    ("config opkg 'opkg'\n\toption timeout 'nan'\n", ":2: opkg.timeout: nan is not a number"),
    ("config daemon 'main'\n\toption log_level 'loud'\n", ":2: daemon.log_level: 'loud' is not debug"),
    ("config daemon 'main'\n\tlist allowed_uids '1000'\n\tlist allowed_uids 'bob'\n",
     ":3: daemon.allowed_uids: 'bob' is not a number"),
    ("config daemon 'main'\n\toption workers 'many'\n", ":2: daemon.workers: 'many' is not a valid int"),
    ("config daemon 'main'\n\toption colour 'red'\n", ":2: unknown option daemon.colour"),
    ("config daemon 'main'\n\toption workers '1' 'x'\n", ":2: too many arguments"),
])
def test_errors_name_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text)
    found = error(path)
    assert path + message in found, found


def test_errors_name_the_environment_variable_or_the_command_line():
    assert error(env={"PINEAPPLE_JOBD_WORKERS": "0"}).startswith(
        "environment PINEAPPLE_JOBD_WORKERS: daemon.workers must be at least 1")
    assert error(env={"PINEAPPLE_JOBD_MQTT_PORT": "0"}).startswith("environment PINEAPPLE_JOBD_MQTT_PORT: mqtt.port")
    assert error(overrides={"daemon.max_queued": "0"}).startswith("command line: daemon.max_queued must be at least")


def test_the_environment_overrides_a_bad_file_value(tmp_path):
    path = write(tmp_path, "config daemon 'main'\n\toption workers '0'\n")
    assert load_config(path, env={"PINEAPPLE_JOBD_WORKERS": "2"}).daemon.workers == 2


def test_the_daemon_exits_2_naming_the_line(tmp_path):
    path = write(tmp_path, "config daemon 'main'\n\toption max_connections '0'\n")
    done = subprocess.run([sys.executable, "-m", "pineapple.daemon.main", "--config", path, "--print-config"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"{path}:2: daemon.max_connections must be at least 1, got 0" in done.stderr
