"""`make dist`: the release tarball the feed's Makefile names as PKG_SOURCE,
built reproducibly from what git tracks."""
from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import pineapple
from tests.openwrt.helpers import REPO, makefile_package
from tools import footprint, mkdist


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(str(path), "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository at HEAD (files of a fixed commit)."""
    target = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120)
    return target


def test_the_tarball_holds_what_the_standard_build_needs(clone: Path, tmp_path: Path) -> None:
    path = mkdist.build(tmp_path, repo=clone)
    top = f"pineapple-jobd-{pineapple.__version__}"
    assert path.name == f"{top}.tar.gz"
    names = members(path)
    files = {name[len(top) + 1:] for name, info in names.items() if info.isfile()}
    tracked = subprocess.run(["git", "-C", str(clone), "ls-files", "--", *mkdist.DIST_PATHS], capture_output=True,
                             text=True, check=True).stdout.split()
    assert files == set(tracked)
    assert {"setup.py", "README.md", "LICENSE", "pineapple/__init__.py"} <= files
    assert not [name for name in files if name.startswith(("openwrt/", "tests/", "devtools/", "tools/"))]
    assert all(name == top or name.startswith(top + "/") for name in names)
    assert {(info.uid, info.gid, info.uname, info.gname) for info in names.values()} == {(0, 0, "root", "root")}
    commit_time = int(subprocess.run(["git", "-C", str(clone), "log", "-1", "--format=%ct"], capture_output=True,
                                     text=True, check=True).stdout)
    assert {info.mtime for info in names.values()} == {commit_time}
    with tarfile.open(str(path), "r:gz") as tar:
        assert tar.extractfile(f"{top}/setup.py").read() == (clone / "setup.py").read_bytes()


def test_the_same_commit_gives_the_same_bytes(clone: Path, tmp_path: Path) -> None:
    first = mkdist.build(tmp_path / "a", repo=clone)
    (clone / "pineapple" / "untracked.py").write_text("not in git\n")  # never gets in
    (clone / "README.md").touch()
    second = mkdist.build(tmp_path / "b", repo=clone)
    (clone / "pineapple" / "untracked.py").unlink()
    assert first.read_bytes() == second.read_bytes()
    # ... whichever Python builds it (tarfile's own headers differ between 3.7 and 3.11).
    other = footprint.find_interpreter("3.7") if sys.version_info[:2] != (3, 7) else None
    if other:
        subprocess.run([other, str(REPO / "tools" / "mkdist.py"), "--repo", str(clone), "--out", str(tmp_path / "c")],
                       check=True, capture_output=True, timeout=120)
        assert (tmp_path / "c" / first.name).read_bytes() == first.read_bytes()


def test_a_commit_can_be_rebuilt_from_git(clone: Path, tmp_path: Path) -> None:
    from_tree = mkdist.build(tmp_path / "tree", repo=clone)
    from_commit = mkdist.build(tmp_path / "commit", repo=clone, commit="HEAD")
    assert from_commit.read_bytes() == from_tree.read_bytes()


def test_source_date_epoch_sets_the_time(clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    path = mkdist.build(tmp_path, repo=clone)
    assert {info.mtime for info in members(path).values()} == {1700000000}
    assert gzip.decompress(path.read_bytes())[:100].rstrip(b"\0").endswith(b"/")  # the top directory first


def test_a_name_too_long_for_ustar_is_refused() -> None:
    files = {"pineapple/" + "d" * 160 + "/x.py": mkdist.Member("pineapple/x.py", b"", False)}
    with pytest.raises(mkdist.DistError, match="too long for a ustar header"):
        mkdist.tarball_bytes(files, "0.1.0", 0)


def test_pkg_hash_is_the_tagged_release() -> None:
    version = makefile_package("pineapple-jobd", "pineapple-jobd")["PKG_VERSION"]
    tag = f"v{version}"
    found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "-q", "--verify", f"refs/tags/{tag}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip(f"no tag {tag} in this clone (git fetch --tags) to rebuild the release tarball from")
    data = mkdist.tarball_bytes(mkdist.tracked_files(REPO, tag), version, mkdist.commit_time(REPO, tag))
    assert hashlib.sha256(data).hexdigest() == makefile_package("pineapple-jobd", "pineapple-jobd")["PKG_HASH"]
