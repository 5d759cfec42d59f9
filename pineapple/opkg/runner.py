"""Running the opkg binary: one process at a time, streamed, stoppable.

- opkg is started through the ``sh`` package (1.14 or 2.x; imported on
  first use: it costs ~12 MB at idle) with an argument list, never a shell
  string, in its own session and process group, with stdout on a pty so
  opkg line-buffers and progress arrives live (on a pipe opkg
  block-buffers; see shared/reference/opkg.md).
- Every run from this process holds one lock: the daemon never runs two
  opkg processes at once.
- When *another* process holds opkg's lock (LuCI, a cron job), the run is
  retried with backoff for up to ``lock_wait`` seconds; the lock file is
  never deleted.
- Stopping (cancel, timeout) signals only this run's process group:
  SIGTERM, then SIGKILL after a short grace. Other opkg processes on the
  system are never touched.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import errors
from ..errors import JobError

OPKG_SERIAL = threading.Lock()  # one opkg process at a time, daemon-wide
KILL_GRACE = 3.0

LineSink = Callable[[str], None]


@dataclass
class OpkgRun:
    """The outcome of one opkg process."""

    argv: list[str]
    rc: int
    stdout: list[str]
    stderr: str
    seconds: float
    lock_waits: int = 0


@dataclass
class RunnerSettings:
    binary: str = "opkg"
    offline_root: str = ""
    conf: str = ""
    extra_args: list[str] = field(default_factory=list)
    timeout: float = 900.0
    lock_wait: float = 120.0
    env_path: str = ""


class RunControl:
    """Lets a job stop its opkg run from another thread."""

    def __init__(self) -> None:
        self.reason: str | None = None  # "cancelled" or "timeout" once stopped
        self._stopped = threading.Event()
        self._process = None
        self._lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self, reason: str = "cancelled") -> None:
        """Stop the current run (and any later one) of this job."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self._stopped.set()
            process = self._process
        if process is not None:
            _terminate_group(process)

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped first; True when stopped."""
        return self._stopped.wait(seconds)

    def check(self) -> None:
        """Raise the stop reason as a :class:`JobError` if stopped."""
        if self.stopped:
            code = errors.TIMEOUT if self.reason == "timeout" else errors.CANCELLED
            raise JobError(f"opkg run {self.reason}", code)

    def _attach(self, process) -> None:
        with self._lock:
            self._process = process
            stopped = self.stopped
        if stopped:
            _terminate_group(process)

    def _detach(self) -> None:
        with self._lock:
            self._process = None


class OpkgRunner:
    """Builds opkg command lines from settings and runs them."""

    def __init__(self, settings: RunnerSettings, is_lock_busy: Callable[[OpkgRun], bool]) -> None:
        self.settings = settings
        self._is_lock_busy = is_lock_busy

    def argv(self, args: list[str]) -> list[str]:
        """Full argument list (after the binary) for opkg ``args``."""
        s = self.settings
        base: list[str] = []
        if s.offline_root:
            base += ["-o", s.offline_root]
        if s.conf:
            base += ["-f", s.conf]
        return base + list(s.extra_args) + list(args)

    def run(self, args: list[str], on_line: LineSink, control: RunControl,
            on_wait: Callable[[float], None] | None = None) -> OpkgRun:
        """Run opkg once (retrying while another process holds its lock)."""
        started, waits = time.monotonic(), 0
        with OPKG_SERIAL:
            while True:
                control.check()
                run = self._run_once(args, on_line, control)
                if not self._is_lock_busy(run) or not self._lock_wait(started, waits, control, on_wait):
                    run.lock_waits = waits
                    return run
                waits += 1

    def _lock_wait(self, started: float, waits: int, control: RunControl,
                   on_wait: Callable[[float], None] | None) -> bool:
        """Back off before the next try; False when the limit is reached."""
        waited = time.monotonic() - started
        if waited >= self.settings.lock_wait:
            return False
        delay = min(0.25 * 2 ** waits, 5.0, self.settings.lock_wait - waited)
        if on_wait is not None:
            on_wait(waited)
        if control.sleep(delay):
            control.check()
        return True

    def _run_once(self, args: list[str], on_line: LineSink, control: RunControl) -> OpkgRun:
        argv = self.argv(args)
        out: list[str] = []
        err: list[str] = []

        def take_line(line: str) -> None:
            line = line.rstrip("\r\n")
            out.append(line)
            on_line(line)

        started = time.monotonic()
        process = self._spawn(argv, take_line, err.append)
        control._attach(process)
        try:
            self._wait(process, control)
        finally:
            control._detach()
        rc = process.exit_code if process.exit_code is not None else 255
        return OpkgRun([self.settings.binary, *argv], rc, out, "".join(err), time.monotonic() - started)

    def _spawn(self, argv: list[str], out: LineSink, err: LineSink):
        import sh  # lazy: sh costs ~12 MB RSS and ~90 ms to import

        try:
            command = sh.Command(self.settings.binary)
        except sh.CommandNotFound:
            raise JobError(f"opkg not found: {self.settings.binary!r} is not an executable on PATH",
                           errors.OPKG_NOT_FOUND) from None
        # _new_session, not sh 2.x's _new_group (sh 1.14 has none): its own
        # session is its own process group too, and without a controlling
        # terminal opkg can never stop on reading the daemon's one.
        return command(*argv, _bg=True, _bg_exc=False, _new_session=True, _tty_out=True,
                       _out=out, _err=err, _ok_code=range(-256, 256), _env=self._env(),
                       _decode_errors="replace")

    def _env(self) -> dict[str, str]:
        env = {"LC_ALL": "C", "PATH": self.settings.env_path or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        for key, value in os.environ.items():
            # TMPDIR and every fault knob of the development stand-in pass through.
            if key == "TMPDIR" or key.startswith("OPKG_STANDIN_"):
                env[key] = value
        return env

    def _wait(self, process, control: RunControl) -> None:
        import sh

        try:
            _wait_for(process, self.settings.timeout or None)
        except sh.TimeoutException:
            control.stop("timeout")
            _wait_for(process)
            raise JobError(f"opkg did not finish within {self.settings.timeout:g}s and was stopped",
                           errors.TIMEOUT) from None


def _wait_for(process, timeout: float | None = None) -> None:
    """``process.wait()``; a death by signal shows in ``exit_code`` only.
    (sh 1.x raises SignalException for SIGTERM/SIGKILL whatever ``_ok_code``
    allows; sh 2.x honours ``_ok_code``.)"""
    import sh

    try:
        process.wait(timeout=timeout)
    except sh.SignalException:
        pass


def _terminate_group(process) -> None:
    """SIGTERM this run's process group, SIGKILL it if still there after a grace."""
    try:
        pgid = process.pgid
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError, AttributeError):
        return

    def finish() -> None:
        # Not only when opkg itself is still alive: a child of its group (a
        # maintainer script ignoring SIGTERM) can outlive it. The group id
        # stays reserved while any member lives; an empty group raises.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    timer = threading.Timer(KILL_GRACE, finish)
    timer.daemon = True
    timer.start()
