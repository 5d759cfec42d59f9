"""The socket API server: one I/O thread (``epoll``) serves every client.

Safety properties (see docs/protocol.md):

- the socket is created inside a private 0700 directory, given mode 0660
  and its group, then renamed into place: there is no moment when others
  could connect;
- peers are checked with ``SO_PEERCRED`` / ``SO_PEERGROUPS`` (root, the
  daemon's uid, the configured uids and groups) and refused with
  ``forbidden`` (or ``too_many_connections``): the answer, then end-of-file;
  what a refused client still sends is read and ignored for a moment, so it
  can read the answer instead of failing on a broken pipe;
- a line over 64 KiB gets ``request_too_large`` and the connection is
  closed; a client that does not read its answers stops being read from
  once 256 KiB of answers wait for it (back-pressure), is disconnected once
  its buffer passes 1 MiB (a follower: events keep coming) or when it made no
  progress for ``idle_timeout``; idle connections are closed after
  ``idle_timeout``;
- the number of connections is bounded.

The loop sleeps in ``epoll_wait`` with no timeout unless a connection has
an idle deadline: an idle daemon causes no wake-ups. Out of file
descriptors, it stops accepting (instead of spinning on the listener) until
a connection closes or a second has passed.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import signal
import socket
import struct
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from ..errors import QUEUE_FULL
from ..jobs.events import LOG, PROGRESS, REMOVED, STATE, JobEvent
from ..jobs.state import HELD, QUEUED, TERMINAL_STATES
from . import actions
from .protocol import (
    FORBIDDEN,
    INTERNAL_ERROR,
    MAX_LINE,
    NO_ID,
    REQUEST_TOO_LARGE,
    TOO_MANY_CONNECTIONS,
    ApiError,
    answer_ok,
    answer_raw,
    decode_request,
    dumps,
    encode,
    fail,
    field,
    ok,
)

log = logging.getLogger("pineapple.api")

READ_CHUNK = 65536
MAX_INBUF = MAX_LINE + 2 * READ_CHUNK  # requests read ahead and kept per connection, at most
MAX_OUTBUF = 1 << 20          # a follower that lets this much pile up is dropped
PAUSE_READING_AT = 256 * 1024  # stop reading requests while answers pile up
FINAL_ANSWERS_KEPT = 256       # encoded poll answers of finished jobs (see _poll_job)
REFUSED_LINGER = 2.0           # seconds a refused client may still send (ignored) before it is closed
MAX_LINGERING = 16             # refused clients kept lingering at most; more are closed at once
_UCRED = struct.Struct("3i")
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
_WAITING_STATES = frozenset((QUEUED, HELD))  # a job in these still takes its place in the queue
_READABLE = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
_WRITABLE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
# SO_PEERGROUPS (Linux >= 4.13) has the generic number 59 wherever SO_PEERCRED
# has its generic number 17; elsewhere (mips, powerpc, ...) /proc is read.
_SO_PEERGROUPS = 59 if socket.SO_PEERCRED == 17 else None
_OUT_OF_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class ServerError(RuntimeError):
    """The server cannot start (socket in use, bad path, ...)."""


class Peer:
    __slots__ = ("pid", "uid", "gid", "_groups")

    def __init__(self, pid: int, uid: int, gid: int, groups: set[int] | None = None) -> None:
        self.pid, self.uid, self.gid = pid, uid, gid
        self._groups = groups

    def groups(self) -> set[int]:
        """Primary and supplementary groups at connect time (SO_PEERGROUPS),
        else read from /proc while the process is still the peer."""
        if self._groups is not None:
            return self._groups | {self.gid}
        groups = {self.gid}
        try:
            with open(f"/proc/{self.pid}/status") as status:
                lines = {line.split(":", 1)[0]: line.split()[1:] for line in status}
        except OSError:
            return groups
        # A recycled pid must not lend its groups: the ids have to match.
        if int(lines.get("Uid", ["-1", "-1"])[1]) == self.uid and int(lines.get("Gid", ["-1", "-1"])[1]) == self.gid:
            groups.update(int(g) for g in lines.get("Groups", ()))
        return groups


def _peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    groups = None
    if _SO_PEERGROUPS is not None:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * 256)
            groups = set(struct.unpack(f"{len(raw) // 4}I", raw))
        except OSError:  # old kernel (ENOPROTOOPT) or more than 256 groups (ERANGE)
            groups = None
    return Peer(pid, uid, gid, groups)


class Parked:
    """A ``submit`` with ``wait`` that found the queue full: answered once
    there is room (or its deadline passes); the connection's later requests
    wait behind it, as behind a ``follow``."""

    __slots__ = ("request", "request_id", "deadline", "since")

    def __init__(self, request: dict, request_id: Any, deadline: float | None, since: float) -> None:
        self.request, self.request_id, self.deadline, self.since = request, request_id, deadline, since


class Connection:
    __slots__ = ("sock", "fd", "peer", "inbuf", "outbuf", "last_active", "following", "last_state",
                 "parked", "closing", "closed", "eof", "paused", "events")

    def __init__(self, sock: socket.socket, peer: Peer, now: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last_active = now
        self.following: str | None = None   # job id whose events this connection streams
        self.last_state: dict | None = None  # the state a follower got last
        self.parked: Parked | None = None  # a `wait` submit waiting for room in the queue
        self.closing = False  # close once outbuf is flushed
        self.closed = False
        self.eof = False
        self.paused = False   # requests wait in inbuf (answers pile up, or a follow is on)
        self.events = _EPOLLIN  # what epoll watches for (0: not registered)


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
        self._allowed_uids, self._allowed_gids = _access(group, allowed_uids, allowed_gids)
        self._epoll = select.epoll()
        self._listener: socket.socket | None = None
        self._listen_fd = -1
        self._accept_paused = False
        self._lock_fd: int | None = None
        self._conns: dict[int, Connection] = {}
        self._followers: dict[str, set[Connection]] = {}
        self._parked: deque[Connection] = deque()  # waiting submits, oldest first
        self._room_changed = False  # set by the event thread: a job left the queue
        self._events: deque[JobEvent] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_pending = False
        self._signal_fd_before: int | None = None  # set_wakeup_fd's earlier value while ours is set
        self._running = False
        self._calls: deque[Callable[[], None]] = deque()
        self._idle_deadline: float | None = None  # no connection can expire before this
        self._final_answers: dict[str, bytes] = {}  # job id -> poll payload of a finished job
        self._lingering: dict[int, tuple[socket.socket, float]] = {}  # refused: fd -> (socket, deadline)
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
        self._listen_fd = self._listener.fileno()
        self._epoll.register(self._listen_fd, _EPOLLIN)
        self._epoll.register(self._wake_r, _EPOLLIN)
        self.service.manager.add_listener(self._on_job_event, inline=True)  # it only queues and wakes the loop

    def wake_on_signals(self) -> None:
        """Wake the I/O loop whenever the process takes a signal (call on the
        main thread, before the signals' handlers are needed).

        Python runs signal handlers on the main thread, the I/O thread here,
        between bytecodes; but the kernel hands a process-directed signal to
        any thread that does not block it (one of sh's threads being created,
        a worker), and then ``epoll_wait`` goes on sleeping: the handler (a
        reload, a stop) would wait for the next client or job event, which
        may never come. With the wake pipe as the wakeup fd, the C-level
        handler writes to it on whichever thread it ran."""
        self._signal_fd_before = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def serve_forever(self) -> None:
        """Run the I/O loop until :meth:`stop` is called."""
        self._running = True
        poll = self._epoll.poll
        conns = self._conns
        while self._running:
            deadline = self._idle_deadline
            events = poll(-1 if deadline is None else max(0.0, deadline - monotonic()))
            for fd, mask in events:
                conn = conns.get(fd)
                try:
                    if conn is not None:
                        if mask & _READABLE:
                            self._read(conn)
                        if mask & _WRITABLE and not conn.closed:
                            self._flush(conn)
                    elif fd == self._listen_fd:
                        self._accept()
                    elif fd == self._wake_r:
                        self._drain_wakeups()
                    elif fd in self._lingering:
                        self._drain_refused(fd)
                except Exception:  # a bug must cost one connection at most, never the daemon
                    log.exception("internal error in the I/O loop")
                    if conn is not None:
                        self._drop(conn)
            if self._idle_deadline is not None and monotonic() >= self._idle_deadline:
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
            if conn.outbuf:  # best effort: what is already answered
                try:
                    conn.sock.send(conn.outbuf)
                except OSError:
                    pass
            self._drop(conn)
        for fd in list(self._lingering):
            self._close_refused(fd)
        if self._listener is not None:
            self._epoll.unregister(self._listen_fd)
            self._listener.close()
            self._listener = None
            _unlink_quietly(self.path)
        if self._lock_fd is not None:
            _unlink_quietly(self.path + ".lock")
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._signal_fd_before is not None:  # before the pipe closes: the fd number may be reused
            signal.set_wakeup_fd(self._signal_fd_before)
            self._signal_fd_before = None
        if self._wake_r >= 0:
            self._epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def configure(self, *, group: str, allowed_uids: set[int], allowed_gids: set[int], max_connections: int,
                  idle_timeout: float) -> None:
        """Change who may connect and the connection limits while serving
        (the daemon's reload; any thread). The socket file gets the new
        group at once; connections already open stay. Raises
        :class:`ServerError` (nothing changed) for a group that does not exist."""
        gid = _group_id(group) if group else os.getgid()
        uids, gids = _access(group, allowed_uids, allowed_gids)
        if group:
            gids.add(gid)
        if self._listener is not None and group != self.group:
            os.chown(self.path, -1, gid)

        def apply() -> None:
            self.group, self.max_connections, self.idle_timeout = group, max_connections, idle_timeout
            self._allowed_uids, self._allowed_gids = uids, gids
            if self._conns or self._lingering:
                self._idle_deadline = monotonic()  # look again with the new idle timeout
            self._resume_accepting()

        self.call_soon(apply)

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

    # ========================================================== connections
    def _accept(self) -> None:
        for _ in range(32):  # take a burst of waiting clients per wake-up
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:  # stop accepting until one closes
                    log.warning("cannot accept connections: %s", exc)
                    self._pause_accepting()
                else:  # that client is gone already
                    log.debug("accept failed: %s", exc)
                return
            self._admit(sock)

    def _pause_accepting(self) -> None:
        """Stop watching the listener (it would report readable in a busy
        loop) until a connection closes or a second has passed."""
        if not self._accept_paused and self._listener is not None:
            self._accept_paused = True
            self._epoll.modify(self._listen_fd, 0)
            retry = monotonic() + 1.0
            if self._idle_deadline is None or retry < self._idle_deadline:
                self._idle_deadline = retry

    def _resume_accepting(self) -> None:
        if self._accept_paused and self._listener is not None:
            self._accept_paused = False
            self._epoll.modify(self._listen_fd, _EPOLLIN)

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            peer = _peer_of(sock)
        except OSError:
            sock.close()
            return
        refusal = self._refusal(peer)
        if refusal is not None:
            self._refuse(sock, refusal)
            return
        now = monotonic()
        conn = Connection(sock, peer, now)
        self._conns[conn.fd] = conn
        self._epoll.register(conn.fd, _EPOLLIN)
        if self._idle_deadline is None:
            self._idle_deadline = now + self.idle_timeout

    def _refusal(self, peer: Peer) -> bytes | None:
        if peer.uid not in self._allowed_uids and not (self._allowed_gids and self._allowed_gids & peer.groups()):
            log.warning("refusing connection from uid %s gid %s pid %s", peer.uid, peer.gid, peer.pid)
            return fail(f"uid {peer.uid} may not use pineapple-jobd", FORBIDDEN)
        if len(self._conns) >= self.max_connections:
            log.warning("refusing connection from pid %s: %d connections open", peer.pid, len(self._conns))
            return fail(f"too many connections (limit {self.max_connections})", TOO_MANY_CONNECTIONS)
        return None

    def _refuse(self, sock: socket.socket, answer: bytes) -> None:
        """Answer a refused client, then end-of-file. It is not cut off at
        once: a client that sends its request only now would get a broken
        pipe instead of reading the answer. What it sends is read and
        ignored until it hangs up or ``REFUSED_LINGER`` seconds pass."""
        try:
            sock.send(answer)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self._lingering) >= MAX_LINGERING:
            _discard_and_close(sock)
            return
        deadline = monotonic() + REFUSED_LINGER
        self._lingering[sock.fileno()] = (sock, deadline)
        self._epoll.register(sock.fileno(), _EPOLLIN)
        if self._idle_deadline is None or deadline < self._idle_deadline:
            self._idle_deadline = deadline

    def _drain_refused(self, fd: int) -> None:
        sock = self._lingering[fd][0]
        try:
            if sock.recv(65536):
                return  # ignored; wait for end-of-file (or the deadline)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_refused(fd)

    def _close_refused(self, fd: int) -> None:
        sock, _ = self._lingering.pop(fd)
        try:
            self._epoll.unregister(fd)
        except OSError:
            pass
        _discard_and_close(sock)

    def _close_idle(self) -> None:
        """Close connections idle for ``idle_timeout``; find the next deadline."""
        self._resume_accepting()
        now = monotonic()
        limit = now - self.idle_timeout
        earliest = earliest_wait = None
        for conn in list(self._conns.values()):
            if conn.parked is not None:
                if conn.parked.deadline is not None:
                    if conn.parked.deadline <= now:
                        self._give_up_waiting(conn)
                    elif earliest_wait is None or conn.parked.deadline < earliest_wait:
                        earliest_wait = conn.parked.deadline
                continue  # waiting for room is not idleness
            if conn.following is not None:
                continue  # a follower waits for its job, however long that takes
            if conn.last_active <= limit:
                log.debug("closing idle connection from pid %s", conn.peer.pid)
                self._drop(conn)
            elif earliest is None or conn.last_active < earliest:
                earliest = conn.last_active
        deadline = None if earliest is None else earliest + self.idle_timeout
        if earliest_wait is not None and (deadline is None or earliest_wait < deadline):
            deadline = earliest_wait
        for fd, (_, until) in list(self._lingering.items()):
            if until <= now:
                self._close_refused(fd)
            elif deadline is None or until < deadline:
                deadline = until
        self._idle_deadline = deadline

    def _drop(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._unfollow(conn)
        if conn.parked is not None:
            conn.parked = None
            self._parked.remove(conn)
        self._conns.pop(conn.fd, None)
        if conn.events:
            try:
                self._epoll.unregister(conn.fd)
            except OSError:
                pass
            conn.events = 0
        conn.sock.close()
        self._resume_accepting()

    # ================================================================ reading
    def _read(self, conn: Connection) -> None:
        if (conn.following is not None or conn.parked is not None) and not _reading(conn):
            return  # woken by a hang-up while full: the rest waits in the kernel
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        conn.last_active = monotonic()
        if not data and conn.parked is not None:
            self._drop(conn)  # hanging up withdraws a waiting submit: nobody would read its answer
            return
        if not data:
            conn.eof = True
            self._process_lines(conn)
        elif not conn.inbuf and data.find(b"\n") == len(data) - 1 and len(data) <= MAX_LINE + 1 \
                and conn.following is None and conn.parked is None and not conn.outbuf and not conn.closing:
            self._handle_line(conn, data[:-1])  # the usual case: exactly one request
        else:
            conn.inbuf += data
            self._process_lines(conn)
        self._flush(conn)

    def _process_lines(self, conn: Connection) -> None:
        """Answer the complete request lines in ``inbuf`` (until answers pile
        up, or a ``follow`` starts: then the rest waits, unparsed, in ``inbuf``,
        which :func:`_reading` keeps under ``MAX_INBUF``)."""
        buf = conn.inbuf
        start = 0
        complete = True  # every complete line was handled
        while not conn.closing and not conn.closed:
            if conn.following is not None or conn.parked is not None:
                complete = not buf[start:].strip()
                break
            end = buf.find(b"\n", start)
            if end < 0:
                break
            if end - start > MAX_LINE:
                start = len(buf)
                self._too_large(conn)
                break
            if len(conn.outbuf) >= PAUSE_READING_AT:
                complete = False
                break
            line = buf[start:end]
            start = end + 1
            self._handle_line(conn, line)
        if start:
            del buf[:start]
        conn.paused = not complete
        if complete and conn.following is None and conn.parked is None and not conn.closing and not conn.closed:
            self._handle_partial(conn)

    def _handle_partial(self, conn: Connection) -> None:
        if len(conn.inbuf) > MAX_LINE:
            self._too_large(conn)
        elif conn.eof and conn.inbuf:
            line = bytes(conn.inbuf)  # a last request without its newline
            conn.inbuf.clear()
            self._handle_line(conn, line)

    def _too_large(self, conn: Connection) -> None:
        conn.inbuf.clear()
        self._reply(conn, fail(f"request line longer than {MAX_LINE} bytes", REQUEST_TOO_LARGE))
        conn.closing = True

    def _handle_line(self, conn: Connection, line: bytes | bytearray) -> None:
        if not line or line.isspace():
            return
        self.requests_served += 1
        self._reply(conn, self._answer(conn, line))

    def _answer(self, conn: Connection, line: bytes | bytearray) -> bytes:
        request_id = NO_ID
        try:
            request = decode_request(line)
            request_id = request.get("id", NO_ID)
            action = request["action"]
            if action == "poll_job":
                return self._poll_job(request, request_id)
            if action == "follow":
                return self._start_follow(conn, request)
            if action == "submit" and request.get("wait") not in (None, False):
                return self._submit_or_park(conn, request, request_id)
            return answer_ok(actions.handle(self.service, request), request_id)
        except ApiError as exc:
            return fail(exc.message, exc.code, request_id)
        except Exception as exc:  # a handler bug must not take the daemon down
            log.exception("internal error answering %r", bytes(line[:200]))
            return fail(f"internal error: {type(exc).__name__}: {exc}", INTERNAL_ERROR, request_id)

    def _poll_job(self, request: dict, request_id: Any) -> bytes:
        """``poll_job``, the request pollers send most: the answer about a
        finished job never changes, so its encoding is kept (ids are never reused)."""
        remove = field(request, "remove_if_complete", bool, False)
        job = actions.find_job(self.service, request)
        payload = self._final_answers.get(job.id)
        if payload is None:
            summary = job.summary()
            payload = dumps(summary).encode("utf-8")
            # Final only once both are set (is_complete is set just before the state).
            if summary["is_complete"] and summary["state"] in TERMINAL_STATES:
                if len(self._final_answers) >= FINAL_ANSWERS_KEPT:
                    self._final_answers.clear()
                self._final_answers[job.id] = payload
        if remove and job.is_complete:
            self.service.manager.remove_job(job.id)
        return answer_raw(payload, request_id)

    # ================================================================ writing
    def _reply(self, conn: Connection, data: bytes) -> None:
        if conn.closed:
            return
        conn.outbuf += data
        if len(conn.outbuf) > MAX_OUTBUF:
            log.warning("dropping client pid %s: it does not read its answers", conn.peer.pid)
            self._drop(conn)

    def _flush(self, conn: Connection) -> None:
        """Send what is buffered; then close, or answer requests that waited
        for the buffer to drain (and send those answers too)."""
        while not conn.closed:
            out = conn.outbuf
            blocked = False
            if out:
                try:
                    sent = conn.sock.send(out)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._drop(conn)
                    return
                if sent:
                    del out[:sent]
                    conn.last_active = monotonic()  # progress, even while no request is read
                blocked = bool(out)
            if not out and (conn.closing or (conn.eof and not conn.inbuf and conn.following is None)):
                self._drop(conn)
                return
            if blocked or conn.following is not None or conn.parked is not None or not conn.paused \
                    or len(out) >= PAUSE_READING_AT:
                break
            self._process_lines(conn)
        self._update_interest(conn)

    def _update_interest(self, conn: Connection) -> None:
        if conn.closed:
            return
        events = _EPOLLIN if _reading(conn) else 0
        if conn.outbuf:
            events |= _EPOLLOUT
        if events == conn.events:
            return
        # A follower whose client half-closed waits for job events only: it is
        # taken off epoll (an EOF socket would report readable forever).
        if conn.events == 0:
            self._epoll.register(conn.fd, events)
        elif events == 0:
            self._epoll.unregister(conn.fd)
        else:
            self._epoll.modify(conn.fd, events)
        conn.events = events

    # ====================================================== waiting for room
    def _submit_or_park(self, conn: Connection, request: dict, request_id: Any) -> bytes:
        """``submit`` with ``wait``: queued now, or answered once there is
        room (docs/protocol.md); b"" while it waits."""
        wait = request.get("wait")
        try:
            return answer_ok(actions.handle(self.service, request), request_id)
        except ApiError as exc:
            if exc.code != QUEUE_FULL:
                raise
        now = monotonic()
        deadline = None if wait is True else now + float(wait)  # actions.submit checked its type
        conn.parked = Parked(request, request_id, deadline, now)
        self._parked.append(conn)
        if deadline is not None and (self._idle_deadline is None or deadline < self._idle_deadline):
            self._idle_deadline = deadline
        return b""

    def _retry_parked(self) -> None:
        """Submit the waiting requests, oldest first, while there is room."""
        manager = self.service.manager
        while self._parked:
            if manager.max_queued is not None and manager.waiting() >= manager.max_queued:
                return  # still full (what submit would say, without building the job to hear it)
            conn = self._parked[0]
            parked = conn.parked
            try:
                answer = answer_ok(actions.handle(self.service, parked.request), parked.request_id)
            except ApiError as exc:
                if exc.code == QUEUE_FULL:
                    return  # still full: the oldest keeps its turn
                answer = fail(exc.message, exc.code, parked.request_id)
            except Exception as exc:
                log.exception("internal error submitting a waiting request")
                answer = fail(f"internal error: {type(exc).__name__}: {exc}", INTERNAL_ERROR, parked.request_id)
            self._unpark(conn, answer)

    def _give_up_waiting(self, conn: Connection) -> None:
        parked = conn.parked
        waited = monotonic() - parked.since
        limit = self.service.manager.max_queued
        self._unpark(conn, fail(f"too many queued jobs (limit {limit}), still after waiting {waited:.0f}s",
                                QUEUE_FULL, parked.request_id))

    def _unpark(self, conn: Connection, answer: bytes) -> None:
        self._parked.remove(conn)
        conn.parked = None
        conn.last_active = monotonic()
        if self._idle_deadline is None:
            self._idle_deadline = conn.last_active + self.idle_timeout
        self._reply(conn, answer)
        self._flush(conn)  # then the requests that waited behind it

    # ============================================================ following
    def _start_follow(self, conn: Connection, request: dict) -> bytes:
        job = actions.find_job(self.service, request)
        conn.following = job.id
        self._followers.setdefault(job.id, set()).add(conn)
        conn.last_state = job.summary()
        lines = [ok({"following": job.id}, request.get("id", NO_ID)),
                 encode({"event": "state", "job_id": job.id, "data": conn.last_state})]
        if request.get("log", True):
            lines += [encode({"event": "log", "job_id": job.id, "line": line}) for line in list(job.log)]
        if conn.last_state["is_complete"] and conn.last_state["state"] in TERMINAL_STATES:
            lines.append(self._end_line(conn, conn.last_state))  # else its final state event ends it
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
        if job_id and not conn.closed:  # an ordinary connection again: its idle clock restarts
            conn.last_active = monotonic()
            if self._idle_deadline is None:
                self._idle_deadline = conn.last_active + self.idle_timeout

    def _on_job_event(self, event: JobEvent) -> None:
        """Inline listener (on the thread where the event happens): hand over
        to the I/O thread."""
        if event.kind == REMOVED:
            self._final_answers.pop(event.job_id, None)
        elif self._parked and event.kind == STATE and event.data["state"] not in _WAITING_STATES:
            self._room_changed = True  # a job started or ended: a waiting submit may fit now
            self._wake()
        if event.job_id in self._followers:
            self._events.append(event)
            self._wake()

    def _deliver_events(self) -> None:
        touched: dict[int, Connection] = {}
        while self._events:
            event = self._events.popleft()
            for conn in list(self._followers.get(event.job_id, ())):
                self._send_event(conn, event)
                touched[conn.fd] = conn
        for conn in touched.values():
            self._flush(conn)

    def _send_event(self, conn: Connection, event: JobEvent) -> None:
        if event.kind == STATE:
            if event.data == conn.last_state:
                return  # emitted before the follow began, delivered after: the follower has it
            conn.last_state = event.data
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
        if self._wake_pending:
            return  # the loop has not drained the last wake-up yet: it will see this too
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway
        except OSError:
            pass  # closed: the server has stopped

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        # Only now, with the pipe empty: cleared before reading, a wake-up
        # written meanwhile would be read here while the flag stayed set, and
        # every later wake-up skipped (lost events, a stop never seen).
        self._wake_pending = False
        self._deliver_events()
        if self._room_changed:
            self._room_changed = False
            self._retry_parked()
        while self._calls:
            call = self._calls.popleft()
            try:
                call()
            except Exception:
                log.exception("internal error in %r", call)


def _reading(conn: Connection) -> bool:
    """Whether to read more of a client's requests. What is read and kept per
    connection stays bounded in every state: ``inbuf`` never grows past
    ``MAX_INBUF`` (a follower's pipelined requests wait there, unparsed),
    ``outbuf`` stops reading at ``PAUSE_READING_AT`` and drops the client past
    ``MAX_OUTBUF``."""
    if conn.eof or conn.closing or len(conn.outbuf) >= PAUSE_READING_AT:
        return False
    if conn.following is not None or conn.parked is not None:
        return len(conn.inbuf) + READ_CHUNK <= MAX_INBUF
    return not conn.paused


def _discard_and_close(sock: socket.socket) -> None:
    """Close a refused client's socket after reading what it sent (closing
    with unread data would turn its end-of-file into a reset)."""
    try:
        sock.setblocking(False)
        for _ in range(16):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("cannot remove %s: %s", path, exc)


def _access(group: str, uids: set[int], gids: set[int]) -> tuple[set[int], set[int]]:
    """The uids and gids that may connect: root, the daemon's own uid, the
    configured ones and, when the socket keeps the daemon's group, its
    members (docs/protocol.md); the socket group is added once resolved."""
    allowed_gids = set(gids)
    if not group:
        allowed_gids.add(os.getgid())
    return {0, os.getuid(), *uids}, allowed_gids


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ServerError(f"socket group {group!r} does not exist") from None
