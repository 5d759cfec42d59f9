"""``send_notification`` to a real Unix socket server standing where the
device's API server listens (``/tmp/notifications.sock``, here a temp path)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading

import pytest

import pineapple.helpers.notification_helpers as notifier
from pineapple.modules import Module

WAIT = 10.0


class NotificationServer:
    """Accepts connections and keeps what each one sent until EOF."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.received: list = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(WAIT)
        self.arrived = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            self.received.append(json.loads(data))
            self.arrived.release()

    def next(self) -> dict:
        assert self.arrived.acquire(timeout=WAIT), "no notification arrived"
        return self.received[-1]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not, on Linux)
        self.sock.close()
        self.thread.join(WAIT)


@pytest.fixture
def notification_socket(monkeypatch):
    directory = tempfile.mkdtemp(prefix="pn-", dir="/tmp")
    path = os.path.join(directory, "notifications.sock")
    monkeypatch.setenv(notifier.SOCKET_ENV, path)
    server = NotificationServer(path)
    yield server
    server.close()
    shutil.rmtree(directory, ignore_errors=True)


def test_levels_are_hak5_s():
    assert (notifier.INFO, notifier.WARN, notifier.ERROR, notifier.OTHER, notifier.SUCCESS) == (0, 1, 2, 3, 4)
    assert notifier.NOTIFICATION_SOCKET == "/tmp/notifications.sock"


def test_send_notification_writes_one_json_object(notification_socket):
    assert notifier.send_notification("Capture finished", "tcpdump", notifier.SUCCESS) is True
    assert notification_socket.next() == {"level": 4, "message": "Capture finished", "module_name": "tcpdump"}
    assert notifier.send_notification("default level", "nmap") is True
    assert notification_socket.next()["level"] == notifier.INFO


def test_module_send_notification_names_the_module(notification_socket, tmp_path):
    module = Module("notifier-demo", socket_dir=str(tmp_path))
    assert module.send_notification(None, notifier.ERROR) is True  # job.error may be None in a callback
    assert notification_socket.next() == {"level": 2, "message": "", "module_name": "notifier-demo"}


def test_no_server_answers_false_and_bad_levels_raise(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(notifier.SOCKET_ENV, str(tmp_path / "absent.sock"))
    assert notifier.send_notification("nobody listens", "demo", notifier.WARN) is False
    assert "not delivered" in caplog.text
    for level in (5, -1, "info", True, None):
        with pytest.raises(ValueError, match="notification level"):
            notifier.send_notification("x", "demo", level)
