"""Reading a downloaded .ipk (libbb/unarchive.c, pkg_extract.c).

Only OpenWrt's layout is accepted, like opkg-lede: a gzip'd tar whose
members include ``./control.tar.gz`` and ``./data.tar.gz``.
"""
from __future__ import annotations

import contextlib
import io
import os
import tarfile


class ArchiveError(Exception):
    """The file is not an .ipk opkg-lede can read."""


def _inner_tar(ipk_path: str, member: str) -> bytes:
    try:
        with tarfile.open(ipk_path, mode="r:gz") as outer:
            for info in outer.getmembers():
                if _without_dot_slash(info.name) == member and info.isfile():
                    handle = outer.extractfile(info)
                    if handle is not None:
                        return handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ArchiveError(str(exc)) from exc
    raise ArchiveError(f"no {member} in {ipk_path}")


def _members(blob: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            result = []
            for info in tar.getmembers():
                handle = tar.extractfile(info) if info.isfile() else None
                result.append((info, handle.read() if handle else b""))
            return result
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ArchiveError(str(exc)) from exc


def _without_dot_slash(name: str) -> str:
    return name[2:] if name.startswith("./") else name  # str.removeprefix is Python 3.9+


def _relative(name: str) -> str:
    """Member name without ``./`` or ``/`` prefix; rejects ``..`` escapes."""
    rel = _without_dot_slash(name).lstrip("/")
    if any(part == ".." for part in rel.split("/")):
        raise ArchiveError(f"unsafe path in archive: {name}")
    return rel


def control_files(ipk_path: str) -> dict[str, bytes]:
    """The files of control.tar.gz by bare name (control, conffiles, postinst...)."""
    files = {}
    for info, content in _members(_inner_tar(ipk_path, "control.tar.gz")):
        rel = _relative(info.name).rstrip("/")
        if rel and not info.isdir():
            files[rel] = content
    return files


def extract_control_files(ipk_path: str, directory: str, prefix: str = "") -> dict[str, bytes]:
    """Write the control files into ``directory`` as ``PREFIX+name``."""
    files = control_files(ipk_path)
    for name, content in files.items():
        path = os.path.join(directory, prefix + name)
        _write_file(path, content, 0o755 if name in ("preinst", "postinst", "prerm", "postrm") else 0o644)
    return files


def data_entries(ipk_path: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members of data.tar.gz."""
    return _members(_inner_tar(ipk_path, "data.tar.gz"))


def data_paths(ipk_path: str) -> list[str]:
    """Relative paths of the non-directory members of data.tar.gz."""
    return [_relative(info.name) for info, _ in data_entries(ipk_path)
            if not info.isdir() and _relative(info.name)]


def extract_data(ipk_path: str, root_dir: str) -> list[str]:
    """Unpack data.tar.gz under ``root_dir``; returns the non-directory paths
    written (relative). Existing files are replaced, directories kept."""
    written = []
    for info, content in data_entries(ipk_path):
        rel = _relative(info.name).rstrip("/")
        if not rel:
            continue
        target = os.path.join(root_dir, rel)
        if info.isdir():
            os.makedirs(target, mode=0o755, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(target, info.mode & 0o7777)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target) and not os.path.isdir(target):
            os.unlink(target)
        if info.issym():
            os.symlink(info.linkname, target)
        elif info.islnk():
            os.link(os.path.join(root_dir, _relative(info.linkname)), target)
        else:
            _write_file(target, content, info.mode & 0o7777)
            os.utime(target, (info.mtime, info.mtime))
        written.append(rel)
    return written


def _write_file(path: str, content: bytes, mode: int) -> None:
    with open(path, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)
