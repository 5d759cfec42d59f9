"""Signals that arrive while the daemon's main thread is in the middle of
writing a log line (a full stderr pipe, as when procd or a terminal reads
slowly): the stop still happens. Python runs a signal handler inside the
interrupted write; a handler that logs there writes to stderr re-entrantly
("RuntimeError: reentrant call inside <_io.BufferedWriter name='<stderr>'>")
and its work is lost."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.api.helpers import DEADLINE, wait_until
from tests.fixtures.daemon import DaemonProcess


class PipedDaemon(DaemonProcess):
    """A daemon whose stderr (and stdout) is a pipe the test reads only when it wants to."""

    def start(self, wait: bool = True) -> PipedDaemon:
        # As procd starts it: stderr buffered (PYTHONUNBUFFERED would hand the text straight to the
        # file, and a handler's write would then interleave instead of failing).
        self.env.pop("PYTHONUNBUFFERED", None)
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env)
        self.output = bytearray()
        self.wait_ready()
        return self

    def drain(self) -> threading.Thread:
        def read() -> None:
            for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
                self.output += chunk

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        return reader

    def main_thread(self, field: str) -> str:
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/{field}") as handle:
            return handle.read()

    def blocked_writing(self) -> bool:
        """The main thread sleeps in a write to its stderr pipe ("pipe_write",
        "anon_pipe_write" as kernels name it)."""
        return "pipe_write" in self.main_thread("wchan")

    def close(self) -> None:
        super().close()
        self.proc.stdout.close()


def kernel_shows_wchan() -> bool:
    """Whether /proc/PID/wchan names where a sleeping process waits (some kernels hide it: "0")."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        return bool(wait_until(lambda: open(f"/proc/{sleeper.pid}/wchan").read().strip() not in ("", "0"),
                               timeout=2, what="sleep to sleep")) if _sleeps(sleeper.pid) else False
    except AssertionError:
        return False
    finally:
        sleeper.kill()
        sleeper.wait()


def _sleeps(pid: int) -> bool:
    return bool(wait_until(lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "S",
                           timeout=5, what="sleep to be asleep"))


def pending(status: str) -> int:
    """The signals pending on the process or its main thread (/proc status)."""
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)


def test_a_stop_signal_during_a_log_write_still_stops_the_daemon(sandbox, tmp_path):
    daemon = PipedDaemon(sandbox, tmp_path, extra_args=["--set", "daemon.max_connections=1"]).start()
    try:
        if not kernel_shows_wchan():
            pytest.skip("this kernel does not show where a thread sleeps (/proc/PID/wchan): cannot see the write block")
        held = socket.socket(socket.AF_UNIX)
        held.connect(str(daemon.socket))  # the one connection allowed: every other one is refused with a warning
        deadline = time.monotonic() + DEADLINE * 4
        while not daemon.blocked_writing():  # until a warning line blocks on the full pipe
            assert time.monotonic() < deadline, "the daemon's main thread never blocked writing its log"
            for _ in range(20):
                with socket.socket(socket.AF_UNIX) as refused:
                    refused.settimeout(0.2)  # a full backlog (the loop is blocked) makes connect wait
                    try:
                        refused.connect(str(daemon.socket))
                    except (socket.timeout, BlockingIOError):
                        break
            time.sleep(0.05)
        daemon.proc.send_signal(signal.SIGTERM)
        # The handler has run once the signal is no longer pending and the write blocks again.
        wait_until(lambda: not pending(daemon.main_thread("status")) and daemon.blocked_writing(),
                   what="the SIGTERM handler to run inside the blocked write")
        reader = daemon.drain()
        try:
            assert daemon.proc.wait(DEADLINE * 2) == 0
        finally:
            held.close()
            reader.join(DEADLINE)
        text = daemon.output.decode(errors="replace")
        assert "stopping (SIGTERM)" in text and "INFO pineapple.daemon: stopped" in text, text[-3000:]
        assert "Logging error" not in text and "reentrant call" not in text, text[-3000:]
    finally:
        daemon.close()
        assert not os.path.exists(daemon.socket)
