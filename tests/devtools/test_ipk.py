"""devtools.ipk: .ipk layout, reproducibility, feed index."""
from __future__ import annotations

import gzip
import hashlib
import pathlib
import subprocess
import sys

import pytest

from devtools import ipk

CONTROL = {"Package": "foo", "Version": "1.0-1", "Depends": "libc", "Description": "Foo tool"}
FILES: dict[str, ipk.FileContent] = {
    "/usr/bin/foo": (b"#!/bin/sh\necho foo\n", 0o755),
    "/etc/config/foo": b"config foo\n",
}


def build(out: pathlib.Path, **kwargs: object) -> pathlib.Path:
    return ipk.build_ipk(out, CONTROL, FILES, conffiles=["/etc/config/foo"],
                         scripts={"postinst": "#!/bin/sh\nexit 0\n"}, **kwargs)  # type: ignore[arg-type]


def test_outer_layout_is_gzipped_tar_in_ipkg_build_order(tmp_path: pathlib.Path) -> None:
    path = build(tmp_path)
    assert path.name == "foo_1.0-1_all.ipk"
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip, not an ar archive
    names = [info.name for info in ipk.tar_entries(path.read_bytes())]
    assert names == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    _, members = ipk.read_ipk(path)
    assert members["./debian-binary"] == b"2.0\n"


def test_control_archive_holds_control_conffiles_and_executable_scripts(tmp_path: pathlib.Path) -> None:
    _, members = ipk.read_ipk(build(tmp_path))
    entries = {info.name: info for info in ipk.tar_entries(members["./control.tar.gz"])}
    # tarfile reports directories without the trailing "/" GNU tar stores
    assert sorted(entries) == [".", "./conffiles", "./control", "./postinst"]
    assert entries["./postinst"].mode == 0o755
    assert members["control/./conffiles"] == b"/etc/config/foo\n"


def test_data_archive_has_dot_slash_paths_directories_and_modes(tmp_path: pathlib.Path) -> None:
    _, members = ipk.read_ipk(build(tmp_path))
    entries = ipk.tar_entries(members["./data.tar.gz"])
    names = [info.name for info in entries]
    assert names == [".", "./etc", "./etc/config", "./etc/config/foo", "./usr", "./usr/bin", "./usr/bin/foo"]
    raw = gzip.decompress(members["./data.tar.gz"])
    assert raw[:3] == b"./\0" and b"./usr/bin/\0" in raw  # directories stored with "/"
    by_name = {info.name: info for info in entries}
    assert by_name["./usr"].isdir()
    assert by_name["./usr/bin/foo"].mode == 0o755
    assert by_name["./etc/config/foo"].mode == 0o644
    assert all(info.uid == 0 and info.gid == 0 and info.uname == "root" for info in entries)


def test_control_gets_architecture_and_installed_size_in_data_bytes(tmp_path: pathlib.Path) -> None:
    control, _ = ipk.read_ipk(build(tmp_path))
    fields = ipk.parse_control(control)
    assert fields["Architecture"] == "all"
    assert fields["Installed-Size"] == str(sum(len(c[0] if isinstance(c, tuple) else c) for c in FILES.values()))
    assert control.splitlines()[-1] == "Description: Foo tool"


def test_given_installed_size_is_kept(tmp_path: pathlib.Path) -> None:
    path = ipk.build_ipk(tmp_path, {**CONTROL, "Installed-Size": "999"}, FILES)
    assert ipk.parse_control(ipk.read_ipk(path)[0])["Installed-Size"] == "999"


def test_same_inputs_give_byte_identical_output(tmp_path: pathlib.Path) -> None:
    first = build(tmp_path / "a").read_bytes()
    second = build(tmp_path / "b").read_bytes()
    assert first == second


def test_mtime_defaults_to_source_date_epoch(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    path = build(tmp_path / "a")
    assert {info.mtime for info in ipk.tar_entries(path.read_bytes())} == {1700000000}
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert {info.mtime for info in ipk.tar_entries(build(tmp_path / "b").read_bytes())} == {0}
    assert build(tmp_path / "c", mtime=5).read_bytes() != path.read_bytes()


def test_gzip_headers_have_no_name_and_zero_mtime(tmp_path: pathlib.Path) -> None:
    blob = build(tmp_path).read_bytes()
    flags, mtime = blob[3], int.from_bytes(blob[4:8], "little")
    assert flags & 0x08 == 0 and mtime == 0


def test_bad_inputs_are_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError):
        ipk.build_ipk(tmp_path, {"Package": "x"}, {})
    with pytest.raises(ValueError):
        ipk.build_ipk(tmp_path, CONTROL, FILES, scripts={"evil": ""})


def test_index_inserts_filename_size_sha256_before_description(tmp_path: pathlib.Path) -> None:
    path = build(tmp_path)
    ipk.build_ipk(tmp_path, {"Package": "bar", "Version": "2"}, {"/x": b"x"})
    gz_path = ipk.index_feed(tmp_path)
    text = (tmp_path / "Packages").read_text()
    blob = path.read_bytes()
    stanza = text.split("\n\n")[1]  # "bar" sorts before "foo"
    assert stanza.splitlines() == [
        "Package: foo", "Version: 1.0-1", "Depends: libc", "Architecture: all",
        f"Installed-Size: {len(FILES['/etc/config/foo']) + len(FILES['/usr/bin/foo'][0])}",  # type: ignore[index]
        "Filename: foo_1.0-1_all.ipk", f"Size: {len(blob)}",
        f"SHA256sum: {hashlib.sha256(blob).hexdigest()}", "Description: Foo tool",
    ]
    assert text.split("\n\n")[0].splitlines()[-1].startswith("SHA256sum: ")  # no Description: appended
    assert gzip.decompress(gz_path.read_bytes()).decode() == text


def test_index_is_reproducible(tmp_path: pathlib.Path) -> None:
    build(tmp_path)
    first = ipk.index_feed(tmp_path).read_bytes()
    assert ipk.index_feed(tmp_path).read_bytes() == first


def test_cli_index(tmp_path: pathlib.Path) -> None:
    build(tmp_path)
    result = subprocess.run([sys.executable, "-m", "devtools.ipk", "index", str(tmp_path)],
                            capture_output=True, text=True, timeout=30, check=True,
                            cwd=pathlib.Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == str(tmp_path / "Packages.gz")
    assert "Package: foo" in (tmp_path / "Packages").read_text()


def test_multiline_description_round_trips(tmp_path: pathlib.Path) -> None:
    path = ipk.build_ipk(tmp_path, {**CONTROL, "Description": "first\nsecond line"}, FILES)
    control, _ = ipk.read_ipk(path)
    assert control.endswith("Description: first\n second line\n")
    assert ipk.parse_control(control)["Description"] == "first\n second line"
