"""Reproducible ``.tar.gz`` bytes: the release tarball (tools/mkdist.py) and
the ``.ipk`` archives (devtools/ipk.py) are both written with these.

The tar headers are plain POSIX ustar, written here byte for byte rather
than by ``tarfile``: ``tarfile`` changed how it fills the fields a member
does not use (the device numbers of a regular file: ``0000000`` up to
Python 3.10, NUL bytes from 3.11), so the same files gave different bytes
depending on the Python that packed them. Every member has owner root
(uid/gid 0), the given mode and time; the archive ends with two zero blocks
and is padded to whole 10 KiB records, as GNU tar (OpenWrt's ``ipkg-build``)
writes it, so its length (what ``Installed-Size`` counts) is the same as
theirs. gzip gets no file name and time 0.
"""
from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from typing import Tuple

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default blocking factor
# (name, content, mode): a name ending in "/" is a directory (its content is b"").
Entry = Tuple[str, bytes, int]


def header(name: str, size: int, mode: int, mtime: int, directory: bool = False) -> bytes:
    """One ustar header block; ValueError for a name ustar cannot hold
    (over 100 bytes after the last "/" within the first 156)."""
    encoded = name.encode("utf-8")
    prefix = b""
    if len(encoded) > 100:
        cut = encoded.rfind(b"/", 0, 156)
        prefix, encoded = encoded[:cut], encoded[cut + 1:]
        if not 0 < cut or len(encoded) > 100:
            raise ValueError(f"{name}: too long for a ustar header")

    def number(value: int, width: int) -> bytes:
        return b"%0*o\0" % (width - 1, value)

    block = bytearray(BLOCK)
    fields = [(0, encoded.ljust(100, b"\0")), (100, number(mode, 8)), (108, number(0, 8)), (116, number(0, 8)),
              (124, number(size, 12)), (136, number(mtime, 12)), (148, b" " * 8),
              (156, b"5" if directory else b"0"), (257, b"ustar\0"), (263, b"00"),
              (265, b"root".ljust(32, b"\0")), (297, b"root".ljust(32, b"\0")), (345, prefix.ljust(155, b"\0"))]
    for offset, value in fields:
        block[offset:offset + len(value)] = value
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def tar_bytes(entries: Iterable[Entry], mtime: int) -> bytes:
    """An uncompressed tar of ``entries``, in the order given."""
    raw = bytearray()
    for name, data, mode in entries:
        raw += header(name, len(data), mode, mtime, directory=name.endswith("/"))
        raw += data + bytes(-len(data) % BLOCK)
    raw += bytes(2 * BLOCK)  # two zero blocks end the archive
    raw += bytes(-len(raw) % RECORD)
    return bytes(raw)


def gzip_bytes(data: bytes) -> bytes:
    """gzip ``data`` with a reproducible header (time 0, no file name)."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as compressed:
        compressed.write(data)
    return out.getvalue()
