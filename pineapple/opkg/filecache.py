"""Parse files once, reuse the result while they are unchanged.

A :class:`FileCache` keeps what its loader built from some files and the
``stat`` signature of those files (inode, size, mtime and ctime in
nanoseconds; "missing" is a signature too). A lookup stats the files again
(a few microseconds) and loads anew only when a signature differs.

Another opkg (LuCI, a shell, cron) rewrites the status file in place, so
its inode stays the same; its size, mtime and ctime change. The one case a
signature cannot see is a rewrite of the same size within the timestamp
granularity of the filesystem (one second on jffs2, two on FAT). So, as git
does for its index, a result read while any of its files was changed less
than :data:`RACY_WINDOW` seconds before the read began is not trusted: the
next lookup loads again, until a load finds all the files older than that.
Right after opkg ran, lookups cost a parse for a couple of seconds; a file
with a timestamp in the future (a router whose clock is not set yet) is
parsed every time, never served stale.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
RACY_WINDOW = 2.0  # seconds


def signature(paths: Iterable[str]) -> tuple[tuple[int, int, int, int] | None, ...]:
    """(inode, size, mtime_ns, ctime_ns) of each path; None for a missing one."""
    found = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
            continue
        found.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(found)


class FileCache(Generic[T]):
    """What ``load()`` built, reused while the files it names are unchanged.

    ``load`` returns ``(value, paths)``: the value and every file (or
    directory) it depends on, missing ones included. ``clock`` is the wall
    clock that file timestamps are compared with. Thread-safe: one load at a
    time, lookups of a valid value do not wait for each other beyond a stat.
    """

    def __init__(self, load: Callable[[], tuple[T, Sequence[str]]], clock: Callable[[], float] = time.time) -> None:
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._paths: tuple[str, ...] | None = None
        self._signature: tuple = ()
        self._trusted = False
        self.loads = 0  # how many times the files were parsed (for tests and stats)

    def get(self) -> T:
        """The value for the files as they are now."""
        with self._lock:
            if self._trusted and self._paths is not None and signature(self._paths) == self._signature:
                return self._value  # type: ignore[return-value]
            started = self._clock()
            value, paths = self._load()
            self.loads += 1
            self._paths = tuple(paths)
            self._signature = signature(self._paths)
            self._value = value
            self._trusted = _settled(self._signature, started)
            return value

    def clear(self) -> None:
        """Forget the value (the next lookup loads)."""
        with self._lock:
            self._value, self._paths, self._signature, self._trusted = None, None, (), False


def _settled(sig: tuple, started: float) -> bool:
    """True when no file changed within RACY_WINDOW before the load began."""
    limit = (started - RACY_WINDOW) * 1e9
    return all(entry is None or max(entry[2], entry[3]) < limit for entry in sig)
