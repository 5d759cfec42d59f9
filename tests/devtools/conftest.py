"""Fixtures for the devtools tests: real sandboxes driven by the opkg stand-in."""
from __future__ import annotations

import os
import pathlib
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Callable

import pytest

from devtools.sandbox import PackageSpec, Sandbox

FAIL_EXIT = 3


def standard_packages() -> list[PackageSpec]:
    """The packages most tests use (names follow docs/reference opkg.md)."""
    return [
        PackageSpec("mylib", "1.0-1"),
        PackageSpec("myapp", "1.2.3-1", depends=["mylib"],
                    files={"/usr/bin/myapp": (b"#!/bin/sh\necho myapp\n", 0o755)}),
        PackageSpec("failpkg", "1.0-1", extra={"X-Standin-Postinst-Exit": str(FAIL_EXIT)}),
        PackageSpec("bigpkg", "1.0-1", installed_size=4 * 1024**4),
        PackageSpec("broken", "1.0-1", depends=["does-not-exist"]),
        PackageSpec("cfgpkg", "1.0-1", files={"/etc/config/cfgpkg": b"option a 1\n",
                                              "/usr/bin/cfgpkg": (b"#!/bin/sh\n", 0o755)},
                    conffiles=["/etc/config/cfgpkg"]),
        PackageSpec("verlib", "2.0-1"),
        PackageSpec("needs-new-verlib", "1.0-1", depends=["verlib (>= 2.0)"]),
        PackageSpec("needs-future-verlib", "1.0-1", depends=["verlib (>= 3.0)"]),
        PackageSpec("alt-user", "1.0-1", depends=["alt-missing | mylib"]),
    ]


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """Built and updated once; tests get clones of it."""
    return Sandbox.create(tmp_path_factory.mktemp("template") / "sb", packages=standard_packages())


@pytest.fixture
def sandbox(template: Sandbox, tmp_path: pathlib.Path) -> Sandbox:
    """A sandbox with the standard packages in feed "base", lists updated."""
    return template.clone(tmp_path / "sb")


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def opkg(sandbox: Sandbox) -> Runner:
    """Run the stand-in in the sandbox: ``opkg("install", "x", hang="...")``."""
    def run(*args: str, **knobs: object) -> subprocess.CompletedProcess[str]:
        return sandbox.run(*args, env=sandbox.env(**knobs), timeout=30)
    return run


def errors(*lines: str) -> str:
    """The stderr block opkg prints for these collected errors."""
    return "Collected errors:\n" + "".join(f" * {line}\n" for line in lines)


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float = 15.0) -> str:
    """Read ``proc``'s stdout until ``marker`` appears (or fail after
    ``timeout`` seconds); returns everything read. No sleeping: select()."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{marker!r} not seen in {timeout}s; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"EOF before {marker!r}; got {seen!r}")
            seen += chunk
    return seen.decode()


@pytest.fixture
def spawn(sandbox: Sandbox) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start the stand-in in the background; every process is killed and
    reaped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **knobs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(sandbox.argv(*args), env=sandbox.env(**knobs),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=15)
