"""FileCache: parse once, reuse while the files are unchanged, and never
trust a read taken while a file may still change unseen."""
from __future__ import annotations

import os
import time

from pineapple.opkg.filecache import RACY_WINDOW, FileCache, signature


class Reader:
    """Loads the text of some files and counts the loads."""

    def __init__(self, *paths):
        self.paths = [str(p) for p in paths]

    def __call__(self):
        texts = []
        for path in self.paths:
            try:
                with open(path) as handle:
                    texts.append(handle.read())
            except FileNotFoundError:
                texts.append(None)
        return texts, self.paths


def later():
    """A wall clock a minute ahead: every file written so far has settled."""
    return time.time() + 60


def test_reused_while_unchanged(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: a\n")
    cache = FileCache(Reader(status), clock=later)
    assert cache.get() == ["Package: a\n"]
    assert cache.get() == ["Package: a\n"]
    assert cache.loads == 1


def test_a_rewrite_in_place_is_seen(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: a\n")
    cache = FileCache(Reader(status), clock=later)
    cache.get()
    before = os.stat(status)
    with open(status, "w") as handle:  # as opkg writes it: same inode
        handle.write("Package: b\n")   # same size too
    os.utime(status, ns=(before.st_atime_ns, before.st_mtime_ns))  # an mtime that says nothing: the ctime moved
    after = os.stat(status)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert cache.get() == ["Package: b\n"]


def test_a_file_appearing_or_vanishing_is_seen(tmp_path):
    extra = tmp_path / "extra.conf"
    cache = FileCache(Reader(extra), clock=later)
    assert cache.get() == [None]
    extra.write_text("dest sd /mnt/sd\n")
    assert cache.get() == ["dest sd /mnt/sd\n"]
    extra.unlink()
    assert cache.get() == [None]


def test_a_fresh_file_is_read_again_until_it_settles(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: a\n")
    written = os.stat(status).st_mtime
    now = [written + 0.1]
    cache = FileCache(Reader(status), clock=lambda: now[0])
    cache.get()
    cache.get()
    assert cache.loads == 2  # changed just before the read: a same-size change in that second would be unseen
    now[0] = written + RACY_WINDOW + 1.0
    cache.get()
    cache.get()
    assert cache.loads == 3  # settled: reused from now on


def test_a_file_from_the_future_is_never_trusted(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: a\n")
    future = os.stat(status).st_mtime + 3600  # a router whose clock is not set yet
    os.utime(status, (future, future))
    cache = FileCache(Reader(status))
    cache.get()
    cache.get()
    assert cache.loads == 2


def test_a_failing_load_is_not_kept(tmp_path):
    calls = []

    def load():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("not yet")
        return "ok", []

    cache = FileCache(load)
    try:
        cache.get()
    except OSError:
        pass
    assert cache.get() == "ok" and len(calls) == 2


def test_signature_names_missing_files(tmp_path):
    present = tmp_path / "a"
    present.write_text("x")
    sig = signature([str(present), str(tmp_path / "missing")])
    assert sig[1] is None and sig[0][1] == 1
