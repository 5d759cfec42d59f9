"""Fixtures for the module tests: in-process modules on real Unix sockets,
example modules as real processes, the dev gateway, and (from the root
conftest) a real pineapple-jobd against the opkg stand-in."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator

import pytest

from devtools.sandbox import Sandbox
from pineapple.modules import Module
from pineapple.modules.gateway import Gateway
from tests.conftest import feed_packages
from tests.modules.helpers import EXAMPLES, REPO, WAIT, wait_for


@pytest.fixture(scope="session")
def sandbox_template(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """The root conftest's feed, built and updated once per session."""
    return Sandbox.create(tmp_path_factory.mktemp("modules-template") / "sb", packages=feed_packages(),
                          installed=["libc"])


@pytest.fixture
def sandbox(sandbox_template: Sandbox, tmp_path: pathlib.Path) -> Sandbox:
    """Overrides the root fixture with a cheap clone (same packages)."""
    return sandbox_template.clone(tmp_path / "sb")


@pytest.fixture
def sock_dir() -> Iterator[pathlib.Path]:
    """A short directory for module sockets (AF_UNIX paths are limited to 108 bytes)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve() -> Iterator[Callable[[Module], Module]]:
    """``serve(module)``: run ``module.start()`` on a thread until teardown."""
    running: list[tuple[Module, threading.Thread]] = []

    def start(module: Module) -> Module:
        thread = threading.Thread(target=module.start, name=f"module-{module.name}", daemon=True)
        thread.start()
        running.append((module, thread))
        assert module.wait_ready(WAIT), "module did not start"
        return module

    yield start
    for module, thread in running:
        module.shutdown()
        thread.join(WAIT)


class ModuleProcess:
    """A module (``ROOT/NAME/module.py``, by default an example of
    ``modules/``) as a real process."""

    def __init__(self, name: str, sock_dir: pathlib.Path, log_path: pathlib.Path, env: dict[str, str],
                 root: pathlib.Path = EXAMPLES) -> None:
        self.name = name
        self.root = root
        self.sock_dir = sock_dir
        self.socket = sock_dir / f"{name}.sock"
        self.log_path = log_path
        self.env = {**os.environ, "PINEAPPLE_MODULE_SOCKET_DIR": str(sock_dir), **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> ModuleProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, str(self.root / self.name / "module.py")], cwd=REPO,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._started(), what=f"module {self.name} to listen")
        return self

    def _started(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"module {self.name} exited {self.proc.returncode}: {self.output()}")
        return self.socket.exists()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(WAIT)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_module(sock_dir: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[Callable[..., ModuleProcess]]:
    """``start_module(name, env={...}, root=EXAMPLES)`` -> a running module process."""
    started: list[ModuleProcess] = []

    def start(name: str, env: dict[str, str] | None = None, root: pathlib.Path = EXAMPLES) -> ModuleProcess:
        process = ModuleProcess(name, sock_dir, tmp_path / f"{name}-{len(started)}.out", env or {}, root)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.close()


@pytest.fixture
def gateway(sock_dir: pathlib.Path) -> Iterator[Gateway]:
    """The dev gateway on a free port, serving the example modules."""
    with Gateway(str(EXAMPLES), str(sock_dir), port=0, module_timeout=5.0) as instance:
        yield instance
