#!/usr/bin/env python3
"""packetsnoop: capture packets with tcpdump, from the web UI.

The module declares its opkg dependency (tcpdump) once; the ready-made
dependency actions let its page show whether tcpdump is installed and
install it through pineapple-jobd with a progress bar.

Run it:     python3 modules/packetsnoop/module.py
Settings (environment, for development and tests):
    PACKETSNOOP_DEPENDENCIES   packages to depend on instead of "tcpdump" (comma separated)
    PACKETSNOOP_TCPDUMP        the tcpdump executable (default: found on PATH)
    PINEAPPLE_MODULE_SOCKET_DIR, PINEAPPLE_JOBD_SOCKET   where the sockets are
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import Any

from pineapple.modules import DependencySet, Module, Request

NAME = "packetsnoop"
DEFAULT_DEPENDENCIES = ["tcpdump"]
CAPTURE_DIR = "/tmp/packetsnoop"  # RAM on the device: captures never wear the flash
MAX_PACKETS = 100_000
_INTERFACE = re.compile(r"[A-Za-z0-9_.:-]{1,15}\Z")  # Linux IFNAMSIZ is 16 including the NUL


class Capture:
    """At most one tcpdump at a time, writing a pcap file."""

    def __init__(self, tcpdump: str, capture_dir: str, logger: logging.Logger) -> None:
        self.tcpdump = tcpdump
        self.capture_dir = capture_dir
        self.log = logger
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._info: dict[str, Any] = {}

    def start(self, interface: str, packets: int) -> dict:
        executable = shutil.which(self.tcpdump)
        if executable is None:
            raise CaptureError(f"{self.tcpdump} is not installed: install the module's dependencies first")
        with self._lock:
            if self._running():
                raise CaptureError(f"a capture is already running on {self._info['interface']}")
            os.makedirs(self.capture_dir, exist_ok=True)
            path = os.path.join(self.capture_dir, f"{interface}-{time.strftime('%Y%m%d-%H%M%S')}.pcap")
            # An argv list, never a shell: the interface name comes from the browser.
            argv = [executable, "-i", interface, "-c", str(packets), "-w", path]
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, start_new_session=True)
            self._info = {"interface": interface, "packets": packets, "file": path, "started_at": time.time()}
            self.log.info("capture started: %s", " ".join(argv))
            return self.status_locked()

    def stop(self) -> dict:
        with self._lock:
            if self._running():
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
                self.log.info("capture stopped")
            return self.status_locked()

    def status(self) -> dict:
        with self._lock:
            return self.status_locked()

    def status_locked(self) -> dict:
        status: dict[str, Any] = {"running": self._running(), **self._info}
        path = self._info.get("file")
        status["bytes"] = os.path.getsize(path) if path and os.path.exists(path) else 0
        if self._proc is not None and self._proc.poll() is not None:
            status["exit_code"] = self._proc.returncode
            status["stderr"] = self._stderr()
        return status

    def _running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stderr(self) -> str:
        if "stderr" not in self._info and self._proc is not None and self._proc.stderr is not None:
            self._info["stderr"] = self._proc.stderr.read().decode("utf-8", "replace")[-2000:]
            self._proc.stderr.close()
        return self._info.get("stderr", "")


class CaptureError(Exception):
    """A capture request the user can fix (shown as the answer's error)."""


def build_module(dependencies: Iterable[str] | None = None, tcpdump: str | None = None,
                 capture_dir: str = CAPTURE_DIR, **options: Any) -> Module:
    """The packetsnoop module; ``options`` go to :class:`Module` (socket_dir, ...)."""
    if dependencies is None:
        dependencies = DependencySet.from_env("PACKETSNOOP_DEPENDENCIES", DEFAULT_DEPENDENCIES)
    module = Module(NAME, logging.INFO, dependencies=dependencies, **options)
    # check_dependencies, dependency_status, manage_dependencies, poll_job, check_background_job, rebind_last_job
    module.enable_dependency_actions()
    capture = Capture(tcpdump or os.environ.get("PACKETSNOOP_TCPDUMP") or "tcpdump", capture_dir, module.logger)

    @module.handles_action("start_capture")
    def start_capture(request: Request) -> tuple[Any, bool]:
        interface = request.get("interface", "wlan1mon")
        packets = request.get("packets", 1000)
        if not isinstance(interface, str) or not _INTERFACE.match(interface):
            return "'interface' must be an interface name such as wlan1mon", False
        if not isinstance(packets, int) or isinstance(packets, bool) or not 1 <= packets <= MAX_PACKETS:
            return f"'packets' must be a whole number from 1 to {MAX_PACKETS}", False
        try:
            return capture.start(interface, packets), True
        except CaptureError as exc:
            return str(exc), False

    @module.handles_action("stop_capture")
    def stop_capture(request: Request) -> dict:
        return capture.stop()

    @module.handles_action("capture_status")
    def capture_status(request: Request) -> dict:
        return capture.status()

    @module.on_shutdown()
    def stop_on_shutdown(signum: int | None) -> None:
        capture.stop()  # never leave a tcpdump running without its module

    return module


if __name__ == "__main__":
    build_module().start()
