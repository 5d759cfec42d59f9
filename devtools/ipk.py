"""Build OpenWrt ``.ipk`` packages and feed indexes, reproducibly.

The layout is the one opkg-lede reads (and OpenWrt's ``ipkg-build`` writes):
a gzip'd tar holding ``./debian-binary`` ("2.0\\n"), ``./data.tar.gz`` and
``./control.tar.gz``. An ``ar`` outer (Debian/Yocto style) is refused by
opkg-lede with "Malformed package file", so it is never produced here.

The same inputs give byte-identical output, whichever Python packs them:
every tar member has the same mtime (``mtime`` argument, else
``SOURCE_DATE_EPOCH``, else 0), uid/gid 0, owner names "root", and members
are sorted; the ustar headers and gzip are devtools/tarball.py's.

CLI::

    python -m devtools.ipk index FEED_DIR     # write FEED_DIR/Packages{,.gz}
    python -m devtools.ipk show PKG.ipk       # print the control file
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import pathlib
import sys
import tarfile
from collections.abc import Iterable, Mapping
from typing import Tuple, Union

from devtools.tarball import gzip_bytes, tar_bytes

FileContent = Union[bytes, Tuple[bytes, int]]

DEBIAN_BINARY = b"2.0\n"
SCRIPT_NAMES = ("preinst", "postinst", "prerm", "postrm")
# Field order OpenWrt's package makefiles write in a control file; fields not
# listed keep their given order after these.
CONTROL_FIELD_ORDER = (
    "Package", "Version", "Depends", "Provides", "Conflicts", "Replaces",
    "Source", "SourceName", "License", "LicenseFiles", "Section",
    "Require-User", "Architecture", "Installed-Size", "Maintainer",
)
DEFAULT_FILE_MODE = 0o644
DIR_MODE = 0o755
SCRIPT_MODE = 0o755


def default_mtime() -> int:
    """The timestamp used for every archive member: SOURCE_DATE_EPOCH or 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else 0


def ipk_filename(control: Mapping[str, str]) -> str:
    """``{Package}_{Version}_{Architecture}.ipk`` as OpenWrt names packages."""
    return f"{control['Package']}_{control['Version']}_{control.get('Architecture', 'all')}.ipk"


def build_ipk(
    out_dir: str | os.PathLike[str],
    control: Mapping[str, str],
    files: Mapping[str, FileContent],
    *,
    conffiles: Iterable[str] = (),
    scripts: Mapping[str, str] | None = None,
    mtime: int | None = None,
) -> pathlib.Path:
    """Write an .ipk into ``out_dir`` and return its path.

    ``control`` needs at least Package and Version; Architecture defaults to
    ``all`` and Installed-Size to the bytes of regular file data (what
    OpenWrt's ``verify_pkg_installable`` divides by 1024). ``files`` maps
    absolute target paths to content or ``(content, mode)``. ``conffiles`` are
    absolute paths (normally also in ``files``). ``scripts`` maps
    preinst/postinst/prerm/postrm to shell text.
    """
    stamp = default_mtime() if mtime is None else mtime
    fields = _complete_control(control, files)
    data_tar = _tar_gz(_data_members(files), stamp)
    control_tar = _tar_gz(_control_members(fields, conffiles, scripts or {}), stamp)
    outer = [
        # ipkg-build's member order; opkg-lede finds members by name.
        _Member("./debian-binary", DEBIAN_BINARY, DEFAULT_FILE_MODE),
        _Member("./data.tar.gz", data_tar, DEFAULT_FILE_MODE),
        _Member("./control.tar.gz", control_tar, DEFAULT_FILE_MODE),
    ]
    path = pathlib.Path(out_dir) / ipk_filename(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_tar_gz(outer, stamp, sort=False))
    return path


def format_control(fields: Mapping[str, str]) -> str:
    """Render control fields as a stanza ending in one newline."""
    lines = []
    for name, value in fields.items():
        first, *rest = str(value).split("\n")
        lines.append(f"{name}: {first}")
        # Continuation lines of a multi-line value must start with a space.
        lines.extend(line if line.startswith(" ") else f" {line}" for line in rest)
    return "\n".join(lines) + "\n"


def parse_control(text: str) -> dict[str, str]:
    """Parse one control stanza (continuation lines joined with newlines)."""
    fields: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and last is not None:
            fields[last] += "\n" + line
        elif ":" in line:
            last, _, value = line.partition(":")
            last = last.strip()
            fields[last] = value.strip()
    return fields


def read_ipk(path: str | os.PathLike[str]) -> tuple[str, dict[str, bytes]]:
    """Return ``(control_text, members)`` of an .ipk.

    ``members`` maps names to bytes: the outer members (``./debian-binary``,
    ``./data.tar.gz``, ``./control.tar.gz``), then ``control/NAME`` for each
    control-archive file and ``data/PATH`` for each data file (PATH keeps its
    ``./`` prefix; directories map to ``b""`` and end in ``/``).
    """
    members: dict[str, bytes] = {}
    for name, content in _read_tar_gz(pathlib.Path(path).read_bytes()):
        members[name] = content
    for prefix, inner in (("control/", "./control.tar.gz"), ("data/", "./data.tar.gz")):
        for name, content in _read_tar_gz(members[inner]):
            members[prefix + name] = content
    return members["control/./control"].decode(), members


def tar_entries(tar_gz: bytes) -> list[tarfile.TarInfo]:
    """The TarInfo headers of a gzip'd tar, in archive order (for tests)."""
    with tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as tar:
        return tar.getmembers()


def index_feed(feed_dir: str | os.PathLike[str]) -> pathlib.Path:
    """Write ``Packages`` and ``Packages.gz`` for every *.ipk in ``feed_dir``.

    Each stanza is the package's control file with ``Filename``, ``Size`` and
    ``SHA256sum`` inserted before ``Description:`` (as OpenWrt's
    ipkg-make-index.sh does; appended when there is no Description).
    Returns the path of Packages.gz.
    """
    feed = pathlib.Path(feed_dir)
    stanzas = [index_stanza(ipk) for ipk in sorted(feed.glob("*.ipk"))]
    text = "\n".join(stanzas)
    (feed / "Packages").write_text(text)
    gz_path = feed / "Packages.gz"
    gz_path.write_bytes(gzip_bytes(text.encode()))
    return gz_path


def index_stanza(ipk: pathlib.Path) -> str:
    """One feed-index stanza (ending in a newline) for ``ipk``."""
    control_text, _ = read_ipk(ipk)
    blob = ipk.read_bytes()
    extra = (
        f"Filename: {ipk.name}\n"
        f"Size: {len(blob)}\n"
        f"SHA256sum: {hashlib.sha256(blob).hexdigest()}\n"
    )
    lines = control_text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("Description:"):
            return "".join(lines[:i]) + extra + "".join(lines[i:])
    return control_text + extra


def corrupt_index(feed_dir: str | os.PathLike[str]) -> None:
    """Make a feed's index unreadable: Packages.gz stops being gzip data and
    Packages becomes text with no stanza. (A fault for tests; what the opkg
    stand-in then does is documented in devtools/README.md.)"""
    feed = pathlib.Path(feed_dir)
    (feed / "Packages.gz").write_bytes(b"this is not gzip data\n")
    (feed / "Packages").write_text("<html>502 Bad Gateway</html>\n")


# -- internals -------------------------------------------------------------


class _Member:
    """One tar member to write: a file (``content`` bytes) or a directory."""

    def __init__(self, name: str, content: bytes | None, mode: int) -> None:
        self.name = name
        self.content = content
        self.mode = mode

    @property
    def is_dir(self) -> bool:
        return self.content is None


def _complete_control(control: Mapping[str, str], files: Mapping[str, FileContent]) -> dict[str, str]:
    """Control fields in OpenWrt's order with Architecture/Installed-Size filled."""
    for required in ("Package", "Version"):
        if not control.get(required):
            raise ValueError(f"control needs a {required} field")
    fields = dict(control)
    fields.setdefault("Architecture", "all")
    fields.setdefault("Installed-Size", str(sum(len(_content(c)) for c in files.values())))
    ordered = {name: fields[name] for name in CONTROL_FIELD_ORDER if name in fields}
    ordered.update((k, v) for k, v in fields.items() if k not in ordered and k != "Description")
    if "Description" in fields:
        ordered["Description"] = fields["Description"]
    return ordered


def _content(value: FileContent) -> bytes:
    return value[0] if isinstance(value, tuple) else value


def _mode(value: FileContent) -> int:
    return value[1] if isinstance(value, tuple) else DEFAULT_FILE_MODE


def _data_members(files: Mapping[str, FileContent]) -> list[_Member]:
    """Files plus every parent directory, as ``./``-prefixed members."""
    members = {"./": _Member("./", None, DIR_MODE)}
    for target, value in files.items():
        rel = target.strip("/")
        if not rel or target.endswith("/"):
            raise ValueError(f"not a file path: {target!r}")
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            name = "./" + "/".join(parts[:depth]) + "/"
            members.setdefault(name, _Member(name, None, DIR_MODE))
        members["./" + rel] = _Member("./" + rel, _content(value), _mode(value))
    return list(members.values())


def _control_members(
    fields: Mapping[str, str], conffiles: Iterable[str], scripts: Mapping[str, str]
) -> list[_Member]:
    members = [
        _Member("./", None, DIR_MODE),
        _Member("./control", format_control(fields).encode(), DEFAULT_FILE_MODE),
    ]
    conffile_list = list(conffiles)
    if conffile_list:
        text = "".join(f"{path}\n" for path in conffile_list)
        members.append(_Member("./conffiles", text.encode(), DEFAULT_FILE_MODE))
    for name, body in scripts.items():
        if name not in SCRIPT_NAMES:
            raise ValueError(f"unknown maintainer script {name!r}")
        members.append(_Member(f"./{name}", body.encode(), SCRIPT_MODE))
    return members


def _tar_gz(members: list[_Member], mtime: int, *, sort: bool = True) -> bytes:
    """A reproducible gzip'd tar of ``members`` (devtools/tarball.py)."""
    ordered = sorted(members, key=lambda m: m.name) if sort else members
    return gzip_bytes(tar_bytes([(m.name, b"" if m.is_dir else m.content, m.mode) for m in ordered], mtime))


def _read_tar_gz(blob: bytes) -> Iterable[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for info in tar.getmembers():
            name = info.name + "/" if info.isdir() and not info.name.endswith("/") else info.name
            handle = tar.extractfile(info) if info.isfile() else None
            yield name, handle.read() if handle else b""


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.ipk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    index = sub.add_parser("index", help="write Packages and Packages.gz for a feed directory")
    index.add_argument("feed_dir")
    show = sub.add_parser("show", help="print an .ipk's control file")
    show.add_argument("ipk")
    args = parser.parse_args(argv)
    if args.command == "index":
        print(index_feed(args.feed_dir))
    else:
        sys.stdout.write(read_ipk(args.ipk)[0])
    return 0


if __name__ == "__main__":
    sys.exit(_main())
