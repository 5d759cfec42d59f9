"""How much flash this feed's packages take on a device, and whether they fit.

``report(built_ipks, "3.7", free_kb=...)`` gives a table of Installed-Size
(what opkg's space check divides by 1024 and compares with the free space
of the destination): this build's packages exactly, then every python3
package of the release feed they pull in, then the total against the free
flash.

Sizes of the pulled-in packages: exact from a release feed's Packages index
(``indexes``: e.g. the device's ``/var/opkg-lists/openwrt_packages``);
otherwise estimated by compiling their Python files with an interpreter of
the target's version on this machine, laid out as OpenWrt ships them (byte
code only, one tar entry per file), since opkg counts the uncompressed data
tar. python3-light itself (interpreter, libpython3, C modules: native and
target-specific) is not estimated: a device that runs Python module
backends, the WiFi Pineapple MK7 among them, has it already.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from tools.releases import BASE, SUBPACKAGE_FILES, Release, release_for

# sha256 of paho-mqtt's PyPI sdists, as the release feeds' PKG_HASH has them.
PAHO_SDIST_SHA256 = {
    "1.5.1": "9feb068e822be7b3a116324e01fb6028eb1d66412bf98595ae72698965cb1cae",
    "1.6.1": "2a8291c81623aec00372b5a85558a372c747cbca8e9934dfe218638b8eefc26f",
}
_TAR_BLOCK = 512
_TAR_RECORD = 10240


class FootprintError(Exception):
    """An index or package that cannot be read."""


class Line(NamedTuple):
    package: str
    version: str
    size: int | None   # bytes, None when unknown
    source: str           # how the size is known


def installed_size_of(ipk_path: Path) -> Line:
    """Package, Version and Installed-Size of a built .ipk."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from devtools import ipk

    control = ipk.parse_control(ipk.read_ipk(ipk_path)[0])
    return Line(control["Package"], control["Version"], int(control["Installed-Size"]), "this build")


def read_index(path: Path) -> dict[str, dict[str, str]]:
    """Package -> fields of a feed index (``Packages`` or ``Packages.gz``)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    packages = {}
    for stanza in data.decode("utf-8", "replace").split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "\t")):
                name, _, value = line.partition(":")
                fields[name.strip()] = value.strip()
        if "Package" in fields:
            packages[fields["Package"]] = fields
    if not packages:
        raise FootprintError(f"{path}: no package stanzas (not a feed index)")
    return packages


def pulled_in(depends: Iterable[str], release: Release, ours: Iterable[str]) -> list[str]:
    """The release feed's packages a device needs for ``depends`` (closure
    over the release's declared dependencies), without BASE and ours."""
    skip = set(BASE) | set(ours)
    found: list[str] = []
    pending = list(depends)
    while pending:
        name = pending.pop(0)
        if name in skip or name in found:
            continue
        found.append(name)
        pending.extend(release.depends.get(name, ()))
    return found


def find_interpreter(version: str) -> str | None:
    """A working Python ``version`` (X.Y) on this machine: this one, one
    under pyenv, or ``pythonX.Y`` on PATH (pyenv's shims may name versions
    they cannot run, so each candidate is tried)."""
    if "{}.{}".format(*sys.version_info[:2]) == version:
        return sys.executable
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))[::-1]
    on_path = shutil.which(f"python{version}")
    for candidate in candidates + ([on_path] if on_path else []):
        try:
            done = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


_COMPILE = r"""
import json, os, py_compile, sys, sysconfig, tempfile
roots = json.loads(sys.argv[1])
base = sysconfig.get_paths()["stdlib"] if sys.argv[2] == "stdlib" else sys.argv[2]
sizes = {}
with tempfile.TemporaryDirectory() as scratch:
    for root in roots:
        path = os.path.join(base, root)
        files = [path] if os.path.isfile(path) else [
            os.path.join(d, f) for d, dirs, names in os.walk(path) for f in names
            if f.endswith(".py") and not {"test", "tests", "__pycache__"} & set(d[len(base):].split(os.sep))]
        for source in files:
            target = os.path.join(scratch, "x.pyc")
            py_compile.compile(source, cfile=target, doraise=True)
            sizes[os.path.relpath(source, base)] = os.path.getsize(target)
print(json.dumps(sizes))
"""


def estimate(interpreter: str, roots: Sequence[str], base: str = "stdlib") -> int:
    """Installed-Size of a package holding ``roots`` (under the stdlib, or
    ``base``) as byte code: the length of its uncompressed data tar."""
    done = subprocess.run([interpreter, "-c", _COMPILE, json.dumps(list(roots)), base],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise FootprintError(f"{interpreter}: cannot compile {', '.join(roots)}: {done.stderr.strip()[-300:]}")
    sizes = json.loads(done.stdout)
    directories = {os.path.dirname(path) for path in sizes} | {""}
    length = _TAR_BLOCK * (len(directories) + 4)  # the site-packages path's own directories, roughly
    for size in sizes.values():
        length += _TAR_BLOCK + -(-size // _TAR_BLOCK) * _TAR_BLOCK
    length += 2 * _TAR_BLOCK
    return -(-length // _TAR_RECORD) * _TAR_RECORD


def _estimate_paho(version: str, interpreter: str, dl_dir: Path) -> int:
    from tools.pypi import fetch_sdist

    sdist = fetch_sdist("paho-mqtt", version, PAHO_SDIST_SHA256[version], dl_dir, python=sys.executable)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.unpack_archive(str(sdist), scratch)
        source = Path(scratch) / f"paho-mqtt-{version}" / "src"
        return estimate(interpreter, ["paho"], base=str(source))


def size_line(package: str, release: Release, python_version: str, index: dict[str, dict[str, str]],
              interpreter: str | None, dl_dir: Path) -> Line:
    """The size of one pulled-in package, as well as it can be known here."""
    version = release.paho if package == "python3-paho-mqtt" else release.python
    if package in index and index[package].get("Installed-Size", "").isdigit():
        fields = index[package]
        return Line(package, fields.get("Version", version), int(fields["Installed-Size"]), "release index")
    if interpreter is None:
        return Line(package, version, None, f"unknown: no Python {python_version} here to estimate with")
    try:
        if package == "python3-paho-mqtt":
            size = _estimate_paho(release.paho.split("-")[0], interpreter, dl_dir)
        elif package in SUBPACKAGE_FILES:
            size = estimate(interpreter, SUBPACKAGE_FILES[package])
        else:
            return Line(package, version, None, "unknown (not estimated)")
    except Exception as exc:  # noqa: BLE001 - a report line, never a failed build
        return Line(package, version, None, "unknown: " + " ".join(str(exc).split())[:120])
    return Line(package, version, size, f"estimate: Python {python_version} byte code on this machine")


def report(built: Sequence[Path], python_version: str, indexes: Sequence[Path] = (), free_kb: int | None = None,
           dl_dir: Path | None = None) -> str:
    """The footprint table (text) for ``built`` .ipk files on ``python_version``'s release."""
    release = release_for(python_version)
    index: dict[str, dict[str, str]] = {}
    for path in indexes:
        index.update(read_index(path))
    ours = [installed_size_of(path) for path in built]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from devtools import ipk

    depends: list[str] = []
    for path in built:
        control = ipk.parse_control(ipk.read_ipk(path)[0])
        depends += [word.split()[0] for word in control.get("Depends", "").split(",") if word.strip()]
    names = [line.package for line in ours]
    interpreter = find_interpreter(python_version)
    dl = dl_dir or Path(tempfile.gettempdir()) / "pineapple-jobd-dl"
    pulled = [size_line(name, release, python_version, index, interpreter, dl)
              for name in pulled_in(depends, release, names)]
    lines = [f"Footprint on {release.name} (Python {python_version}), Installed-Size as opkg checks it:"]
    lines += [_row(line) for line in ours]
    if interpreter is not None and "pineapple-jobd" in names:
        compiled = estimate(interpreter, ["pineapple"], base=str(Path(__file__).resolve().parents[1]))
        lines.append(f"  (these ship Python sources; an SDK build ships byte code instead, "
                     f"pineapple-jobd then ~{_kib(compiled)})")
    lines.append(f"  pulled in from the release feed (besides {', '.join(BASE)}):")
    lines += [_row(line) for line in pulled]
    light = index.get("python3-light")
    if light and light.get("Installed-Size", "").isdigit():
        lines.append(_row(Line("python3-light", light.get("Version", ""), int(light["Installed-Size"]),
                               "release index; not counted: any Python device has it")))
    else:
        lines.append("  python3-light and below (interpreter, libpython3, C modules): not counted; every device "
                     "that runs Python modules (the MK7 does) has them")
    known = [line.size for line in ours + pulled if line.size is not None]
    unknown = [line.package for line in ours + pulled if line.size is None]
    total = sum(known)
    prefix = "at least " if unknown else ""
    lines.append(f"  total new on the device: {prefix}{_kib(total)}"
                 + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                 + f"; this feed alone: {_kib(sum(line.size or 0 for line in ours))}")
    lines.append(_verdict(total, free_kb, bool(unknown)))
    return "\n".join(lines)


def _row(line: Line) -> str:
    size = _kib(line.size) if line.size is not None else "?"
    return f"  {line.package:<20} {line.version:<12} {size:>10}  {line.source}"


def _kib(size: int) -> str:
    return f"{-(-size // 1024)} KiB"


def _verdict(total: int, free_kb: int | None, uncertain: bool) -> str:
    needed = -(-total // 1024)
    if free_kb is None:
        return ("  free flash: not given; on the device run `df -k /overlay` and pass the Available "
                "column as FREE_FLASH_KB=N (make ipk) or --free-kb N")
    if needed <= free_kb:
        left = free_kb - needed
        note = " (before the unknown sizes)" if uncertain else ""
        return f"  free flash {free_kb} KiB: fits, {left} KiB left{note}"
    return f"  free flash {free_kb} KiB: DOES NOT FIT, {needed - free_kb} KiB short (install to an SD card: opkg -d sd)"
