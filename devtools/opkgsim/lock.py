"""opkg's lock: a non-waiting ``lockf`` on ``/var/lock/opkg.lock``.

Mirrors opkg_conf_load()/opkg_conf_deinit(): ``creat()`` the file, take
``lockf(F_TLOCK)`` (fcntl.lockf LOCK_EX|LOCK_NB), hold it for the whole run;
at a normal exit unlock, close and **unlink** the file, as opkg-lede does.
A process killed with -9 leaves the file behind, but the lock itself died
with the process, so the stale file blocks nobody.

Also usable directly, to simulate "LuCI is running opkg"::

    with hold_lock(root):            # in-process (lockf is per process)
        ...

    python -m devtools.opkgsim.lock ROOT   # prints "locked", holds until
                                           # stdin closes or SIGTERM
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
from collections.abc import Iterator

from .conf import LOCK_FILE
from .messages import Messages


class LockError(Exception):
    """The lock could not be taken; the opkg error is already collected."""


class OpkgLock:
    """The lock held by one opkg run."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, msgs: Messages) -> None:
        """Take the lock or collect opkg's error and raise LockError."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        except OSError as exc:
            msgs.perror("opkg_conf_load", f"Could not create lock file {self.path}", exc.errno or 0)
            raise LockError from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            msgs.perror("opkg_conf_load", f"Could not lock {self.path}", exc.errno or 0)
            os.close(fd)
            raise LockError from exc
        self.fd = fd

    def release(self) -> None:
        """Unlock, close and unlink, like opkg_conf_deinit()."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def lock_path(root: str | os.PathLike[str]) -> str:
    """The lock path opkg uses under ``-o root`` (with opkg's double slash)."""
    return f"{os.fspath(root)}/{LOCK_FILE}"


@contextlib.contextmanager
def hold_lock(root: str | os.PathLike[str]) -> Iterator[str]:
    """Hold ``ROOT/var/lock/opkg.lock`` in this process (not unlinked after).

    fcntl locks belong to the process, so opkg children of this process are
    locked out while the block runs. Yields the lock path.
    """
    path = lock_path(root)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def main(argv: list[str] | None = None) -> int:
    """Hold the lock of ROOT until stdin reaches EOF or SIGTERM/SIGINT arrives.

    Prints ``locked`` (flushed) once the lock is held, so a test can wait for
    that line instead of sleeping. Exits 1 if the lock is already taken.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m devtools.opkgsim.lock ROOT\n")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with hold_lock(args[0]):
            sys.stdout.write("locked\n")
            sys.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):
                sys.stdin.read()
    except BlockingIOError:
        sys.stderr.write("lock is held by another process\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
