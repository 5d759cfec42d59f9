"""A real pseudo-terminal for CLI tests: the program sees a tty on stdin,
stdout and stderr (its controlling terminal, so Ctrl-C typed into it sends
SIGINT to it as a shell would), and the test reads what a user would see."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

from tests.api.helpers import DEADLINE

CLI = [sys.executable, "-m", "pineapple.cli.main"]


class Terminal:
    """One program running on its own pty (``rows`` x ``columns``)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, rows: int = 40,
                 columns: int = 160) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.output = b""
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, len(output) after the chunk)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=_take_terminal, close_fds=True)
        os.close(slave)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def read_until(self, predicate: Callable[[str], object], timeout: float = DEADLINE * 2,
                   what: str = "output") -> str:
        """Read until ``predicate(text so far)`` holds; fail with the text after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self.text):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{self.text!r}")
            if not self._read(min(remaining, 0.5)) and self.proc.poll() is not None and not self._read(0):
                if predicate(self.text):
                    break
                raise AssertionError(f"exited ({self.proc.returncode}) before {what}:\n{self.text!r}")
        return self.text

    def type(self, data: bytes) -> None:
        """Keys typed by the user (b"\\x03" is Ctrl-C)."""
        os.write(self.master, data)

    def wait(self, timeout: float = DEADLINE * 2) -> int:
        """Read to the end and return the exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None or self._read(0):
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout}s:\n{self.text!r}")
            self._read(0.2)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(DEADLINE)
        os.close(self.master)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed
            return False
        self.output += chunk
        self.arrivals.append((time.monotonic(), len(self.output)))
        return bool(chunk)

    def time_of(self, text_index: int) -> float:
        """When the character at ``text_index`` of :attr:`text` arrived (ASCII output)."""
        return next(when for when, end in self.arrivals if end > text_index)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _take_terminal() -> None:
    # In the child: a new session whose controlling terminal is this pty, as a login shell has.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def cli_env(socket: str | os.PathLike | None, **extra: str) -> dict[str, str]:
    """The environment a user's shell would give the CLI (TERM set, NO_COLOR not)."""
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    env.update(TERM="xterm-256color", **extra)
    if socket is not None:
        env["PINEAPPLE_JOBD_SOCKET"] = str(socket)
    return env
