"""devtools/tarball.py: ustar archives that are the same bytes on every Python
and read back by ``tarfile`` (and opkg, in tests/openwrt)."""
from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from devtools import tarball


def test_a_header_reads_back_and_long_names_use_the_prefix():
    long_name = "pineapple-jobd-0.1.0/" + "d" * 90 + "/" + "x" * 60  # over 100 bytes: uses the prefix field
    header = tarball.header(long_name, 5, 0o644, 0)
    info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    assert (info.name, info.size, info.mode, info.uid, info.gid, info.uname) == (long_name, 5, 0o644, 0, 0, "root")
    with pytest.raises(ValueError, match="too long"):
        tarball.header("x" * 101, 0, 0o644, 0)


def test_unused_fields_are_nul_bytes():
    # What tarfile writes there differs between Pythons (device numbers of a
    # regular file): here they are always empty, so the bytes never depend on it.
    header = tarball.header("./usr/bin/tool", 3, 0o755, 1700000000)
    assert header[329:345] == bytes(16)
    assert header[257:265] == b"ustar\x0000"


def test_an_archive_of_files_and_directories():
    entries = [("./", b"", 0o755), ("./etc/", b"", 0o755), ("./etc/config", b"hello", 0o600)]
    data = tarball.tar_bytes(entries, 1700000000)
    assert len(data) % tarball.RECORD == 0  # whole records, as GNU tar writes them
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        infos = tar.getmembers()
        assert [(i.name, i.isdir(), i.mode, i.mtime) for i in infos] == [
            (".", True, 0o755, 1700000000), ("./etc", True, 0o755, 1700000000),
            ("./etc/config", False, 0o600, 1700000000)]
        assert tar.extractfile(infos[2]).read() == b"hello"


def test_gzip_has_no_name_and_no_time():
    blob = tarball.gzip_bytes(b"data")
    assert blob[3] == 0 and blob[4:8] == bytes(4)  # no FNAME flag, MTIME 0
    assert gzip.decompress(blob) == b"data"
