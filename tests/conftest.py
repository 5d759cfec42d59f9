"""Fixtures shared by the whole suite: they build real things (a sandbox
opkg root with a real feed, a daemon process on a temporary socket)."""
from __future__ import annotations

import pathlib

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.opkgs import check_real_opkg, remove_wrapper, skip_what_needs_the_standin

POSTINST_FAIL = 3


def feed_packages() -> list[PackageSpec]:
    """The feed most opkg and daemon tests install from."""
    return [
        PackageSpec("libc", "1.2.4-4"),
        PackageSpec("mylib", "1.0-1", depends=["libc"]),
        PackageSpec("myapp", "1.2.3-1", depends=["mylib"],
                    files={"/usr/bin/myapp": (b"#!/bin/sh\necho myapp\n", 0o755)}),
        PackageSpec("otherapp", "2.0-1", depends=["mylib"]),
        PackageSpec("tool-a", "1.0-1", depends=["libc"]),
        PackageSpec("tool-b", "1.0-1", depends=["libc"]),
        PackageSpec("tool-c", "1.0-1", depends=["libc"]),
        PackageSpec("failpkg", "1.0-1", depends=["libc"], extra={"X-Standin-Postinst-Exit": str(POSTINST_FAIL)}),
        PackageSpec("bigpkg", "1.0-1", installed_size=4 * 1024**4),
        PackageSpec("broken", "1.0-1", depends=["does-not-exist"]),
    ]


@pytest.fixture
def sandbox(tmp_path: pathlib.Path) -> Sandbox:
    """A sandbox root with the feed above, lists fresh and libc installed."""
    return Sandbox.create(tmp_path / "sb", packages=feed_packages(), installed=["libc"])


@pytest.fixture
def start_daemon(tmp_path: pathlib.Path, sandbox: Sandbox):
    """Factory: ``start_daemon(extra_args=[...], env={...})`` -> a running
    :class:`DaemonProcess`; every daemon started is killed at teardown."""
    started: list[DaemonProcess] = []

    def start(extra_args: list[str] | None = None, env: dict[str, str] | None = None,
              wait: bool = True, work_dir: pathlib.Path | None = None) -> DaemonProcess:
        work = work_dir or tmp_path / f"daemon{len(started)}"
        work.mkdir(parents=True, exist_ok=True)
        daemon = DaemonProcess(sandbox, work, extra_args, env)
        started.append(daemon)
        return daemon.start(wait=wait)

    yield start
    for daemon in started:
        daemon.close()


@pytest.fixture
def daemon(start_daemon) -> DaemonProcess:
    """One daemon with default settings."""
    return start_daemon()


@pytest.fixture
def broker():
    """A real mosquitto on 127.0.0.1 (a free port), stopped at teardown."""
    from tests.fixtures.broker import MOSQUITTO, Broker

    if not pathlib.Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed (apt-get install mosquitto; .ci/run does it)")
    instance = Broker().start()
    yield instance
    instance.close()


@pytest.fixture
def notification_socket(monkeypatch):
    """A notification server on a temporary socket, named by
    ``$PINEAPPLE_NOTIFICATION_SOCKET`` (for this process and its children)."""
    import shutil
    import tempfile

    from tests.fixtures.notifications import NotificationServer

    directory = tempfile.mkdtemp(prefix="pn-", dir="/tmp")
    path = str(pathlib.Path(directory) / "notifications.sock")
    monkeypatch.setenv("PINEAPPLE_NOTIFICATION_SOCKET", path)
    server = NotificationServer(path)
    yield server
    server.close()
    shutil.rmtree(directory, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    check_real_opkg()  # PINEAPPLE_TEST_OPKG mode: see tests/fixtures/opkgs.py


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_wrapper()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # PINEAPPLE_TEST_OPKG=/path/to/opkg: tests needing a stand-in knob are skipped, naming it.
    skip_what_needs_the_standin(items)
