"""Real opkg sandboxes for tests and the dev demo: feeds of built .ipk files,
an opkg.conf, an offline root, and the opkg stand-in to drive them.

    sb = Sandbox.create(tmp_path, packages=[PackageSpec("mylib"),
                                            PackageSpec("myapp", depends=["mylib"])])
    subprocess.run(sb.argv("install", "myapp"), env=sb.env())
    assert sb.installed() == {"mylib": "1.0-1", "myapp": "1.0-1"}

CLI (used by ``make run``)::

    python -m devtools.sandbox demo DIR   # builds a demo sandbox, prints paths
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence

from devtools import ipk
from devtools.opkgsim.control import parse_stanzas
from devtools.opkgsim.lock import hold_lock, lock_path

DEVTOOLS_DIR = pathlib.Path(__file__).resolve().parent
OPKG_PATH = DEVTOOLS_DIR / "opkg"
DEFAULT_FEED = "base"
DEFAULT_DESTS: Mapping[str, str] = {"root": "/", "sd": "/mnt/sd"}
LISTS_DIR = "/var/opkg-lists"
# Sandbox.env() keyword -> environment variable of the stand-in
KNOBS = {
    "download_delay": "OPKG_STANDIN_DOWNLOAD_DELAY",
    "update_delay": "OPKG_STANDIN_UPDATE_DELAY",
    "unpack_delay": "OPKG_STANDIN_UNPACK_DELAY",
    "hang": "OPKG_STANDIN_HANG",
    "free_kb": "OPKG_STANDIN_FREE_KB",
    "call_log": "OPKG_STANDIN_CALL_LOG",
    "lock_hold": "OPKG_STANDIN_LOCK_HOLD",
}


@dataclasses.dataclass
class PackageSpec:
    """A package to build into a feed.

    ``files`` defaults to one small file, ``/usr/share/NAME/README``.
    ``installed_size`` overrides the computed Installed-Size (bytes), e.g. to
    make a package "too big" without writing big files. ``extra`` adds
    control fields (e.g. ``{"X-Standin-Postinst-Exit": "3"}``).
    """

    name: str
    version: str = "1.0-1"
    depends: Sequence[str] = ()
    files: Mapping[str, ipk.FileContent] | None = None
    installed_size: int | None = None
    conffiles: Sequence[str] = ()
    scripts: Mapping[str, str] | None = None
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)
    architecture: str = "all"
    description: str | None = None

    def control(self) -> dict[str, str]:
        """The control fields this spec builds."""
        fields = {"Package": self.name, "Version": self.version}
        if self.depends:
            fields["Depends"] = ", ".join(self.depends)
        fields.update({"Source": f"feeds/devtools/{self.name}", "Section": "utils",
                       "Architecture": self.architecture,
                       "Maintainer": "pineapple-jobd devtools <devtools@example.invalid>"})
        if self.installed_size is not None:
            fields["Installed-Size"] = str(self.installed_size)
        fields.update(self.extra)
        fields["Description"] = self.description or f"{self.name} (sandbox test package)"
        return fields

    def file_map(self) -> Mapping[str, ipk.FileContent]:
        if self.files is not None:
            return self.files
        return {f"/usr/share/{self.name}/README": f"{self.name} {self.version}\n".encode()}

    def build(self, feed_dir: str | os.PathLike[str]) -> pathlib.Path:
        """Write the .ipk into ``feed_dir`` (the index is not updated)."""
        return ipk.build_ipk(feed_dir, self.control(), self.file_map(),
                             conffiles=self.conffiles, scripts=self.scripts)


@dataclasses.dataclass
class Sandbox:
    """An offline root, its opkg.conf and file:// feeds."""

    base: pathlib.Path
    feeds: dict[str, pathlib.Path]
    dests: dict[str, str]

    @property
    def root(self) -> pathlib.Path:
        """The offline root (``-o``)."""
        return self.base / "root"

    @property
    def conf(self) -> pathlib.Path:
        """The opkg.conf (``-f``)."""
        return self.base / "opkg.conf"

    @property
    def feed_dir(self) -> pathlib.Path:
        """The first (default) feed's directory."""
        return next(iter(self.feeds.values()))

    @property
    def opkg_path(self) -> pathlib.Path:
        return OPKG_PATH

    @property
    def lists_path(self) -> pathlib.Path:
        """Where ``opkg update`` stores the feed lists."""
        return self.root / LISTS_DIR.lstrip("/")

    @property
    def tmp_dir(self) -> pathlib.Path:
        """$TMPDIR for the stand-in runs (opkg's opkg-XXXXXX dirs go here)."""
        return self.base / "tmp"

    @property
    def lock_path(self) -> str:
        """The lock file as opkg names it (``ROOT//var/lock/opkg.lock``)."""
        return lock_path(self.root)

    @classmethod
    def create(
        cls,
        base_dir: str | os.PathLike[str],
        packages: Iterable[PackageSpec] = (),
        feeds: Mapping[str, Iterable[PackageSpec]] | None = None,
        installed: Sequence[str] = (),
        dests: Mapping[str, str] | None = None,
        update: bool = True,
        conf_extra: Sequence[str] = (),
    ) -> Sandbox:
        """Build feeds, write opkg.conf, make the offline root; then, if
        ``update``, run ``opkg update`` and install the ``installed`` names.

        ``packages`` go to the feed "base"; ``feeds`` maps further feed names
        to their packages. ``conf_extra`` lines are appended to opkg.conf.
        """
        base = pathlib.Path(base_dir)
        all_feeds: dict[str, list[PackageSpec]] = {DEFAULT_FEED: list(packages)}
        for name, specs in (feeds or {}).items():
            all_feeds.setdefault(name, []).extend(specs)
        sandbox = cls(base=base, feeds={}, dests=dict(dests or DEFAULT_DESTS))
        for name, specs in all_feeds.items():
            sandbox.feeds[name] = sandbox._build_feed(name, specs)
        sandbox._write_conf(conf_extra)
        sandbox._make_root()
        if update:
            sandbox.run("update", check=True)
            if installed:
                sandbox.run("install", *installed, check=True)
        return sandbox

    def clone(self, base_dir: str | os.PathLike[str]) -> Sandbox:
        """Copy this sandbox (feeds, root, conf) to ``base_dir``: much cheaper
        than building and updating a new one, e.g. from a test template."""
        base = pathlib.Path(base_dir)
        shutil.copytree(self.base, base, symlinks=True)
        copy = Sandbox(base=base, feeds={name: base / path.relative_to(self.base)
                                         for name, path in self.feeds.items()},
                       dests=dict(self.dests))
        old_urls = [f"file://{path.resolve()}" for path in self.feeds.values()]
        new_urls = [f"file://{path.resolve()}" for path in copy.feeds.values()]
        text = copy.conf.read_text()
        for old, new in zip(old_urls, new_urls):
            text = text.replace(f" {old}\n", f" {new}\n")
        copy.conf.write_text(text)
        return copy

    # -- setup ------------------------------------------------------------

    def _build_feed(self, name: str, specs: Iterable[PackageSpec]) -> pathlib.Path:
        feed_dir = self.base / "feeds" / name
        feed_dir.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            spec.build(feed_dir)
        ipk.index_feed(feed_dir)
        return feed_dir

    def _write_conf(self, extra: Sequence[str]) -> None:
        lines = [f"src/gz {name} file://{path.resolve()}" for name, path in self.feeds.items()]
        lines += [f"dest {name} {path}" for name, path in self.dests.items()]
        lines += [f"lists_dir ext {LISTS_DIR}", "arch all 1", "arch noarch 1", *extra]
        self.conf.write_text("\n".join(lines) + "\n")

    def _make_root(self) -> None:
        (self.root / "var" / "lock").mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for path in self.dests.values():
            (self.root / path.lstrip("/") / "usr" / "lib" / "opkg" / "info").mkdir(parents=True, exist_ok=True)

    # -- running ----------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        """``[opkg, -o, ROOT, -f, CONF, *args]``."""
        return [str(self.opkg_path), "-o", str(self.root), "-f", str(self.conf), *args]

    def env(self, **knobs: object) -> dict[str, str]:
        """os.environ plus stand-in knobs: download_delay, update_delay, hang,
        free_kb, call_log, lock_hold (or any OPKG_STANDIN_* name as given)."""
        env = dict(os.environ)
        # opkg makes its temp dir under $TMPDIR; keep it (and what a killed
        # run leaves behind) inside the sandbox.
        env["TMPDIR"] = str(self.tmp_dir)
        env.pop("OFFLINE_ROOT", None)
        # devtools/opkg starts with "#!/usr/bin/env python3": let that find
        # the interpreter running this code (a venv's, say) before any
        # slower wrapper such as a pyenv shim, or an older system python3.
        interpreter_dir = os.path.dirname(sys.executable)
        if os.path.exists(os.path.join(interpreter_dir, "python3")):
            env["PATH"] = interpreter_dir + os.pathsep + env.get("PATH", os.defpath)
        for key, value in knobs.items():
            name = KNOBS.get(key, key)
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        return env

    def run(self, *args: str, env: Mapping[str, str] | None = None, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the stand-in to completion, capturing text stdout/stderr."""
        return subprocess.run(self.argv(*args), env=dict(env) if env is not None else self.env(),
                              capture_output=True, text=True, check=check, timeout=timeout)

    @contextlib.contextmanager
    def hold_lock(self) -> Iterator[str]:
        """Hold opkg's lock in this process (children see it busy)."""
        with hold_lock(self.root) as path:
            yield path

    # -- inspection -------------------------------------------------------

    def status_path(self, dest: str = "root") -> pathlib.Path:
        return self.root / self.dests[dest].lstrip("/") / "usr/lib/opkg/status"

    def info_dir(self, dest: str = "root") -> pathlib.Path:
        return self.root / self.dests[dest].lstrip("/") / "usr/lib/opkg/info"

    def status(self, dest: str | None = None) -> list[dict[str, str]]:
        """The status stanzas of one dest, or of all dests."""
        names = [dest] if dest else list(self.dests)
        stanzas: list[dict[str, str]] = []
        for name in names:
            path = self.status_path(name)
            if path.exists():
                stanzas.extend(parse_stanzas(path.read_text()))
        return stanzas

    def installed(self, dest: str | None = None) -> dict[str, str]:
        """name -> version of every package whose status says installed or
        unpacked (what ``opkg list-installed`` shows)."""
        return {s["Package"]: s["Version"] for s in self.status(dest)
                if s.get("Status", "").split()[-1:] in (["installed"], ["unpacked"])}

    def path(self, target: str, dest: str = "root") -> pathlib.Path:
        """Host path of a file installed at ``target`` on ``dest``."""
        return self.root / self.dests[dest].lstrip("/") / target.lstrip("/")

    # -- feed faults ------------------------------------------------------

    def ipk_path(self, name: str, feed: str = DEFAULT_FEED) -> pathlib.Path:
        matches = sorted(self.feeds[feed].glob(f"{name}_*.ipk"))
        if not matches:
            raise FileNotFoundError(f"no {name} in feed {feed}")
        return matches[-1]

    def add_package(self, spec: PackageSpec, feed: str = DEFAULT_FEED, reindex: bool = True) -> pathlib.Path:
        """Build one more package into a feed (and re-index it)."""
        path = spec.build(self.feeds[feed])
        if reindex:
            ipk.index_feed(self.feeds[feed])
        return path

    def tamper(self, name: str, feed: str = DEFAULT_FEED) -> None:
        """Change a package file after indexing: its Size/SHA256sum no longer match."""
        with open(self.ipk_path(name, feed), "ab") as handle:
            handle.write(b"\0tampered")

    def delete_from_feed(self, name: str, feed: str = DEFAULT_FEED) -> None:
        """Delete a package file but keep it in the index ("file missing in feed")."""
        self.ipk_path(name, feed).unlink()

    def corrupt_index(self, feed: str = DEFAULT_FEED) -> None:
        """Make the feed's Packages.gz/Packages unreadable (see ipk.corrupt_index)."""
        ipk.corrupt_index(self.feeds[feed])

    def break_feed(self, feed: str = DEFAULT_FEED) -> None:
        """Remove the feed's index files so ``opkg update`` fails for it."""
        for name in ("Packages", "Packages.gz"):
            with contextlib.suppress(FileNotFoundError):  # unlink(missing_ok=) is Python 3.8+
                (self.feeds[feed] / name).unlink()


# -- demo --------------------------------------------------------------------


def demo_packages() -> list[PackageSpec]:
    """A dozen plausible packages with dependencies and a few faults."""
    big = 4 * 1024**4  # 4 TiB: more than any dev disk has free
    return [
        PackageSpec("libc", "1.2.4-4", description="C library"),
        PackageSpec("libpcap1", "1.10.4-1", depends=["libc"]),
        PackageSpec("tcpdump", "4.99.4-1", depends=["libc", "libpcap1"],
                    files={"/usr/sbin/tcpdump": (b"#!/bin/sh\necho tcpdump\n", 0o755)}),
        PackageSpec("libstdcpp6", "13.3.0-4", depends=["libc"]),
        PackageSpec("libopenssl3", "3.0.15-1", depends=["libc"]),
        PackageSpec("nmap", "7.95-1", depends=["libc", "libpcap1", "libstdcpp6", "libopenssl3"],
                    files={"/usr/bin/nmap": (b"#!/bin/sh\necho nmap\n", 0o755)}),
        PackageSpec("python3-light", "3.11.10-1", depends=["libc"]),
        PackageSpec("python3-idna", "3.10-1", depends=["python3-light"]),
        PackageSpec("python3-certifi", "2024.8.30-1", depends=["python3-light"]),
        PackageSpec("python3-urllib3", "2.2.3-1", depends=["python3-light"]),
        PackageSpec("python3-requests", "2.32.3-1",
                    depends=["python3-light", "python3-idna", "python3-certifi", "python3-urllib3"]),
        PackageSpec("reaver", "1.6.6-1", depends=["libc", "libpcap1"],
                    files={"/usr/bin/reaver": (b"#!/bin/sh\n", 0o755), "/etc/config/reaver": b"config reaver\n"},
                    conffiles=["/etc/config/reaver"]),
        PackageSpec("mdk4", "4.2-1", depends=["libc", "libpcap1"],
                    extra={"X-Standin-Postinst-Exit": "3"},
                    description="mdk4 (its postinst fails with status 3)"),
        PackageSpec("metasploit-framework", "6.4.0-1", depends=["libc"], installed_size=big,
                    description="too big for any disk (Installed-Size 4 TiB)"),
        PackageSpec("wifite2", "2.7.0-1", depends=["python3-light", "aircrack-ng-missing"],
                    description="depends on a package no feed has"),
    ]


def create_demo(base_dir: str | os.PathLike[str]) -> Sandbox:
    """The sandbox ``make run`` uses: libc preinstalled, the rest in the feed."""
    return Sandbox.create(base_dir, packages=demo_packages(), installed=["libc"])


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a demo sandbox in DIR")
    demo.add_argument("dir")
    args = parser.parse_args(argv)
    sandbox = create_demo(args.dir)
    sys.stdout.write(f"root: {sandbox.root}\nconf: {sandbox.conf}\nopkg: {sandbox.opkg_path}\n"
                     f"try:  {sandbox.opkg_path} -o {sandbox.root} -f {sandbox.conf} install tcpdump\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
