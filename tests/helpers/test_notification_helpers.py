"""``send_notification`` to a real Unix socket server standing where the
device's API server listens (``/tmp/notifications.sock``, here a temp path)."""
from __future__ import annotations

import logging

import pytest

import pineapple.helpers.notification_helpers as notifier
from pineapple.modules import Module


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
    # caplog's handler on the helper's own logger: an earlier test in the
    # session may have stopped propagation above it (a module's log set-up).
    notifier.log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=notifier.log.name):
            assert notifier.send_notification("nobody listens", "demo", notifier.WARN) is False
    finally:
        notifier.log.removeHandler(caplog.handler)
    assert "not delivered" in caplog.text
    for level in (5, -1, "info", True, None):
        with pytest.raises(ValueError, match="notification level"):
            notifier.send_notification("x", "demo", level)
