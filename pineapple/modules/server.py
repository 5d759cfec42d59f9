"""The module socket: accept, frame, dispatch, answer on the same connection.

Framing: a client sends ONE request per connection, a JSON object, and ends
it with a newline or by half-closing its side (``shutdown(SHUT_WR)``);
whichever comes first ends the request. The answer, one JSON object and a
newline, goes back on the same connection, which is then closed. Hak5's
library instead read a single ``recv()`` (truncating large requests) and
answered on a *second* accepted connection; clients that expect that
second connection are not supported.

One thread (the caller of :meth:`ModuleSocket.serve`) accepts and reads
every connection with ``selectors``, so a slow or silent client never
blocks another; complete requests go to a :class:`~.pool.WorkerPool`, so a
slow handler never blocks reading.
"""
from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import stat
import threading
import time
from typing import Callable

from .pool import WorkerPool

READ_CHUNK = 65536
SEND_TIMEOUT = 10.0  # a client that does not read its answer for this long is dropped
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

Answerer = Callable[[bytes], bytes]


class ModuleError(RuntimeError):
    """A module cannot start (bad name, socket path too long, already running, ...)."""


class _Incoming:
    """A connection whose request is still being read."""

    __slots__ = ("sock", "buf", "deadline")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.deadline = deadline


def bind_unix_socket(path: str, logger: logging.Logger) -> tuple[socket.socket, int]:
    """Listen on ``path``, replacing a stale socket file; returns the socket
    and its inode (so shutdown only unlinks a socket file that is still ours)."""
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise ModuleError(f"socket path {path!r} is longer than {UNIX_PATH_MAX} bytes (the AF_UNIX limit); "
                          "use a shorter socket_dir")
    _remove_stale(path, logger)
    # Bind and listen under a temporary name, then rename into place: the
    # socket path never exists without a listener behind it (a client that
    # sees the file can connect).
    temp = os.path.join(os.path.dirname(path), f".{os.getpid()}-{threading.get_ident() % 100000}.sock")
    if len(os.fsencode(temp)) > UNIX_PATH_MAX:
        temp = path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _unlink_quietly(temp)
        sock.bind(temp)
        sock.listen(64)
        sock.setblocking(False)
        if temp != path:
            os.rename(temp, path)
        return sock, os.stat(path).st_ino
    except OSError as exc:
        sock.close()
        if temp != path:
            _unlink_quietly(temp)
        raise ModuleError(f"cannot listen on {path}: {exc.strerror or exc}") from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_stale(path: str, logger: logging.Logger) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ModuleError(f"{path} exists and is not a socket; not touching it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        logger.info("removing stale socket %s", path)
        os.unlink(path)
        return
    except OSError as exc:
        raise ModuleError(f"cannot check existing socket {path}: {exc.strerror or exc}") from None
    finally:
        probe.close()
    raise ModuleError(f"another process already serves {path} (is the module running twice?)")


def error_line(message: str) -> bytes:
    """An ``{"error": message}`` answer line (for framing-level errors)."""
    import json

    return (json.dumps({"error": message}) + "\n").encode("utf-8")


class ModuleSocket:
    """Serve one listening socket until :meth:`stop` is called."""

    def __init__(self, listener: socket.socket, answer: Answerer, pool: WorkerPool, logger: logging.Logger,
                 max_request: int, read_timeout: float, max_connections: int = 64) -> None:
        self.listener = listener
        self.answer = answer
        self.pool = pool
        self.log = logger
        self.max_request = max_request
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._incoming: dict[socket.socket, _Incoming] = {}
        self._stopping = False

    def stop(self) -> None:
        """Make :meth:`serve` return soon; safe from a signal handler or any thread."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:  # buffer full (already woken) or already closed
            pass

    def serve(self) -> None:
        """Accept, read and dispatch until stopped; then refuse unfinished reads."""
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                for key, _events in self._selector.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._read(key.data)
                self._expire(time.monotonic())
        finally:
            for incoming in list(self._incoming.values()):
                self._refuse(incoming, "the module is shutting down")
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    # ------------------------------------------------------------ internals
    def _accept(self) -> None:
        for _ in range(32):  # bounded so one burst cannot starve reading
            try:
                conn, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self.log.error("out of file descriptors: %s", exc)
                return
            incoming = _Incoming(conn, time.monotonic() + self.read_timeout)
            if len(self._incoming) >= self.max_connections:
                self._refuse(incoming, "the module is busy (too many connections); try again")
                continue
            conn.setblocking(False)
            self._incoming[conn] = incoming
            self._selector.register(conn, selectors.EVENT_READ, incoming)

    def _read(self, incoming: _Incoming) -> None:
        try:
            chunk = incoming.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._forget(incoming)
            incoming.sock.close()
            return
        if chunk:
            incoming.buf += chunk
            end = incoming.buf.find(b"\n")
            if end < 0 and len(incoming.buf) <= self.max_request:
                return  # need more
            request = bytes(incoming.buf if end < 0 else incoming.buf[:end])
        else:  # EOF: the client half-closed; what we have is the request
            request = bytes(incoming.buf)
        if len(request) > self.max_request:
            self._refuse(incoming, f"request too large (limit {self.max_request} bytes)")
            return
        self._dispatch(incoming, request)

    def _dispatch(self, incoming: _Incoming, request: bytes) -> None:
        self._forget(incoming)
        incoming.sock.setblocking(True)
        incoming.sock.settimeout(SEND_TIMEOUT)
        if not self.pool.submit(self._respond, incoming.sock, request):
            self._refuse(incoming, "the module is busy (too many requests waiting); try again")

    def _respond(self, sock: socket.socket, request: bytes) -> None:
        """On a worker thread: compute the answer and send it."""
        try:
            send_and_close(sock, self.answer(request))
        except Exception:
            sock.close()
            raise

    def _expire(self, now: float) -> None:
        for incoming in [i for i in self._incoming.values() if i.deadline <= now]:
            self._refuse(incoming, f"incomplete request: no newline or end of input within {self.read_timeout:g}s")

    def _refuse(self, incoming: _Incoming, message: str) -> None:
        self._forget(incoming)
        self.log.warning("refused a request: %s", message)
        incoming.sock.settimeout(1.0)  # a tiny answer; never block the loop for long
        send_and_close(incoming.sock, error_line(message))

    def _forget(self, incoming: _Incoming) -> None:
        if self._incoming.pop(incoming.sock, None) is not None:
            self._selector.unregister(incoming.sock)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except (BlockingIOError, InterruptedError, OSError):
            pass


def send_and_close(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` (ignoring a client that went away) and close."""
    try:
        sock.sendall(data)
    except OSError:
        pass  # the client gave up; nothing to tell anyone
    finally:
        sock.close()
