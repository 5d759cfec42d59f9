"""Source distributions from PyPI, checked against a sha256 (like the SDK's dl/).

``fetch_sdist("sh", "1.14.3", sha256, Path("dist/dl"))`` returns the path of
``sh-1.14.3.tar.gz`` in that directory: the file there when its hash
matches, else one downloaded with pip (``pip download --no-binary :all:``,
PyPI's ordinary client) and then checked. A wrong hash is an error, never
used.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


class SdistError(Exception):
    """The sdist is missing, cannot be downloaded, or has the wrong hash."""


def sdist_name(name: str, version: str) -> str:
    """``sh-1.14.3.tar.gz``: PyPI's file name (the source package's name, as pypi.mk builds it)."""
    return f"{name}-{version}.tar.gz"


def fetch_sdist(name: str, version: str, sha256: str, dl_dir: Path, python: str | None = None) -> Path:
    """The checked sdist of ``name==version`` in ``dl_dir`` (downloaded if needed)."""
    dl_dir.mkdir(parents=True, exist_ok=True)
    path = dl_dir / sdist_name(name, version)
    if path.is_file() and _sha256(path) == sha256:
        return path
    with tempfile.TemporaryDirectory(dir=str(dl_dir)) as scratch:
        command = [python or sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--no-binary", ":all:", "--dest", scratch, f"{name}=={version}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SdistError(f"cannot run pip to download {name} {version}: {exc}") from None
        found = sorted(Path(scratch).glob("*.tar.gz"))
        if done.returncode != 0 or not found:
            raise SdistError(f"cannot download {sdist_name(name, version)} (put it into {dl_dir}): "
                             f"{done.stderr.strip()[-500:]}")
        got = _sha256(found[0])
        if got != sha256:
            raise SdistError(f"{found[0].name}: sha256 {got}, the feed Makefile's PKG_HASH says {sha256}")
        shutil.move(str(found[0]), str(path))
    return path


def read_members(path: Path, suffix: str = ".py") -> dict[str, bytes]:
    """Path inside the sdist (without the top directory) -> content, for the
    regular files ending in ``suffix``."""
    members = {}
    with tarfile.open(str(path), "r:gz") as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.endswith(suffix):
                handle = tar.extractfile(info)
                if handle is not None:
                    members[info.name.split("/", 1)[1]] = handle.read()
    return members


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
