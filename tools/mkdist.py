"""Build the release tarball ``pineapple-jobd-<version>.tar.gz`` reproducibly.

    python tools/mkdist.py [--out dist] [--commit REV] [--repo CHECKOUT]

The tarball is what openwrt/pineapple-jobd/Makefile downloads as
``PKG_SOURCE`` and checks against ``PKG_HASH``: everything the standard
OpenWrt Python build (``Py3Build``: ``python -m build --wheel`` on 22.03 and
later, ``setup.py install`` on 19.07/21.02) needs from the project, under
``pineapple-jobd-<version>/``: ``setup.py``, ``README.md`` (the long
description), ``LICENSE`` and the ``pineapple`` package. Nothing of
``openwrt/`` (the feed would otherwise hash itself).

Reproducible: the files are the ones git tracks (untracked and ignored files
never get in), read from the working tree, or with ``--commit`` from that
commit (``--commit v0.1.0`` rebuilds the release). Every member gets the
commit's time (``SOURCE_DATE_EPOCH`` overrides it), owner root, mode 0644
or 0755 as git records it, sorted names, POSIX ustar headers and gzip
without name or time (devtools/tarball.py, the same on every Python). The
same inputs give the same bytes with the same zlib.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python tools/mkdist.py`: devtools.* imports from the checkout
    sys.path.insert(0, str(REPO))
NAME = "pineapple-jobd"
DIST_PATHS = ("setup.py", "README.md", "LICENSE", "pineapple")


class DistError(Exception):
    """The tarball cannot be built (no git checkout, unknown commit, ...)."""


class Member(NamedTuple):
    path: str       # relative to the project root
    data: bytes
    executable: bool


def project_version(files: dict[str, Member]) -> str:
    """``__version__`` of pineapple/__init__.py among ``files``."""
    text = files["pineapple/__init__.py"].data.decode("utf-8")
    match = re.search(r'__version__ = "([^"]+)"', text)
    if not match:
        raise DistError("pineapple/__init__.py has no __version__")
    return match.group(1)


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, timeout=60)
    except OSError as exc:
        raise DistError(f"cannot run git: {exc}") from None
    if done.returncode != 0:
        raise DistError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def tracked_files(repo: Path = REPO, commit: str | None = None) -> dict[str, Member]:
    """The dist files git tracks: from the working tree, or from ``commit``."""
    if commit is None:
        listing = _git(repo, "ls-files", "-s", "-z", "--", *DIST_PATHS)
    else:
        listing = _git(repo, "ls-tree", "-r", "-z", commit, "--", *DIST_PATHS)
    entries = []
    for record in filter(None, listing.split(b"\0")):
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        mode, blob = fields[0].decode(), fields[1 if commit is None else 2].decode()
        entries.append((path.decode("utf-8"), mode, blob))
    if not entries:
        raise DistError(f"git tracks none of {', '.join(DIST_PATHS)} in {repo}")
    members = {}
    for path, mode, blob in entries:
        if mode not in ("100644", "100755"):
            raise DistError(f"{path}: mode {mode} (symlink or submodule) cannot go into the tarball")
        data = (repo / path).read_bytes() if commit is None else _git(repo, "cat-file", "blob", blob)
        members[path] = Member(path, data, mode == "100755")
    return members


def commit_time(repo: Path = REPO, commit: str = "HEAD") -> int:
    """``SOURCE_DATE_EPOCH``, else the commit's time."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isdigit():
        return int(value)
    return int(_git(repo, "log", "-1", "--format=%ct", commit).decode().strip())


def tarball_bytes(files: dict[str, Member], version: str, mtime: int) -> bytes:
    """The gzip'd tar of ``files`` under ``pineapple-jobd-<version>/``."""
    from devtools.tarball import gzip_bytes, tar_bytes

    top = f"{NAME}-{version}"
    directories = {top}
    for path in files:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directories.add("/".join([top, *parts[:depth]]))
    entries = [(f"{name}/", b"", 0o755) for name in directories]
    entries += [(f"{top}/{path}", member.data, 0o755 if member.executable else 0o644)
                for path, member in files.items()]
    try:
        return gzip_bytes(tar_bytes(sorted(entries), mtime))
    except ValueError as exc:  # a name too long for ustar
        raise DistError(str(exc)) from None


def build(out_dir: Path, repo: Path = REPO, commit: str | None = None) -> Path:
    """Write the tarball into ``out_dir``; returns its path."""
    files = tracked_files(repo, commit)
    version = project_version(files)
    data = tarball_bytes(files, version, commit_time(repo, commit or "HEAD"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAME}-{version}.tar.gz"
    path.write_bytes(data)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mkdist", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (dist)")
    parser.add_argument("--commit", help="build from this commit or tag instead of the working tree")
    parser.add_argument("--repo", type=Path, default=REPO, help="the git checkout (default: this one)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out, repo=args.repo, commit=args.commit)
    except (DistError, OSError) as exc:
        print(f"mkdist: {exc}", file=sys.stderr)
        return 1
    print(f"{path}\nsha256 {sha256(path)}  (PKG_HASH in openwrt/pineapple-jobd/Makefile for a release)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
