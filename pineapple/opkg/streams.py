"""opkg's stdout (a pty) and stderr (a pipe), read by us to the end.

sh reads a command's output on its own thread and stops reading 2 s after
the process exited, whether or not it has read everything (that bounds a
wait on a maintainer script's background child that keeps the streams
open). On a busy device that thread can be more than 2 s behind, and the
last lines opkg printed before exiting (``Configuring x.``, its
``Collected errors:`` block) were lost. So opkg gets file descriptors we
own, and :meth:`OutputStreams.drain` reads them until end of file; once opkg
has exited it stops only after the streams had nothing to read for
:data:`QUIET_AFTER_EXIT` seconds (then only such a descendant still holds
them). What was written before the exit is always read: the decision looks
at whether anything is readable, not at how long reading took.
"""
from __future__ import annotations

import errno
import os
import select
import time
import tty
from typing import Any, Callable

QUIET_AFTER_EXIT = 2.0  # seconds of silence after opkg exited before the streams are given up
_POLL_MS = 100
_READ_SIZE = 65536

Sink = Callable[[str], None]


class OutputStreams:
    """A pty for opkg's stdout (so it line-buffers) and a pipe for its stderr."""

    def __init__(self) -> None:
        self._out_read, self.child_out = os.openpty()  # both not inheritable (PEP 446)
        try:
            tty.setraw(self.child_out)  # no newline translation: we are no terminal
            self._err_read, self.child_err = os.pipe()
        except BaseException:
            _close(self._out_read, self.child_out)
            raise

    def started(self) -> None:
        """The child has its copies: close ours, so the ends see end of file."""
        _close(self.child_out, self.child_err)
        self.child_out = self.child_err = -1

    def close(self) -> None:
        _close(self._out_read, self._err_read, self.child_out, self.child_err)
        self._out_read = self._err_read = self.child_out = self.child_err = -1

    def drain(self, process: Any, on_out: Sink, on_err: Sink) -> int:
        """Read both streams to the end (each line to ``on_out``, without its
        newline; stderr in lines to ``on_err``, with theirs), reap ``process``
        (an sh ``OProc``) and return its exit status."""
        lines = {self._out_read: _Lines(on_out, keep_newline=False), self._err_read: _Lines(on_err, keep_newline=True)}
        poller = select.poll()
        for fd in lines:
            poller.register(fd, select.POLLIN | select.POLLPRI)
        exited_at = last_data = None
        try:
            while lines:
                ready = poller.poll(_POLL_MS)
                for fd, _ in ready:
                    data = _read(fd)
                    if data:
                        lines[fd].feed(data)
                        last_data = time.monotonic()
                    else:
                        poller.unregister(fd)
                        lines.pop(fd).end()
                if exited_at is None:
                    if not process.is_alive()[0]:
                        exited_at = time.monotonic()
                elif not ready and time.monotonic() - max(exited_at, last_data or 0.0) >= QUIET_AFTER_EXIT:
                    break  # opkg is gone; a silent descendant holds the streams
            for rest in lines.values():
                rest.end()
        finally:
            self.close()
        code = process.wait()
        return 255 if code is None else code


class _Lines:
    """Bytes in, decoded lines out (UTF-8; bad bytes replaced)."""

    def __init__(self, sink: Sink, keep_newline: bool) -> None:
        self._sink, self._keep, self._partial = sink, keep_newline, b""

    def feed(self, data: bytes) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        for line in complete:
            self._emit(line)

    def end(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, b""
            self._emit(partial, newline=False)

    def _emit(self, line: bytes, newline: bool = True) -> None:
        text = line.decode("utf-8", "replace")
        self._sink(text + "\n" if self._keep and newline else text.rstrip("\r"))


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, _READ_SIZE)
    except OSError as exc:
        if exc.errno == errno.EIO:  # a pty whose other side is closed: end of file
            return b""
        raise


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
