"""Downloads (libopkg/opkg_download.c): ``file://`` copies, integrity checks.

``file:`` URLs are copied in-process. Any other URL is fetched as opkg
does: ``wget -q -O TMPDIR/opkg-XXXXXX/FILE URL``, the ``wget`` found on
PATH (a test can put a fake one there: slow, failing, serving a local dir),
then moved into place; a nonzero exit is "wget returned N".
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable

from . import faults
from .pkgdb import Pkg
from .runtime import Run

_URL_SPECIAL = set(":?#[]@!$&'()*+,;=%")


def urlencode_path(filename: str) -> str:
    """urlencode_path(): percent-encode opkg's special characters."""
    return "".join(f"%{ord(c):02x}" if c in _URL_SPECIAL else c for c in filename)


def download(run: Run, url: str, dest_file: str, before_copy: Callable[[], None] | None = None) -> bool:
    """opkg_download(): print ``Downloading URL`` and fetch it to dest_file."""
    run.msgs.notice(f"Downloading {url}\n")
    if before_copy is not None:
        before_copy()
    if url.startswith("file:"):
        source = urllib.parse.unquote(url[5:])
        run.msgs.info("opkg_download", f"Copying {source} to {dest_file}...")
        ok = file_copy(run, source, dest_file)
        run.msgs.info("opkg_download", "Done.\n")
        return ok
    return _wget(run, url, dest_file)


def _wget(run: Run, url: str, dest_file: str) -> bool:
    """The non-file branch of opkg_download(): xsystem(wget ...), file_move()."""
    tmp_file = f"{run.tmp_dir}/{os.path.basename(url)}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp_file)
    try:
        status = subprocess.call(["wget", "-q", "-O", tmp_file, url])
    except OSError:
        status = 255  # opkg's vfork child: _exit(-1) when execvp fails
    if status < 0:
        run.msgs.error("wget", f"Child killed by signal {-status}.\n")
        status = -1
    if status:
        run.msgs.error("opkg_download", f"Failed to download {url}, wget returned {status}.\n")
        if status == 4:
            run.msgs.error("opkg_download", "Check your network settings and connectivity.\n\n")
        return False
    try:
        shutil.move(tmp_file, dest_file)
    except OSError as exc:
        run.msgs.perror("file_move", f"Failed to rename {tmp_file} to {dest_file}", exc.errno or errno.EIO)
        return False
    return True


def file_copy(run: Run, source: str, dest: str) -> bool:
    """file_copy()/copy_file() with libbb's error messages."""
    try:
        os.stat(source)
    except OSError as exc:
        run.msgs.perror("copy_file", source, exc.errno or errno.EIO)
        run.msgs.error("file_copy", f"Failed to copy file {source} to {dest}.\n")
        return False
    try:
        shutil.copyfile(source, dest)
        shutil.copystat(source, dest)
    except OSError as exc:
        run.msgs.perror("copy_file", f"unable to open `{dest}'", exc.errno or errno.EIO)
        run.msgs.error("file_copy", f"Failed to copy file {source} to {dest}.\n")
        return False
    return True


def download_pkg(run: Run, pkg: Pkg) -> bool:
    """opkg_download_pkg(): fetch the package file into the temp dir."""
    if pkg.src is None:
        run.msgs.error("opkg_download_pkg", f"Package {pkg.name} is not available from any configured src.\n")
        return False
    filename = pkg.fields.get("Filename")
    if not filename:
        run.msgs.error("opkg_download_pkg", f"Package {pkg.name} does not have a valid filename field.\n")
        return False
    url = f"{pkg.src.url}/{urlencode_path(filename)}"
    pkg.local_filename = f"{run.tmp_dir}/{filename.rsplit('/', 1)[-1]}"

    def slow_or_stuck() -> None:
        faults.delay("OPKG_STANDIN_DOWNLOAD_DELAY")
        faults.hang_if("download", pkg.name)

    return download(run, url, pkg.local_filename, before_copy=slow_or_stuck)


def verify_integrity(run: Run, pkg: Pkg, path: str) -> bool:
    """opkg_verify_integrity(): size, then md5, then sha256 (INFO details)."""
    try:
        with open(path, "rb") as handle:
            blob = handle.read()
    except OSError as exc:
        run.msgs.error("opkg_verify_integrity", f"Failed to stat {path}: {os.strerror(exc.errno or 0)}\n")
        return False
    expected = pkg.size
    if expected > 0 and len(blob) != expected:
        run.msgs.info("opkg_verify_integrity", f"Package size mismatch: {pkg.name} is {len(blob)} bytes, "
                                               f"expecting {expected} bytes\n")
        return False
    md5 = pkg.fields.get("MD5Sum") or pkg.fields.get("MD5sum")
    if md5 and hashlib.md5(blob).hexdigest() != md5.strip().lower():
        run.msgs.info("opkg_verify_integrity", f"Package {pkg.name} md5sum mismatch.\n")
        return False
    sha256 = pkg.fields.get("SHA256sum")
    if sha256 and hashlib.sha256(blob).hexdigest() != sha256.strip().lower():
        run.msgs.info("opkg_verify_integrity", f"Package {pkg.name} sha256sum mismatch.\n")
        return False
    return True
