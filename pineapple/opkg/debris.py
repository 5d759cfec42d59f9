"""What opkg's own ``remove`` leaves behind after a rolled-back install:
the directories the install created, and "not-installed" stanzas; and
what an opkg that died unrecorded unpacked (:func:`delete_unrecorded`).

opkg lists a package's *files* in ``info/NAME.list`` (no directories) and
``remove`` deletes only those, so every directory an install created stays,
empty. A rollback is meant to leave the device as it was, so it reads the
lists before removing and afterwards removes the directories that are then
empty, deepest first. Never a dest's own directory or opkg's state
directory; an empty directory that existed before the install and received
its files goes too (opkg recreates it when a package needs it) — see
docs/opkg.md."""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
from collections.abc import Iterable, Iterator

from .conf import STATE_DIR, OpkgConf
from .status import InstalledPackage


def listed_files(conf: OpkgConf, installed: dict[str, InstalledPackage], names: Iterable[str]) -> list[str]:
    """Host paths of the files opkg lists for ``names`` (read them before a remove)."""
    found: list[str] = []
    for name in names:
        package = installed.get(name)
        if package is not None:
            found.extend(_listed(conf, package.dest, name))
    return found


def delete_unrecorded(conf: OpkgConf, names: Iterable[str],
                      installed: dict[str, InstalledPackage]) -> tuple[list[str], list[str]]:
    """What an opkg that died without writing its status database (SIGKILL,
    or a write to an output nobody reads any more) unpacked for ``names``:
    packages the database does not know whose ``info/NAME.*`` files exist.
    Deletes the files their ``NAME.list`` names (unless a known package
    lists them too), then ``info/NAME.*``; returns (the names, the host
    paths of the files deleted) for :func:`remove_emptied_dirs`."""
    found = {name: dest for name in names if name not in installed
             for dest in conf.dest_names() if glob.glob(_info_glob(conf, dest, name))}
    if not found:
        return [], []
    owned = set(listed_files(conf, installed, installed))
    deleted = []
    for name, dest in found.items():
        for path in _listed(conf, dest, name):
            if path not in owned and _unlink(path):
                deleted.append(path)
        for path in glob.glob(_info_glob(conf, dest, name)):
            _unlink(path)
    return sorted(found), deleted


def _listed(conf: OpkgConf, dest: str, name: str) -> list[str]:
    try:
        with open(os.path.join(conf.info_dir(dest), f"{name}.list"),
                  encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    # A line is a path as seen on the device (newer opkg may add a tab and a mode).
    return [conf.host_path(line.split("\t", 1)[0]) for line in lines if line.strip()]


def _info_glob(conf: OpkgConf, dest: str, name: str) -> str:
    return os.path.join(glob.escape(conf.info_dir(dest)), f"{glob.escape(name)}.*")


def _unlink(path: str) -> bool:
    """Delete a file (never a directory); False when it was not there."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def remove_emptied_dirs(conf: OpkgConf, files: Iterable[str]) -> list[str]:
    """rmdir each parent of ``files`` that is empty now, deepest first; the
    directories removed."""
    keep = set()
    for dest in conf.dest_names():
        root = os.path.normpath(conf.dest_path(dest))
        keep.update({root, os.path.join(root, STATE_DIR), os.path.join(root, STATE_DIR, "info")})
    top = os.path.normpath(conf.host_path("/"))
    keep.add(top)
    candidates = set()
    for path in files:
        parent = os.path.dirname(os.path.normpath(path))
        if not parent.startswith(top.rstrip(os.sep) + os.sep):
            continue
        while parent not in keep and parent not in candidates and parent != os.path.dirname(parent):
            candidates.add(parent)
            parent = os.path.dirname(parent)
    removed = []
    for directory in sorted(candidates, key=lambda p: p.count(os.sep), reverse=True):
        try:
            os.rmdir(directory)  # only ever an empty one
        except OSError:
            continue
        removed.append(directory)
    return removed


# ------------------------------------------------------------ placeholders
# opkg also leaves a "not-installed" stanza in its status file for a package
# it was asked to install and did not (its download was interrupted, say):
# Status "install user not-installed" is kept by every later opkg write. A
# rollback drops the ones its own run added, under opkg's lock.


def placeholders(conf: OpkgConf) -> set[str]:
    """Names with a ``not-installed`` stanza in any dest's status file."""
    return {name for path in conf.status_paths().values() for name, _ in _placeholder_chunks(_read(path))}


def drop_placeholders(conf: OpkgConf, names: Iterable[str]) -> list[str]:
    """Remove the ``not-installed`` stanzas of ``names`` from the status
    files, holding opkg's lock as opkg does (nothing is done when another
    process holds it); the names dropped."""
    wanted = set(names)
    if not wanted:
        return []
    dropped: list[str] = []
    with _opkg_lock(conf.lock_path()) as locked:
        if not locked:
            return []
        for path in conf.status_paths().values():
            text = _read(path)
            chunks = _chunks(text)
            keep = [chunk for chunk in chunks if _placeholder_name(chunk) not in wanted]
            if len(keep) != len(chunks):
                dropped += [name for name in map(_placeholder_name, chunks) if name in wanted]
                _replace(path, "".join(keep))
    return dropped


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return ""


def _chunks(text: str) -> list[str]:
    """The stanzas of a status file, each with the blank line after it, so
    that joining them gives the file back byte for byte."""
    chunks, current = [], []
    for line in text.splitlines(keepends=True):
        current.append(line)
        if not line.strip():
            chunks.append("".join(current))
            current = []
    if current:
        chunks.append("".join(current))
    return chunks


def _placeholder_name(chunk: str) -> str | None:
    name = status = None
    for line in chunk.splitlines():
        if line.startswith("Package:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("Status:"):
            status = line.partition(":")[2].split()
    return name if status and status[-1] == "not-installed" else None


def _placeholder_chunks(text: str) -> list[tuple[str, str]]:
    return [(name, chunk) for chunk in _chunks(text) for name in [_placeholder_name(chunk)] if name]


def _replace(path: str, text: str) -> None:
    """Write atomically (opkg itself rewrites in place), keeping the mode."""
    tmp = f"{path}.pineapple-tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)


@contextlib.contextmanager
def _opkg_lock(path: str) -> Iterator[bool]:
    """opkg's own lock: creat() + lockf(F_TLOCK), unlinked at the end as
    opkg does; yields False (and leaves the file alone) when it is busy."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)
