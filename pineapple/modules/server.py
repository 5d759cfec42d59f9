"""The module socket, speaking the protocol of the WiFi Pineapple MK7.

How the MK7's API server talks to a module (and so how this socket answers):

1. The server connects to ``NAME.sock`` and writes the request: one JSON
   object, with no newline after it. Then it closes that connection, or
   keeps it open; it never reads from it.
2. The server connects a **second** time, writes nothing, and reads the
   answer until the module closes that connection.

So a connection that brings a request never carries its answer, and the
answer's connection carries nothing that identifies the request. This
socket therefore sorts connections by what they send:

- **A request connection** sends bytes. Its request ends when those bytes
  form one complete JSON value, or at the client's EOF (half-close or
  close), whichever comes first; a newline is not needed and ends nothing.
  Nothing is ever written back on it. As with Hak5's loop, it stays open
  (whatever else comes on it is ignored) until the request's answer
  connection has come, or the client closes it.
  A connection that sends nothing and closes (a probe) is ignored.
- **An answer connection** ("waiter") sends nothing (it may shut down its
  writing side: it still reads). It waits for the
  answer of the request that came before it: each waiter is paired with
  the *latest* earlier request that has no waiter yet. A server that, like
  the MK7's, connects for the answer right after writing the request gets
  its own answer, whatever else the module is doing; a request whose client
  never connects for its answer is dropped after ``read_timeout`` instead
  of being handed to the next client's waiter. A waiter that turns out to
  send bytes after all (a slow request connection that was paired too
  early) is a request connection and is un-paired; to leave it the time to
  show that, a waiter that came more than ``FRESH`` (50 ms) after its
  request is answered only once it has been silent for ``SETTLE`` (20 ms).
  A waiter that comes right after its request (the normal case) is
  answered as soon as the answer is ready.

Concurrency: handlers run on a bounded :class:`pineapple.workers.WorkerPool`, so a slow
handler never delays the answers of other requests; each answer goes to its
own waiter as soon as it is ready (no head-of-line blocking). Pairing is by
order of connections, which is all the protocol offers: two clients that
interleave their connections (request 1, request 2, then answer 2's
connection before answer 1's) would swap answers with any module,
Hak5's included. A client must therefore connect for its answer right after
sending its request, with no other client's connection in between;
:mod:`pineapple.modules.gateway` holds a per-module lock across those two
connects (only across the connects: answers are still awaited in parallel).

What this fixes in Hak5's loop (one ``recv()``, answer to whoever connects
next): requests larger than one ``recv()`` are read whole; ``{}``, non-JSON,
a missing ``action`` or an oversized request are *answered* with an error
(Hak5's answered nothing, then took the server's answer connection for the
next request, or died); a silent or slow client blocks nobody; a
connection that sends nothing and has no request before it gets an error
after ``read_timeout`` instead of hanging.

One thread (the caller of :meth:`ModuleSocket.serve`) accepts, reads and
writes every connection with ``selectors``; the pool only computes answers.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import socket
import stat
import threading
import time
from collections import deque
from typing import Callable

from ..workers import Task, WorkerPool

READ_CHUNK = 65536
SEND_TIMEOUT = 10.0  # a waiter that does not read its answer for this long is dropped
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
# A connection that comes within FRESH seconds of the request it is paired
# with is that request's own answer connection (the MK7 server connects for
# the answer right after writing): it gets the answer at once. One that comes
# later (the request was abandoned, and this may be the next client's request
# whose bytes are still on the way: on a single core the module often runs
# between a client's connect and its write) gets it only after being silent
# for SETTLE seconds; a request connection has written by then.
FRESH = 0.05
SETTLE = 0.02
_JSON_ENDINGS = frozenset(b'}]"el0123456789')  # the last byte of any complete JSON value
_WHITESPACE = b" \t\r\n"

Answerer = Callable[[bytes], bytes]


class ModuleError(RuntimeError):
    """A module cannot start (bad name, socket path too long, already running, ...)."""


class _Conn:
    """An accepted connection: reading a request, or waiting for an answer."""

    __slots__ = ("sock", "seq", "buf", "accepted", "deadline", "owed", "spent")

    def __init__(self, sock: socket.socket, seq: int, accepted: float, read_timeout: float) -> None:
        self.sock = sock
        self.seq = seq  # accept order: pairing is by order
        self.buf = bytearray()
        self.accepted = accepted
        self.deadline = accepted + read_timeout
        self.owed: _Owed | None = None  # set while this connection waits for that request's answer
        self.spent = False  # its request has been read: kept open (like Hak5's) until its waiter comes


class _Owed:
    """A request whose answer is owed to the waiter that connects after it."""

    __slots__ = ("seq", "completed", "deadline", "answer", "waiter", "source")

    def __init__(self, seq: int, completed: float, deadline: float, answer: bytes | None = None) -> None:
        self.seq = seq
        self.completed = completed  # when the request had been read
        self.deadline = deadline  # drop it if no waiter has come by then
        self.answer = answer  # None while the handler runs
        self.waiter: _Conn | None = None
        self.source: _Conn | None = None  # the request's own connection, while still open


class _Outgoing:
    """An answer being written to its waiter."""

    __slots__ = ("sock", "data", "deadline")

    def __init__(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        self.sock = sock
        self.data = memoryview(data)
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
        probe.close()  # a live module sees a connection that sends nothing and closes: it ignores it
    raise ModuleError(f"another process already serves {path} (is the module running twice?)")


def error_answer(message: str) -> bytes:
    """An ``{"error": message}`` answer (for errors of the socket itself)."""
    return json.dumps({"error": message}).encode("ascii")


def is_complete_json(buf: bytes | bytearray) -> bool:
    """True when ``buf`` is exactly one complete JSON value (surrounding
    whitespace allowed): the end of a request that carries no newline."""
    end = len(buf)
    while end and buf[end - 1] in _WHITESPACE:
        end -= 1
    if not end or buf[end - 1] not in _JSON_ENDINGS:
        return False  # cheap: most partial reads end mid-value
    try:
        json.loads(bytes(buf[:end]))
    except ValueError:  # incomplete, or not JSON at all: EOF or the read timeout will end it
        return False
    return True


class ModuleSocket:
    """Serve one listening socket (MK7 protocol) until :meth:`stop`; then
    :meth:`finish` delivers what is still owed."""

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
        self._conns: dict[socket.socket, _Conn] = {}
        self._owed: list[_Owed] = []  # in request order
        self._outgoing: dict[socket.socket, _Outgoing] = {}
        self._done: deque[tuple[_Owed, bytes]] = deque()  # answers computed by workers, for the loop
        self._seq = 0
        self._stopping = False
        self._accepting = True

    def stop(self) -> None:
        """Make :meth:`serve` return soon; safe from a signal handler or any thread."""
        self._stopping = True
        self._wake()

    def serve(self) -> None:
        """Accept, read, pair and answer until stopped."""
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        while not self._stopping:
            self._turn(self._timeout(0.5))

    def close_listener(self) -> None:
        """Take no new connections (after :meth:`serve` returned)."""
        if self._accepting:
            self._accepting = False
            try:
                self._selector.unregister(self.listener)
            except KeyError:  # serve() never ran
                pass
            self.listener.close()

    def finish(self, grace: float) -> int:
        """After :meth:`serve`: take no new connections, let running handlers
        answer their waiters for up to ``grace`` seconds, then answer every
        remaining waiter "shutting down" and close everything. Returns how
        many handlers were still running."""
        self.close_listener()
        for task in self.pool.close():  # never started
            self._done.append((task.args[0], error_answer("the module is shutting down")))
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self._outgoing or any(o.answer is None and o.waiter is not None
                                                                     for o in self._owed) or self._done):
            self._turn(self._timeout(min(0.1, max(deadline - time.monotonic(), 0.0))))
        still_running = self.pool.busy
        for owed in self._owed:
            if owed.waiter is not None and owed.answer is None:
                owed.answer = error_answer("the module is shutting down")
        self._deliver(time.monotonic() + SETTLE)
        self._flush_outgoing(deadline=time.monotonic() + 1.0)
        for conn in list(self._conns.values()):
            self._drop(conn, error_answer("the module is shutting down"))
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        return still_running

    # ----------------------------------------------------------------- loop
    def _timeout(self, longest: float) -> float:
        """Wake up in time for the next waiter that becomes due."""
        due = [_due(o) for o in self._owed if o.waiter is not None and o.answer is not None]
        if not due:
            return longest
        return min(longest, max(min(due) - time.monotonic(), 0.0) + 0.001)

    def _turn(self, timeout: float) -> None:
        accept = False
        for key, _events in self._selector.select(timeout=timeout):
            if key.data == "accept":
                accept = True
            elif key.data == "wake":
                self._drain_wake()
            elif isinstance(key.data, _Outgoing):
                self._write(key.data)
            else:
                self._read(key.data)
        now = time.monotonic()
        if accept and self._accepting:
            self._accept(now)
            # A request's bytes are written before its client connects for the
            # answer: read everything that has arrived before calling anyone silent.
            for conn in [c for c in self._conns.values() if c.owed is None]:
                self._read(conn)
        while self._done:
            owed, answer = self._done.popleft()
            owed.answer = answer
        self._expire(now)
        self._pair()
        self._deliver(now)

    def _accept(self, now: float) -> None:
        for _ in range(32):  # bounded so one burst cannot starve the rest
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self.log.error("out of file descriptors: %s", exc)
                return
            if len(self._conns) + len(self._outgoing) >= self.max_connections:
                # Read as an answer by a waiter; ignored by a request's client.
                self.log.warning("refused a connection: too many connections")
                _send_now(sock, error_answer("the module is busy (too many connections); try again"))
                continue
            sock.setblocking(False)
            self._seq += 1
            conn = _Conn(sock, self._seq, now, self.read_timeout)
            self._conns[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        """Read what has arrived; a complete request is dispatched."""
        while True:
            try:
                chunk = conn.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._at_eof(conn)
                return
            if conn.spent:
                continue  # more after the request: ignored, as Hak5's module ignores it
            if conn.owed is not None:  # it was paired as a waiter but sends: a request after all
                conn.owed.waiter = None
                conn.owed = None
            conn.buf += chunk
            if len(conn.buf) > self.max_request:
                self._request(conn, error_answer(f"request too large (limit {self.max_request} bytes)"))
                return
            if is_complete_json(conn.buf):
                self._request(conn, keep_open=True)
                return

    def _at_eof(self, conn: _Conn) -> None:
        if conn.spent:
            self._drop(conn)
        elif conn.buf:
            self._request(conn)  # EOF ends the request, whatever it is (the module answers bad JSON)
        elif _can_still_read(conn.sock):  # a waiter that half-closed: it still reads its answer
            self._selector.unregister(conn.sock)
        else:
            # Sent nothing and closed: a probe (even if it was paired a moment
            # ago), or a waiter that gave up. Either way not a waiter: its
            # request goes back to waiting for one; a request given up on gets
            # none, since each waiter pairs with the latest request before it.
            self._drop(conn)

    def _request(self, conn: _Conn, answer: bytes | None = None, keep_open: bool = False) -> None:
        """``conn`` brought a complete request: owe its answer. The
        connection is closed now, or with ``keep_open`` once the answer's
        connection has come (as Hak5's loop did)."""
        request = bytes(conn.buf)
        now = time.monotonic()
        owed = _Owed(conn.seq, now, now + self.read_timeout, answer)
        if keep_open:
            conn.spent = True
            conn.buf = bytearray()
            conn.deadline = owed.deadline
            owed.source = conn
        else:
            self._drop(conn)
        self._owed.append(owed)
        if answer is None and not self.pool.offer(Task(self._compute, owed, request)):
            owed.answer = error_answer("the module is busy (too many requests waiting); try again")
        if owed.answer is not None:
            self.log.warning("refused a request: %s", owed.answer.decode("ascii", "replace"))

    def _compute(self, owed: _Owed, request: bytes) -> None:
        """On a worker thread: the answer, handed to the loop."""
        try:
            answer = self.answer(request)
        except Exception as exc:  # Module.answer never raises; an embedder's answerer might
            self.log.exception("answering a request failed")
            answer = error_answer(f"internal error: {exc}")
        self._done.append((owed, answer))
        self._wake()

    def _pair(self) -> None:
        """Each silent connection waits for the latest earlier request without a waiter."""
        unpaired = [o for o in self._owed if o.waiter is None]
        if not unpaired:
            return
        silent = (c for c in self._conns.values() if c.owed is None and not c.buf and not c.spent)
        for conn in sorted(silent, key=lambda c: c.seq):
            earlier = [o for o in unpaired if o.seq < conn.seq]
            if earlier:
                owed = earlier[-1]
                owed.waiter = conn
                conn.owed = owed
                unpaired.remove(owed)
                if owed.source is not None:
                    self._drop(owed.source)  # the request's connection is done with

    def _deliver(self, now: float) -> None:
        keep = []
        for owed in self._owed:
            waiter = owed.waiter
            if waiter is None or owed.answer is None or now < _due(owed):
                keep.append(owed)
                continue
            self._conns.pop(waiter.sock, None)
            try:
                self._selector.unregister(waiter.sock)
            except (KeyError, ValueError):
                pass  # already unregistered after its EOF
            out = _Outgoing(waiter.sock, owed.answer, now + SEND_TIMEOUT)
            self._outgoing[waiter.sock] = out
            self._selector.register(waiter.sock, selectors.EVENT_WRITE, out)
            self._write(out)
        self._owed = keep

    def _write(self, out: _Outgoing) -> None:
        try:
            sent = out.sock.send(out.data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # the waiter went away: the answer was its own, so it is simply lost
            self.log.info("an answer was not delivered: %s", exc.strerror or exc)
            sent = len(out.data)
        out.data = out.data[sent:]
        if not out.data:
            self._close_outgoing(out)

    def _close_outgoing(self, out: _Outgoing) -> None:
        self._outgoing.pop(out.sock, None)
        self._selector.unregister(out.sock)
        out.sock.close()  # EOF ends the answer

    def _flush_outgoing(self, deadline: float) -> None:
        while self._outgoing and time.monotonic() < deadline:
            for key, _events in self._selector.select(timeout=0.1):
                if isinstance(key.data, _Outgoing):
                    self._write(key.data)

    def _expire(self, now: float) -> None:
        expired = sorted((c for c in self._conns.values() if c.owed is None and c.deadline <= now),
                         key=lambda c: c.seq)
        for conn in [c for c in expired if c.spent]:  # its answer was never asked for (dropped below)
            self._drop(conn)
        expired = [c for c in expired if not c.spent]
        for conn in expired:
            if conn.buf:  # bytes that never became a complete JSON value, nor saw EOF
                self._request(conn, error_answer(f"incomplete request: not a complete JSON value and no end of "
                                                 f"input within {self.read_timeout:g}s"))
        self._pair()  # the answer connection of such a request may expire in the same turn
        for conn in expired:
            if conn.owed is None and conn.sock in self._conns:  # silent, with no request before it to wait for
                self.log.warning("a connection sent nothing and had no request to wait for")
                self._drop(conn, error_answer("no request to answer: send a request first, then connect again "
                                              "for its answer"))
        for owed in [o for o in self._owed if o.waiter is None and o.deadline <= now]:
            self.log.warning("dropped an answer: nobody connected for it within %gs", self.read_timeout)
            self._owed.remove(owed)
        for out in [o for o in self._outgoing.values() if o.deadline <= now]:
            self.log.warning("dropped a waiter that did not read its answer within %gs", SEND_TIMEOUT)
            self._close_outgoing(out)

    def _drop(self, conn: _Conn, last_words: bytes = b"") -> None:
        if self._conns.pop(conn.sock, None) is not None:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        if conn.owed is not None:
            conn.owed.waiter = None
        if conn.spent:
            last_words = b""  # never write on a request's connection
            for owed in self._owed:
                if owed.source is conn:
                    owed.source = None
        if last_words:
            _send_now(conn.sock, last_words)
        else:
            conn.sock.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # buffer full (already woken) or already closed
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except (BlockingIOError, InterruptedError, OSError):
            pass


def _can_still_read(sock: socket.socket) -> bool:
    """After EOF: did the peer only shut its writing side? Sending nothing
    fails with EPIPE once the peer has closed completely."""
    try:
        sock.send(b"")
    except OSError:
        return False
    return True


def _due(owed: _Owed) -> float:
    """When the answer may go to its paired waiter (see FRESH and SETTLE)."""
    waiter = owed.waiter
    if waiter.accepted - owed.completed <= FRESH:
        return waiter.accepted
    return waiter.accepted + SETTLE


def _send_now(sock: socket.socket, data: bytes) -> None:
    """Send a small answer without blocking the loop for long, and close."""
    try:
        sock.settimeout(1.0)
        sock.sendall(data)
    except OSError:
        pass  # the client gave up; nothing to tell anyone
    finally:
        sock.close()
