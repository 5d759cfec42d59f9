"""Helpers for the end-to-end tests of the real daemon (tests/api, tests/daemon,
tests/cli): a raw line client, polling with a deadline, module-scoped
sandboxes and daemons, and running code as another uid.

Everything waits by polling with a deadline; nothing sleeps to wait for a state.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.sandbox import Sandbox
from tests.conftest import feed_packages
from tests.fixtures.daemon import DaemonProcess

DEADLINE = 15.0  # seconds any single wait may take at most


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, interval: float = 0.01,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Line:
    """A raw connection to the daemon: bytes in, JSON lines out."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self.buf = bytearray()

    def send(self, message: dict | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 1]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the daemon closed the connection")
            self.buf += chunk

    def read(self) -> dict:
        return json.loads(self.read_line())

    def request(self, message: dict | bytes) -> dict:
        self.send(message)
        return self.read()

    def payload(self, message: dict) -> Any:
        answer = self.request(message)
        assert answer.get("ok") is True, answer
        return answer["payload"]

    def closed_by_peer(self, timeout: float = DEADLINE) -> bool:
        """True once the daemon has closed the connection (end-of-file or a
        reset) within ``timeout``; unread answers are skipped."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:  # TimeoutError only from Python 3.10 on
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Line:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ping_ok(path: str | os.PathLike) -> bool:
    """A ping on a new connection is answered."""
    with Line(path, timeout=5) as line:
        return line.request({"action": "ping"}).get("payload", {}).get("pong") is True


def poll(path: str | os.PathLike, job_id: str) -> dict:
    with Line(path) as line:
        return line.payload({"action": "poll_job", "job_id": job_id})


def wait_state(path: str | os.PathLike, job_id: str, states: set[str] | str, timeout: float = DEADLINE) -> dict:
    """Poll the job until its state is one of ``states``; returns the summary."""
    wanted = {states} if isinstance(states, str) else set(states)
    return wait_until(lambda: value_if(poll(path, job_id), lambda s: s["state"] in wanted),
                      timeout, 0.02, f"job {job_id} to be {'/'.join(sorted(wanted))}")


def wait_complete(path: str | os.PathLike, job_id: str, timeout: float = 30.0) -> dict:
    return wait_until(lambda: value_if(poll(path, job_id), lambda s: s["is_complete"]), timeout, 0.02,
                      f"job {job_id} to complete")


def value_if(value: Any, wanted: Callable[[Any], bool]) -> Any:
    """``value`` when ``wanted(value)`` holds, else None: a wait_until predicate
    that hands back what it checked."""
    return value if wanted(value) else None


def submit(path: str | os.PathLike, **fields: Any) -> dict:
    with Line(path) as line:
        return line.payload({"action": "submit", **fields})


# ------------------------------------------------------------------ fixtures
class DaemonFactory:
    """Starts real daemons (on one sandbox) and kills them all at the end."""

    def __init__(self, sandbox: Sandbox, base: pathlib.Path) -> None:
        self.sandbox = sandbox
        self.base = base
        self.started: list[DaemonProcess] = []

    def __call__(self, extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 wait: bool = True) -> DaemonProcess:
        work = self.base / f"daemon{len(self.started)}"
        work.mkdir(parents=True, exist_ok=True)
        daemon = DaemonProcess(self.sandbox, work, extra_args, env)
        self.started.append(daemon)
        return daemon.start(wait=wait)

    def close(self) -> None:
        for daemon in self.started:
            daemon.close()


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """One sandbox (the suite's feed, libc installed) shared by a test module."""
    return Sandbox.create(tmp_path_factory.mktemp("sb"), packages=feed_packages(), installed=["libc"])


@pytest.fixture(scope="module")
def module_daemons(module_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    """Factory of daemons on the module's sandbox, killed when the module ends."""
    factory = DaemonFactory(module_sandbox, tmp_path_factory.mktemp("daemons"))
    yield factory
    factory.close()


# ------------------------------------------------------------- opkg clean-up
def call_log_pids(path: pathlib.Path) -> list[int]:
    """Pids of the stand-in runs recorded in an OPKG_STANDIN_CALL_LOG file."""
    try:
        return [json.loads(line)["pid"] for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def call_log_argvs(path: pathlib.Path) -> list[list[str]]:
    try:
        return [json.loads(line)["argv"] for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def kill_standins(path: pathlib.Path) -> None:
    """Kill the process groups of stand-in runs a killed daemon left behind."""
    for pid in call_log_pids(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


# --------------------------------------------------------------- other uids
def run_as(uid: int, gid: int, fn: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    """Run ``fn`` in a forked child with ``uid``/``gid`` (no supplementary
    groups) and return its JSON-able result; an exception comes back as
    ``{"exception": "ClassName", "message": ...}``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                result = fn()
            except Exception as exc:
                result = {"exception": type(exc).__name__, "message": str(exc)}
            os.write(write_end, json.dumps(result).encode())
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as reader:
        for chunk in iter(lambda: reader.read(65536), b""):
            chunks.append(chunk)
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    return json.loads(b"".join(chunks)) if chunks else None


def exchange(path: str, request: bytes = b'{"action":"ping"}\n', timeout: float = 5.0) -> dict:
    """Connect, send ``request`` and read the answer (for :func:`run_as`).
    Returns ``{"lines": [...], "closed": bool}``; after an error answer the
    connection is read to its end, so ``closed`` says the daemon hung up."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    data = b""
    closed = False
    try:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the request went out: its answer is still there to read
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            data += chunk
            if data.endswith(b"\n") and json.loads(data.splitlines()[0]).get("ok"):
                break  # answered and accepted: the connection stays open
    finally:
        sock.close()
    return {"lines": [json.loads(line) for line in data.splitlines() if line.strip()], "closed": closed}
