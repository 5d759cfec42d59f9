"""``JobClient``: the client library module backends use to talk to
pineapple-jobd over its Unix socket.

    from pineapple.api.client import JobClient

    client = JobClient()                       # socket path from env/config
    job = client.install(["tcpdump"])           # {"job_id": ..., "duplicate": False, ...}
    print(client.poll(job["job_id"]))           # {"is_complete": ..., "result": ..., "job_error": ..., ...}
    final = client.wait(job["job_id"], timeout=300)

Errors raise :class:`ApiError` carrying the daemon's stable ``code``;
:class:`DaemonUnavailable` (code ``daemon_unreachable``) when nothing
answers on the socket. After a daemon restart the client reconnects by itself.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from .protocol import ApiError, encode

UNREACHABLE = "daemon_unreachable"
DEFAULT_SOCKET = "/var/run/pineapple-jobd.sock"
# Safe to send again after the connection broke mid-request.
_IDEMPOTENT = frozenset(("ping", "poll_job", "get_job", "list_jobs", "installed", "stats", "job_types", "log"))


class DaemonUnavailable(ApiError):
    """Nothing answers on the socket (daemon stopped, wrong path, no access)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNREACHABLE)


def default_socket_path() -> str:
    """``$PINEAPPLE_JOBD_SOCKET``, else daemon.socket from the daemon's UCI
    config file, else the default."""
    path = os.environ.get("PINEAPPLE_JOBD_SOCKET")
    if path:
        return path
    from ..uci import JOBD_CONFIG_PATH, UciError, last_option, load_uci

    try:
        return last_option(load_uci(JOBD_CONFIG_PATH), "daemon", "socket") or DEFAULT_SOCKET
    except (OSError, UciError):  # no or unreadable config: a client still tries the default
        return DEFAULT_SOCKET


class _LineSocket:
    """A connected socket read line by line, with a timeout."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self._buf = bytearray()
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise DaemonUnavailable(f"cannot connect to pineapple-jobd at {path}: {exc.strerror or exc}") from None

    def send(self, message: dict) -> None:
        self.sock.sendall(encode(message))

    def read(self) -> dict:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 1]
                return json.loads(line)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the daemon closed the connection")
            self._buf += chunk

    def pending_answer(self) -> dict | None:
        """After a failed send: the line the daemon left before hanging up
        (a refusal such as ``forbidden`` or ``too_many_connections``), if any."""
        try:
            self.sock.settimeout(1.0)
            return self.read()
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self.sock.close()


def _refusal(answer: dict | None) -> ApiError | None:
    if answer is None or answer.get("ok") is not False:
        return None
    return ApiError(str(answer.get("error")), str(answer.get("code")))


class JobClient:
    """A connection to pineapple-jobd (opened on first use, reopened after a restart)."""

    def __init__(self, path: str | None = None, timeout: float | None = 10.0) -> None:
        self.path = path or default_socket_path()
        self.timeout = timeout
        self._conn: _LineSocket | None = None

    # -------------------------------------------------------------- basics
    def request(self, action: str, **fields: Any) -> Any:
        """Send one request and return its payload (raises :class:`ApiError`)."""
        message = {"action": action, **{k: v for k, v in fields.items() if v is not None}}
        answer = self._exchange(message, retry=True)
        if not answer.get("ok"):
            raise ApiError(str(answer.get("error")), str(answer.get("code")))
        return answer.get("payload")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- actions
    def ping(self) -> dict:
        return self.request("ping")

    def submit(self, job: str, *, wait: bool | float = False, **params: Any) -> dict:
        """Submit a job of a registered type; answers ``job_id`` and ``duplicate``.

        With ``wait`` (True, or at most that many seconds) a full queue is
        waited out instead of answered with ``queue_full``: the daemon
        answers once the job is queued (docs/protocol.md). The answer's wait
        does not count against this client's ``timeout``."""
        if not wait:
            return self.request("submit", job=job, **params)
        extra = None if wait is True or self.timeout is None else float(wait)
        with self._reading_for(extra, unbounded=wait is True):
            return self.request("submit", job=job, wait=wait, **params)

    def install(self, packages: list[str], **options: Any) -> dict:
        return self.submit("install", packages=list(packages), **options)

    def uninstall(self, packages: list[str], **options: Any) -> dict:
        return self.submit("uninstall", packages=list(packages), **options)

    def update(self, **options: Any) -> dict:
        return self.submit("update", **options)

    def poll(self, job_id: str, remove_if_complete: bool = False) -> dict:
        """The Pineapple front end's poll answer plus state, progress and error code."""
        return self.request("poll_job", job_id=job_id, remove_if_complete=remove_if_complete)

    def get(self, job_id: str) -> dict:
        return self.request("get_job", job_id=job_id)

    def list(self, state: str | list[str] | None = None, type: str | None = None,
             package: str | None = None, offset: int = 0, limit: int = 50) -> dict:
        return self.request("list_jobs", state=state, type=type, package=package, offset=offset, limit=limit)

    def cancel(self, job_id: str) -> dict:
        return self.request("cancel", job_id=job_id)

    def remove(self, job_id: str) -> dict:
        return self.request("remove", job_id=job_id)

    def prune(self) -> dict:
        return self.request("prune")

    def installed(self, packages: list[str]) -> dict[str, str | None]:
        return self.request("installed", packages=list(packages))["installed"]

    def stats(self) -> dict:
        return self.request("stats")

    def restart(self, job_id: str) -> dict:
        """Run a finished job again under a new id (``parent_id`` links them)."""
        return self.request("restart", job_id=job_id)

    def log(self, job_id: str, offset: int = 0, limit: int = 100) -> dict:
        """A page of the job's log: ``lines`` from absolute line ``offset``."""
        return self.request("log", job_id=job_id, offset=offset, limit=limit)

    def hold(self, job_id: str) -> dict:
        return self.request("hold", job_id=job_id)

    def release(self, job_id: str) -> dict:
        return self.request("release", job_id=job_id)

    def job_types(self) -> list[dict]:
        return self.request("job_types")["types"]

    # --------------------------------------------------------- streaming
    def follow(self, job_id: str, log: bool = True, timeout: float | None = None) -> Iterator[dict]:
        """Yield the job's events (``state``, ``progress``, ``log``) as they
        happen, ending with the ``end`` event. Uses its own connection;
        ``timeout`` bounds each wait for the next event."""
        conn = _LineSocket(self.path, timeout)
        try:
            try:
                conn.send({"action": "follow", "job_id": job_id, "log": log})
            except OSError:
                refusal = _refusal(conn.pending_answer())
                if refusal is not None:
                    raise refusal from None
                raise
            first = conn.read()
            if not first.get("ok"):
                raise ApiError(str(first.get("error")), str(first.get("code")))
            while True:
                event = conn.read()
                yield event
                if event.get("event") == "end":
                    return
        except (OSError, ValueError) as exc:
            raise DaemonUnavailable(f"lost the connection to pineapple-jobd: {exc}") from None
        finally:
            conn.close()

    def wait(self, job_id: str, timeout: float | None = None,
             on_event: Callable[[dict], None] | None = None, poll_interval: float = 1.0) -> dict:
        """Block until the job is complete and return its poll answer.
        Survives a daemon restart (falls back to polling until it is back)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {job_id} not complete after {timeout}s")
            try:
                for event in self.follow(job_id, timeout=remaining):
                    if on_event is not None:
                        on_event(event)
                    if event.get("event") == "end":
                        return event.get("job") or {"job_id": job_id, "is_complete": True, "removed": True}
            except DaemonUnavailable:
                time.sleep(poll_interval if remaining is None else max(0.0, min(poll_interval, remaining)))

    # ---------------------------------------------------------- internals
    def _exchange(self, message: dict, retry: bool) -> dict:
        fresh = self._conn is None
        conn = self._connect()
        try:
            conn.send(message)
        except OSError:
            # The daemon may have refused this connection and hung up before
            # the request went out: its answer is still there to read.
            refusal = conn.pending_answer() if fresh else None
            self.close()
            if refusal is not None:
                return refusal
            if retry and not fresh:  # a stale connection to a restarted daemon
                return self._exchange(message, retry=False)
            raise DaemonUnavailable(f"cannot send to pineapple-jobd at {self.path}") from None
        try:
            return conn.read()
        except (OSError, ValueError) as exc:
            self.close()
            if retry and message["action"] in _IDEMPOTENT:
                return self._exchange(message, retry=False)
            raise DaemonUnavailable(f"no answer from pineapple-jobd at {self.path}: {exc}") from None

    @contextlib.contextmanager
    def _reading_for(self, extra: float | None, unbounded: bool) -> Iterator[None]:
        """Give the next answer ``extra`` more seconds (or none of a limit)."""
        conn = self._connect()
        conn.sock.settimeout(None if unbounded or self.timeout is None else self.timeout + (extra or 0.0))
        try:
            yield
        finally:
            if self._conn is conn:
                conn.sock.settimeout(self.timeout)

    def _connect(self) -> _LineSocket:
        if self._conn is None:
            self._conn = _LineSocket(self.path, self.timeout)
        return self._conn
