"""The socket API server: one I/O thread (``selectors``) serves every client.

Safety properties (see docs/protocol.md):

- the socket is created inside a private 0700 directory, given mode 0660
  and its group, then renamed into place: there is no moment when others
  could connect;
- peers are checked with ``SO_PEERCRED`` (root, the daemon's uid, the
  configured uids and groups) and refused with ``forbidden``;
- a line over 64 KiB gets ``request_too_large`` and the connection is
  closed; a client that stops reading its answers is disconnected once its
  buffer passes 1 MiB; idle connections are closed after ``idle_timeout``;
- the number of connections is bounded.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..jobs.events import LOG, PROGRESS, REMOVED, STATE, JobEvent
from . import actions
from .protocol import (
    FORBIDDEN,
    INTERNAL_ERROR,
    MAX_LINE,
    REQUEST_TOO_LARGE,
    TOO_MANY_CONNECTIONS,
    ApiError,
    decode_request,
    encode,
    fail,
    ok,
)

log = logging.getLogger("pineapple.api")

READ_CHUNK = 65536
MAX_OUTBUF = 1 << 20          # a client that lets this much pile up is dropped
PAUSE_READING_AT = 256 * 1024  # stop reading requests while answers pile up
_UCRED = struct.Struct("3i")


class ServerError(RuntimeError):
    """The server cannot start (socket in use, bad path, ...)."""


class Peer:
    __slots__ = ("pid", "uid", "gid")

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid, self.uid, self.gid = pid, uid, gid

    def groups(self) -> set[int]:
        """Primary and supplementary groups (from /proc; primary only if gone)."""
        groups = {self.gid}
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("Groups:"):
                        groups.update(int(g) for g in line.split()[1:])
        except OSError:
            pass
        return groups


class Connection:
    __slots__ = ("sock", "peer", "inbuf", "outbuf", "last_active", "following", "backlog",
                 "closing", "eof", "events")

    def __init__(self, sock: socket.socket, peer: Peer, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last_active = now
        self.following: str | None = None   # job id whose events this connection streams
        self.backlog: deque[bytes] = deque()  # requests received while following
        self.closing = False  # close once outbuf is flushed
        self.eof = False
        self.events = selectors.EVENT_READ  # what the selector watches for (0: not registered)


class ApiServer:
    """Serves :mod:`pineapple.api.actions` on a Unix socket."""

    def __init__(self, service: Any, path: str, *, group: str = "", allowed_uids: set[int] = frozenset(),
                 allowed_gids: set[int] = frozenset(), max_connections: int = 64,
                 idle_timeout: float = 120.0) -> None:
        self.service = service
        self.path = os.path.abspath(path)
        self.group = group
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._allowed_uids = {0, os.getuid(), *allowed_uids}
        self._allowed_gids = set(allowed_gids)
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._lock_fd: int | None = None
        self._conns: dict[int, Connection] = {}
        self._followers: dict[str, set[Connection]] = {}
        self._events: deque[JobEvent] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._running = False
        self._calls: deque[Callable[[], None]] = deque()
        self.requests_served = 0

    # ============================================================ lifecycle
    def acquire(self) -> None:
        """Take the single-instance lock (before anything touches shared state).
        Raises :class:`ServerError` when another daemon serves this path."""
        self._take_instance_lock()
        self._check_not_in_use()

    def listen(self) -> None:
        """Create the listening socket and start taking job events."""
        if self._lock_fd is None:
            self.acquire()
        self._listener = self._create_socket()
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.service.manager.add_listener(self._on_job_event)

    def serve_forever(self) -> None:
        """Run the I/O loop until :meth:`stop` is called."""
        self._running = True
        while self._running:
            for key, mask in self._sel.select(self._select_timeout()):
                self._dispatch(key, mask)
            self._close_idle()

    def stop(self) -> None:
        """Make :meth:`serve_forever` return (safe from any thread or a signal handler)."""
        self.call_soon(self._halt)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread (thread-safe)."""
        self._calls.append(fn)
        self._wake()

    def close(self) -> None:
        """Close every connection, remove the socket file and release the lock."""
        for conn in list(self._conns.values()):
            self._flush(conn)
            self._drop(conn)
        if self._listener is not None:
            self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
            _unlink_quietly(self.path)
        if self._lock_fd is not None:
            _unlink_quietly(self.path + ".lock")
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def _halt(self) -> None:
        self._running = False

    # ================================================================ binding
    def _take_instance_lock(self) -> None:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ServerError(f"another pineapple-jobd (pid {owner}) is already serving {self.path}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _check_not_in_use(self) -> None:
        if not os.path.exists(self.path):
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except OSError:
            log.warning("replacing stale socket %s left by a previous run", self.path)
            return
        finally:
            probe.close()
        raise ServerError(f"{self.path} is in use by another process")

    def _create_socket(self) -> socket.socket:
        # Bind inside a private directory, fix mode and group, then rename
        # into place: nobody can connect before the permissions are right.
        private = os.path.join(os.path.dirname(self.path), f".jobd-{os.urandom(6).hex()}")
        os.mkdir(private, 0o700)
        staging = os.path.join(private, "sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(staging)
            os.chmod(staging, 0o660)
            self._apply_group(staging)
            sock.listen(64)
            os.rename(staging, self.path)
        except BaseException:
            sock.close()
            _unlink_quietly(staging)
            raise
        finally:
            os.rmdir(private)
        return sock

    def _apply_group(self, path: str) -> None:
        if not self.group:
            return
        gid = _group_id(self.group)
        os.chown(path, -1, gid)
        self._allowed_gids.add(gid)

    # ============================================================== the loop
    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "wake":
            self._drain_wakeups()
        else:
            conn: Connection = key.data
            if mask & selectors.EVENT_READ:
                self._read(conn)
            if mask & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                self._flush(conn)

    def _select_timeout(self) -> float | None:
        # Only connections have deadlines: an idle daemon sleeps forever.
        deadlines = [c.last_active for c in self._conns.values() if c.following is None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) + self.idle_timeout - time.monotonic())

    def _close_idle(self) -> None:
        limit = time.monotonic() - self.idle_timeout
        for conn in [c for c in self._conns.values() if c.following is None and c.last_active <= limit]:
            log.debug("closing idle connection from pid %s", conn.peer.pid)
            self._drop(conn)

    def _accept(self) -> None:
        for _ in range(32):  # take a burst of waiting clients per wake-up
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        peer = Peer(*_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)))
        refusal = self._refusal(peer)
        if refusal is not None:
            _send_and_close(sock, refusal)
            return
        conn = Connection(sock, peer, time.monotonic())
        self._conns[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)

    def _refusal(self, peer: Peer) -> bytes | None:
        if len(self._conns) >= self.max_connections:
            log.warning("refusing connection from pid %s: %d connections open", peer.pid, len(self._conns))
            return fail(f"too many connections (limit {self.max_connections})", TOO_MANY_CONNECTIONS)
        if peer.uid in self._allowed_uids or self._allowed_gids & peer.groups():
            return None
        log.warning("refusing connection from uid %s gid %s pid %s", peer.uid, peer.gid, peer.pid)
        return fail(f"uid {peer.uid} may not use pineapple-jobd", FORBIDDEN)

    # ================================================================ reading
    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        conn.last_active = time.monotonic()
        if not data:
            conn.eof = True
        conn.inbuf += data
        self._process_lines(conn)
        self._flush(conn)

    def _process_lines(self, conn: Connection) -> None:
        while not conn.closing and len(conn.outbuf) < PAUSE_READING_AT:
            end = conn.inbuf.find(b"\n")
            if end < 0:
                self._handle_partial(conn)
                break
            line = bytes(conn.inbuf[:end])
            del conn.inbuf[:end + 1]
            self._handle_line(conn, line)
        self._update_interest(conn)

    def _handle_partial(self, conn: Connection) -> None:
        if len(conn.inbuf) > MAX_LINE:
            conn.inbuf.clear()
            self._reply(conn, fail(f"request line longer than {MAX_LINE} bytes", REQUEST_TOO_LARGE))
            conn.closing = True
        elif conn.eof:
            if conn.inbuf.strip():  # a last request without its newline
                line = bytes(conn.inbuf)
                conn.inbuf.clear()
                self._handle_line(conn, line)
            conn.closing = conn.following is None and not conn.backlog

    def _handle_line(self, conn: Connection, line: bytes) -> None:
        if not line.strip():
            return
        if conn.following is not None:
            conn.backlog.append(line)
            return
        self.requests_served += 1
        self._reply(conn, self._answer(conn, line))

    def _answer(self, conn: Connection, line: bytes) -> bytes:
        request_id = None
        try:
            request = decode_request(line)
            request_id = request.get("id")
            if request["action"] == "follow":
                return self._start_follow(conn, request)
            return ok(actions.handle(self.service, request), request_id)
        except ApiError as exc:
            return fail(exc.message, exc.code, request_id)
        except Exception as exc:  # a handler bug must not take the daemon down
            log.exception("internal error answering %r", line[:200])
            return fail(f"internal error: {type(exc).__name__}: {exc}", INTERNAL_ERROR, request_id)

    # ================================================================ writing
    def _reply(self, conn: Connection, data: bytes) -> None:
        conn.outbuf += data
        if len(conn.outbuf) > MAX_OUTBUF:
            log.warning("dropping client pid %s: it does not read its answers", conn.peer.pid)
            self._drop(conn)

    def _flush(self, conn: Connection) -> None:
        if conn.sock.fileno() < 0:
            return
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(conn)
                return
        if not conn.outbuf and (conn.closing or (conn.eof and not conn.inbuf and conn.following is None
                                                 and not conn.backlog)):
            self._drop(conn)
            return
        if len(conn.outbuf) < PAUSE_READING_AT and (conn.inbuf or conn.backlog) and conn.following is None:
            self._resume(conn)
        self._update_interest(conn)

    def _resume(self, conn: Connection) -> None:
        while conn.backlog and conn.following is None:
            self._handle_line(conn, conn.backlog.popleft())
        self._process_lines(conn)

    def _update_interest(self, conn: Connection) -> None:
        if conn.sock.fileno() < 0:
            return
        events = 0
        if not conn.eof and not conn.closing and len(conn.outbuf) < PAUSE_READING_AT:
            events |= selectors.EVENT_READ
        if conn.outbuf:
            events |= selectors.EVENT_WRITE
        if events == conn.events:
            return
        # A follower whose client half-closed waits for job events only: it is
        # taken off the selector (an EOF socket would report readable forever).
        if conn.events == 0:
            self._sel.register(conn.sock, events, conn)
        elif events == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, events, conn)
        conn.events = events

    def _drop(self, conn: Connection) -> None:
        self._unfollow(conn)
        self._conns.pop(conn.sock.fileno(), None)
        if conn.events:
            self._sel.unregister(conn.sock)
            conn.events = 0
        conn.sock.close()

    # ============================================================ following
    def _start_follow(self, conn: Connection, request: dict) -> bytes:
        job = actions.find_job(self.service, request)
        conn.following = job.id
        self._followers.setdefault(job.id, set()).add(conn)
        lines = [ok({"following": job.id}, request.get("id")),
                 encode({"event": "state", "job_id": job.id, "data": job.summary()})]
        if request.get("log", True):
            lines += [encode({"event": "log", "job_id": job.id, "line": line}) for line in list(job.log)]
        if job.is_complete:
            lines.append(self._end_line(conn, job.summary()))
        return b"".join(lines)

    def _end_line(self, conn: Connection, summary: dict) -> bytes:
        self._unfollow(conn)
        return encode({"event": "end", "job_id": summary["job_id"], "job": summary})

    def _unfollow(self, conn: Connection) -> None:
        job_id, conn.following = conn.following, None
        followers = self._followers.get(job_id) if job_id else None
        if followers is not None:
            followers.discard(conn)
            if not followers:
                del self._followers[job_id]

    def _on_job_event(self, event: JobEvent) -> None:
        """Listener on the manager's event thread: hand over to the I/O thread."""
        if event.job_id in self._followers:
            self._events.append(event)
            self._wake()

    def _deliver_events(self) -> None:
        while self._events:
            event = self._events.popleft()
            for conn in list(self._followers.get(event.job_id, ())):
                self._send_event(conn, event)
                self._flush(conn)

    def _send_event(self, conn: Connection, event: JobEvent) -> None:
        if event.kind == STATE:
            self._reply(conn, encode({"event": "state", "job_id": event.job_id, "data": event.data}))
            if event.data["is_complete"]:
                self._reply(conn, self._end_line(conn, event.data))
        elif event.kind == PROGRESS:
            self._reply(conn, encode({"event": "progress", "job_id": event.job_id,
                                      "data": event.data.to_dict()}))
        elif event.kind == LOG:
            self._reply(conn, encode({"event": "log", "job_id": event.job_id, "line": event.data}))
        elif event.kind == REMOVED:
            self._unfollow(conn)
            self._reply(conn, encode({"event": "end", "job_id": event.job_id, "job": None,
                                      "removed": True}))

    # ================================================================ wake-ups
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._calls:
            self._calls.popleft()()
        self._deliver_events()


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:
        pass
    sock.close()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("cannot remove %s: %s", path, exc)


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ServerError(f"socket group {group!r} does not exist") from None
