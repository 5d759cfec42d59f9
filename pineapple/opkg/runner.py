"""Running the opkg binary: one process at a time, streamed, stoppable.

- opkg is started through the ``sh`` package (1.14 or 2.x; imported on
  first use: it costs ~12 MB at idle) with an argument list, never a shell
  string, in its own session and process group, with stdout on a pty so
  opkg line-buffers and progress arrives live (on a pipe opkg
  block-buffers; see shared/reference/opkg.md).
- A run ends when opkg has exited **and** both its streams are read to
  EOF: real opkg prints its ``Collected errors:`` block and exits within a
  millisecond, so deciding on the exit alone loses the error text. We read
  them ourselves (:mod:`.streams`): sh stops reading 2 s after the exit,
  and on a busy device its reader can be further behind than that.
- Every run from this process holds one lock: the daemon never runs two
  opkg processes at once.
- When *another* process holds opkg's lock (LuCI, a cron job), the run is
  retried with backoff for up to ``lock_wait`` seconds; the lock file is
  never deleted.
- Stopping (cancel, timeout) signals only this run's process group with
  :func:`stop_process_group`: SIGINT first (opkg then writes its status
  database and exits 130, so a rollback knows what it unpacked), SIGTERM
  and SIGKILL after graces. Other opkg processes are never touched.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Callable

from .. import errors
from ..errors import JobError
from ..record import Record

if TYPE_CHECKING:
    from .streams import OutputStreams

OPKG_SERIAL = threading.Lock()  # one opkg process at a time, daemon-wide
# SIGINT -> SIGTERM: opkg blocks SIGINT while it unpacks one package (so its
# database and the files agree); a big package on slow flash takes seconds.
INT_GRACE = 10.0
KILL_GRACE = 3.0  # SIGTERM -> SIGKILL
_GONE_POLL = 0.02  # each poll reads /proc: a handful of ms of CPU a second on a router, during a stop only

LineSink = Callable[[str], None]
SpawnHook = Callable[[int, int], None]  # (pid, pgid) of a started opkg
TAG_VARIABLE = "PINEAPPLE_JOBD_RUN"  # a run's tag in opkg's environment (see OpkgRunner.run)


class OpkgRun(Record):
    """The outcome of one opkg process."""

    def __init__(self, argv: list[str], rc: int, stdout: list[str], stderr: str, seconds: float,
                 lock_waits: int = 0) -> None:
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        self.seconds, self.lock_waits = seconds, lock_waits


class RunnerSettings(Record):
    """How to run opkg (see docs/config.md, ``config opkg``)."""

    def __init__(self, binary: str = "opkg", offline_root: str = "", conf: str = "",
                 extra_args: list[str] | None = None, timeout: float = 900.0, lock_wait: float = 120.0,
                 env_path: str = "") -> None:
        self.binary, self.offline_root, self.conf = binary, offline_root, conf
        self.extra_args: list[str] = list(extra_args) if extra_args is not None else []
        self.timeout, self.lock_wait, self.env_path = timeout, lock_wait, env_path


def group_exists(pgid: int) -> bool:
    """Is a live process (not a zombie) still in process group ``pgid``?

    Zombies are left out: opkg exits on SIGINT without waiting for its
    maintainer script's shell, and that orphan's zombie lasts until init
    reaps it (seconds in some containers); it has nothing left to stop."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # there is one; it is not ours to signal
    try:
        return any(_is_live_member(pid, pgid) for pid in _pids())
    except OSError:
        return True  # no /proc: the group answers signals, so take it as there


def stop_process_group(pgid: int, int_grace: float | None = None, term_grace: float | None = None,
                       poll: float = _GONE_POLL, hurry: threading.Event | None = None) -> str | None:
    """Stop process group ``pgid`` the way opkg wants to be stopped, and wait.

    SIGINT first (opkg writes its status database, then exits 130), SIGTERM
    when the group is still there after ``int_grace`` seconds, SIGKILL after
    ``term_grace`` more; returns once no live process is left in the group
    (zombies do not count), or right after the SIGKILL. The answer is the
    last signal's name ("SIGINT", "SIGTERM", "SIGKILL"), or None when the
    group was already gone.

    Works for any group, not only a child of this process (e.g. an opkg
    orphaned by a crash of the daemon); a child that has exited counts as
    gone before it is reaped.

    ``hurry`` set ends the SIGINT grace at once: the caller saw opkg itself
    exit (its database is written), so what is left of the group is a
    maintainer script opkg abandoned, with no reason to be waited for."""
    graces = (INT_GRACE if int_grace is None else int_grace, KILL_GRACE if term_grace is None else term_grace)
    last = None
    for signum, grace, early in ((signal.SIGINT, graces[0], hurry), (signal.SIGTERM, graces[1], None)):
        if not _signal_group(pgid, signum):
            return last
        last = signum.name
        if _wait_gone(pgid, grace, poll, early):
            return last
    return signal.SIGKILL.name if _signal_group(pgid, signal.SIGKILL) else last


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _wait_gone(pgid: int, seconds: float, poll: float, early: threading.Event | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while group_exists(pgid):
        if time.monotonic() >= deadline or (early is not None and early.is_set()):
            return False
        time.sleep(poll)
    return True


class RunControl:
    """Lets a job stop its opkg run from another thread.

    Cheap until used: its events are made when first needed (a lock-wait
    sleep or a stop; a run's "opkg has exited" when it attaches), so a
    control that never sees either holds a lock and a few fields."""

    __slots__ = ("reason", "_stopped", "_pgid", "_stopper", "_leader_gone", "_forward", "_abandoned", "_lock")

    def __init__(self) -> None:
        self.reason: str | None = None  # "cancelled" or "timeout" once stopped
        self._stopped: threading.Event | None = None  # what sleep() waits on; set by stop()
        self._pgid: int | None = None
        self._stopper: threading.Thread | None = None
        self._leader_gone: threading.Event | None = None  # per attached run: its opkg was reaped
        self._forward: Callable[[str], None] | None = None
        self._abandoned = False  # see abandon()
        self._lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def abandon(self) -> None:
        """Whoever asked for the run is gone (the daemon died): the opkg
        process now running may finish (stopping it half-way is worse), but
        no other starts, not even a lock-wait retry, since nobody would
        answer for what it did (a restart's recovery has had its look)."""
        self._abandoned = True

    def stop(self, reason: str = "cancelled") -> None:
        """Stop the current run (and any later one) of this job; returns at
        once (the signals are sent on a thread of their own)."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            if self._stopped is not None:
                self._stopped.set()
            self._start_stopper()
            forward = self._forward
        if forward is not None:
            forward(self.reason or reason)

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped first; True when stopped."""
        with self._lock:
            if self.reason is not None:
                return True
            if self._stopped is None:
                self._stopped = threading.Event()
            stopped = self._stopped
        return stopped.wait(seconds)

    def check(self) -> None:
        """Raise the stop reason as a :class:`JobError` if stopped (or abandoned)."""
        if self.stopped:
            code = errors.TIMEOUT if self.reason == "timeout" else errors.CANCELLED
            raise JobError(f"opkg run {self.reason}", code)
        if self._abandoned:
            raise JobError("opkg run abandoned: the daemon that asked for it is gone", errors.CANCELLED)

    def _start_stopper(self) -> None:  # under self._lock
        if self._pgid is not None and self._stopper is None:
            self._stopper = threading.Thread(target=stop_process_group, args=(self._pgid,),
                                             kwargs={"hurry": self._leader_gone},
                                             name=f"stop-opkg-{self._pgid}", daemon=True)
            self._stopper.start()

    def _attach(self, pgid: int) -> None:
        with self._lock:
            self._pgid = pgid
            self._leader_gone = threading.Event()
            if self.stopped:
                self._start_stopper()

    def _forward_to(self, forward: Callable[[str], None] | None) -> None:
        """While set, a stop calls ``forward(reason)`` too (at once if
        already stopped): the run happens in another process, which stops
        it (pineapple/opkg/helper.py). None: no more forwarding."""
        with self._lock:
            self._forward = forward
            stopped = self.stopped
        if forward is not None and stopped:
            forward(self.reason or "cancelled")

    def _detach(self) -> None:
        """After the run's process was reaped: let a stop in progress finish
        (what is left of the group: a maintainer script's children), so
        nothing of this run still writes when the caller rolls back. opkg
        itself is gone, so that takes SIGTERM (and SIGKILL after
        KILL_GRACE), not the rest of the SIGINT grace."""
        with self._lock:
            stopper, self._stopper, self._pgid = self._stopper, None, None
            leader_gone, self._leader_gone = self._leader_gone, None
        if leader_gone is not None:
            leader_gone.set()
        if stopper is not None:
            stopper.join()


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
            on_wait: Callable[[float], None] | None = None, on_spawn: SpawnHook | None = None,
            tag: str | None = None) -> OpkgRun:
        """Run opkg once (retrying while another process holds its lock).

        ``on_line`` gets each stdout line as it arrives; ``on_wait`` the
        seconds waited so far before each lock retry; ``on_spawn`` the pid
        and process group of each opkg process right after it started,
        before it is waited for (e.g. to journal it). ``tag`` goes into
        opkg's environment as ``PINEAPPLE_JOBD_RUN`` (:func:`tagged_groups`
        finds the run by it, even if ``on_spawn`` never got to record it). Raises a
        :class:`JobError` (``timeout``, ``cancelled``, ``opkg_not_found``)."""
        started, waits = time.monotonic(), 0
        with OPKG_SERIAL:
            while True:
                control.check()
                run = self._run_once(args, on_line, control, on_spawn, tag)
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

    def _run_once(self, args: list[str], on_line: LineSink, control: RunControl,
                  on_spawn: SpawnHook | None, tag: str | None = None) -> OpkgRun:
        argv = self.argv(args)
        out: list[str] = []
        err: list[str] = []

        def take_line(line: str) -> None:
            line = line.rstrip("\r\n")
            out.append(line)
            on_line(line)

        started = time.monotonic()
        from .streams import OutputStreams  # lazy: the daemon runs opkg in the helper, not here

        streams = OutputStreams()
        try:
            process = self._spawn(argv, streams, tag).process
        except BaseException:
            streams.close()
            raise
        streams.started()

        def drain() -> int:
            return streams.drain(process, take_line, err.append)

        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            control.stop("timeout")

        timer = threading.Timer(self.settings.timeout, on_timeout) if self.settings.timeout else None
        try:
            control._attach(process.pgid)
            if on_spawn is not None:
                _call_spawn_hook(on_spawn, process, drain)
            if timer is not None:
                timer.daemon = True
                timer.start()
            rc = drain()
        finally:
            if timer is not None:
                timer.cancel()
            control._detach()
        if timed_out.is_set():
            raise JobError(f"opkg did not finish within {self.settings.timeout:g}s and was stopped",
                           errors.TIMEOUT)
        return OpkgRun([self.settings.binary, *argv], rc, out, "".join(err), time.monotonic() - started)

    def _spawn(self, argv: list[str], streams: OutputStreams, tag: str | None = None):
        import sh  # lazy: sh costs ~12 MB RSS and ~90 ms to import

        try:
            command = sh.Command(self.settings.binary)
        except sh.CommandNotFound:
            raise JobError(f"opkg not found: {self.settings.binary!r} is not an executable on PATH",
                           errors.OPKG_NOT_FOUND) from None
        # _new_session, not sh 2.x's _new_group (sh 1.14 has none): its own
        # session is its own process group too, and without a controlling
        # terminal opkg can never stop on reading the daemon's one. stdin is
        # /dev/null, not sh's pipe: that pipe's writer thread polls every
        # 0.1 s and sh waits for it at the end of each run. stdout and stderr
        # are descriptors we read ourselves (sh hands them to opkg as they are).
        # A tagged run checks, just before it becomes opkg, that the process
        # that forked it still lives: one whose parent died meanwhile could
        # otherwise start after the next daemon's recovery looked for it.
        preexec = _exit_if_orphaned(os.getpid()) if tag else None
        with open(os.devnull, "rb") as devnull:
            return command(*argv, _in=devnull, _bg=True, _bg_exc=False, _new_session=True,
                           _out=streams.child_out, _err=streams.child_err, _ok_code=range(-256, 256),
                           _env=self._env(tag), _preexec_fn=preexec)

    def _env(self, tag: str | None = None) -> dict[str, str]:
        env = {"LC_ALL": "C", "PATH": self.settings.env_path or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if tag:
            env[TAG_VARIABLE] = tag
        for key, value in os.environ.items():
            # TMPDIR and every fault knob of the development stand-in pass through.
            if key == "TMPDIR" or key.startswith("OPKG_STANDIN_"):
                env[key] = value
        return env


def _exit_if_orphaned(parent: int) -> Callable[[], None]:
    def check() -> None:  # in the forked child, before exec: system calls only
        if os.getppid() != parent:
            os._exit(255)
    return check


def _call_spawn_hook(on_spawn: SpawnHook, process, drain: Callable[[], int]) -> None:
    """``on_spawn(pid, pgid)``; if it raises, this opkg is stopped and reaped
    before the error goes on, so no run is left going unobserved."""
    try:
        on_spawn(process.pid, process.pgid)
    except BaseException:
        stopper = threading.Thread(target=stop_process_group, args=(process.pgid,), daemon=True)
        stopper.start()
        drain()
        stopper.join()
        raise


# ------------------------------------------------- processes by identity
def process_start_time(pid: int) -> int | None:
    """When ``pid`` started (``starttime`` of /proc/PID/stat: clock ticks
    since boot), None when no such process lives (or it is a zombie). A pid
    plus its start time names one process for good: a recycled pid has
    another start time."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_our_group(pgid: int, start_time: int) -> bool:
    """Is process group ``pgid`` still the one whose leader (pid == pgid)
    started at ``start_time``, with a live member left to stop? The leader
    must show that start time (a zombie still does), or be gone while the
    group lives on (a pid is never reused while a process group bears
    it). Never for init or this process's own group. Zombies alone (an
    orphan init has not reaped yet) are nothing to stop."""
    if pgid <= 1 or pgid == os.getpgid(0):
        return False
    leader = _stat_fields(pgid)
    if leader is not None and int(leader[19]) != start_time:
        return False
    return any(_is_live_member(pid, pgid) for pid in _pids())


def tagged_groups(tag: str) -> list[int]:
    """Process groups with a live process whose environment carries
    ``PINEAPPLE_JOBD_RUN=tag``: a run that was started with that tag (and
    its children), found even when nobody could write down its pid."""
    wanted = f"{TAG_VARIABLE}={tag}".encode()
    groups = set()
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                tagged = wanted in environ.read().split(b"\0")
        except OSError:
            continue
        fields = _stat_fields(pid)
        if tagged and fields is not None and fields[0] not in ("Z", "X"):
            groups.add(int(fields[2]))
    return sorted(groups)


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _is_live_member(pid: int, pgid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, ...]
    (field 3 of proc(5) is index 0)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()
