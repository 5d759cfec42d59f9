"""Who may use the socket: file mode 0660 and the SO_PEERCRED check.

A client running as another uid is a forked child that drops to ``nobody``
(needs root; skipped otherwise). To reach the peer check at all, the test
opens the socket's directory and file to everyone, as a misconfigured system
might: the daemon must still refuse.
"""
from __future__ import annotations

import os
import pwd
import stat

import pytest

from tests.api.helpers import exchange, ping_ok, run_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:  # pragma: no cover - every Linux has it
    NOBODY = None


def open_to_everyone(daemon, socket_mode: int | None = 0o666) -> None:
    os.chmod(daemon.sock_dir, 0o711)  # mkdtemp made it 0700
    if socket_mode is not None:
        os.chmod(daemon.socket, socket_mode)


def as_nobody(daemon, request: bytes = b'{"action":"ping","id":1}\n') -> dict:
    path = str(daemon.socket)
    return run_as(NOBODY.pw_uid, NOBODY.pw_gid, lambda: exchange(path, request))


@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons()


def test_the_socket_file_is_mode_0660(jobd):
    info = os.stat(jobd.socket)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_uid == os.getuid()
    # No staging directory is left beside it.
    assert sorted(p.name for p in jobd.sock_dir.iterdir()) == ["jobd.sock", "jobd.sock.lock"]


def test_another_uid_cannot_even_open_the_0660_socket(jobd):
    open_to_everyone(jobd, socket_mode=None)
    result = as_nobody(jobd)
    assert result["exception"] == "PermissionError", result
    assert ping_ok(jobd.socket)


def test_another_uid_is_refused_with_forbidden_and_disconnected(jobd):
    open_to_everyone(jobd)
    result = as_nobody(jobd)
    assert "exception" not in result, result
    [answer] = result["lines"]
    assert answer["ok"] is False and answer["code"] == "forbidden"
    assert str(NOBODY.pw_uid) in answer["error"]
    assert result["closed"] is True
    assert ping_ok(jobd.socket)  # the daemon carries on
    assert "refusing connection from uid 65534" in jobd.log() or f"uid {NOBODY.pw_uid}" in jobd.log()


def test_a_refused_client_that_sends_nothing_is_told_too(jobd):
    open_to_everyone(jobd)
    result = as_nobody(jobd, request=b"")
    assert [a["code"] for a in result["lines"]] == ["forbidden"] and result["closed"] is True


def test_allowed_uids_lets_it_in(module_daemons):
    daemon = module_daemons(["--set", f"daemon.allowed_uids={NOBODY.pw_uid}"])
    open_to_everyone(daemon)
    result = as_nobody(daemon, b'{"action":"ping","id":1}\n')
    assert "exception" not in result, result
    assert result["lines"] == [{"ok": True, "payload": {"pong": True, "version": "0.1.0"}, "id": 1}]
    assert result["closed"] is False


def test_the_socket_group_lets_its_members_in(module_daemons):
    daemon = module_daemons(["--set", f"daemon.socket_group={NOBODY.pw_gid}"])
    open_to_everyone(daemon, socket_mode=None)  # the file stays 0660: group access only
    info = os.stat(daemon.socket)
    assert info.st_gid == NOBODY.pw_gid and stat.S_IMODE(info.st_mode) == 0o660
    result = as_nobody(daemon)
    assert "exception" not in result, result
    assert result["lines"][0]["payload"]["pong"] is True


def test_with_socket_group_empty_the_daemons_own_group_is_let_in(jobd):
    # The default: the socket keeps the daemon's group, and the docs promise
    # that the socket group is always allowed; nobody with that group (only).
    open_to_everyone(jobd, socket_mode=None)
    assert os.stat(jobd.socket).st_gid == os.getgid()
    path = str(jobd.socket)
    result = run_as(NOBODY.pw_uid, os.getgid(), lambda: exchange(path, b'{"action":"ping","id":1}\n'))
    assert "exception" not in result, result
    assert result["lines"] == [{"ok": True, "payload": {"pong": True, "version": "0.1.0"}, "id": 1}]
    assert result["closed"] is False
