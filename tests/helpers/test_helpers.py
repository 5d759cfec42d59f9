"""``helpers``, ``network_helpers``, ``command_helpers`` and ``uci_helpers``
against real processes, files and sockets."""
from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest

from pineapple.helpers import command_helpers as cmd
from pineapple.helpers import get_version, json_to_bytes
from pineapple.helpers import network_helpers as net
from pineapple.helpers import uci_helpers as uci


def test_json_to_bytes():
    assert json_to_bytes({"payload": [1, "é"]}) == b'{"payload": [1, "\\u00e9"]}'
    assert json_to_bytes([]) == b"[]"
    for bad in ("text", 1, None, (1, 2)):
        with pytest.raises(TypeError):
            json_to_bytes(bad)


def test_get_version(tmp_path):
    version = tmp_path / "version"
    version.write_text("2.1.3\n2023-06-01\nextra\n")
    assert get_version(str(version)) == ("2.1.3", "2023-06-01")
    version.write_text("1.0\n")
    assert get_version(str(version)) == ("1.0", "")
    with pytest.raises(FileNotFoundError, match="not a WiFi Pineapple"):
        get_version(str(tmp_path / "missing"))


@pytest.fixture
def web_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_check_for_internet(web_server):
    assert net.check_for_internet(web_server, timout=5) is True
    assert net.check_for_internet(web_server, timeout=5) is True
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    assert net.check_for_internet(f"http://127.0.0.1:{port}/", timout=2) is False
    assert net.check_for_internet("not a url", timout=2) is False


def test_get_interfaces():
    interfaces = net.get_interfaces()
    assert interfaces == sorted(os.listdir("/sys/class/net")) and "lo" in interfaces
    assert net.get_interfaces("/does/not/exist") == []


def test_grep_output_waits_for_both_processes():
    out = cmd.grep_output(f"{sys.executable} -c print('alpha\\nbeta\\nalphabet')", "alpha")
    assert out == b"alpha\nalphabet\n"
    assert cmd.grep_output("printf ALPHA\\nbeta", "alpha", ["-i"]) == b"ALPHA\n"
    assert cmd.grep_output("printf x", "nothing") == b""
    with pytest.raises(FileNotFoundError):
        cmd.grep_output("no-such-command-here", "x")
    # No zombie left behind: every child of this process has been reaped.
    children = subprocess.run(["ps", "-o", "stat=", "--ppid", str(os.getpid())], stdout=subprocess.PIPE,
                              text=True).stdout.split()
    assert "Z" not in "".join(children)


def test_check_for_process():
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert cmd.check_for_process("sleep") is True
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cmd.check_for_process("no-such-process-name") is False


REAL_UCI = os.environ.get("PINEAPPLE_UCI_BINARY")  # as tests/daemon/test_uci.py: a uci built from openwrt/uci


@pytest.mark.skipif(not REAL_UCI, reason="set PINEAPPLE_UCI_BINARY to a uci program built from openwrt/uci to run this")
def test_uci_get_and_set_with_real_uci(tmp_path, monkeypatch):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "demo").write_text("config demo 'main'\n\toption name 'old'\n")
    wrapper = tmp_path / "uci"
    wrapper.write_text(f"#!/bin/sh\nexec {REAL_UCI} -c {config_dir} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv(uci.UCI_ENV, str(wrapper))
    assert uci.uci_get("demo.main.name") == "old"
    assert uci.uci_set("demo.main.name", "new value") is True
    assert uci.uci_get("demo.main.name") == "new value"
    assert "new value" in (config_dir / "demo").read_text()
    # Hak5's passed "key='value'" as one argument: uci then keeps the quotes in the value.
    assert uci.uci_set("demo.main.name", "it's") is True and uci.uci_get("demo.main.name") == "it's"
    with pytest.raises(subprocess.CalledProcessError):
        uci.uci_get("demo.main.missing")


def test_uci_keys_are_checked(monkeypatch):
    monkeypatch.setenv(uci.UCI_ENV, "/nonexistent/uci")
    for bad in ("", "noconfig", "-c.x.y", "a.b=c"):
        with pytest.raises(ValueError, match="invalid UCI key"):
            uci.uci_set(bad, "v")
    with pytest.raises(FileNotFoundError):
        uci.uci_get("demo.main.name")


def test_check_for_internet_https_is_a_tcp_connection():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert net.check_for_internet(f"https://127.0.0.1:{port}/internet", timout=5) is True
    finally:
        listener.close()
    assert net.check_for_internet(f"https://127.0.0.1:{port}/", timout=2) is False
