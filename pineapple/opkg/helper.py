"""opkg runs in a short-lived helper process, so the daemon never loads ``sh``.

``sh`` (with which opkg must be run) costs the process that imports it
~6 MB RSS (1.14) to ~13 MB (2.x, which loads asyncio), and a Python process
never gives that back: a daemon that ran opkg once would carry it for as
long as it runs. :class:`HelperRunner` has :class:`~.runner.OpkgRunner`'s
interface, but each run happens in a child Python process that imports the
runner and ``sh`` and runs opkg there exactly as the daemon would
in-process (same settings, lock-wait retries, timeout, process group).

- The helper is started on the first run, kept while runs follow each
  other, and asked to exit :data:`LINGER` seconds after the last one ended
  (the opkg queue drained): an idle daemon has no helper.
- Requests go to its stdin, everything the runner reports comes back on
  its stdout, one JSON object a line: opkg's output lines as they arrive,
  the lock waits, each opkg process's pid and group (``on_spawn``), then the
  outcome (the run's fields, or the :class:`JobError` it raised) and
  whether the run was stopped (a timeout inside the helper).
- A stop (cancel, the job's timeout) is forwarded as a request; the helper
  stops its run as the in-process runner would (only opkg's own group).
- An install's plan (:meth:`HelperRunner.plan_install`: what it adds and
  the space that needs) is computed in the helper too, between runs: it
  parses the feed lists (thousands of packages, ~14 MiB while held), which
  the daemon then never holds. The daemon sends the names the installed
  packages satisfy; the helper reads the lists with the same settings and
  answers with package names and KiB.
- If the daemon dies, the helper's stdin ends: it lets a running opkg
  finish (stopping opkg half-way is worse), starts no other (no lock-wait
  retry: ``RunControl.abandon``) and exits. Its output still drains, so
  opkg never fails on a gone reader.

The helper costs a second interpreter (~10-20 MB) only while opkg runs
(opkg itself needs a few MB then too); see docs/opkg.md.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from .. import errors
from ..errors import JobError
from .runner import OPKG_SERIAL, LineSink, OpkgRun, OpkgRunner, RunControl, RunnerSettings, SpawnHook

LINGER = 3.0  # seconds the helper stays after a run, for the next one
RETIRE_WAIT = 10.0  # seconds to wait for a retired helper to exit
log = logging.getLogger("pineapple.opkg")

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import sys\nsys.path.insert(0, {root!r})\n"
         "from pineapple.opkg.helper import serve\nsys.exit(serve({lock_busy!r}))")


class HelperRunner(OpkgRunner):
    """An :class:`OpkgRunner` whose runs happen in a helper process.

    ``is_lock_busy`` must be a module-level function: the helper imports it
    by name (it is the daemon's own code, never anything a request names).
    """

    def __init__(self, settings: RunnerSettings, is_lock_busy: Callable[[OpkgRun], bool],
                 linger: float = LINGER) -> None:
        super().__init__(settings, is_lock_busy)
        name = f"{is_lock_busy.__module__}:{is_lock_busy.__qualname__}"
        if "<" in name:
            raise ValueError(f"is_lock_busy must be a module-level function, not {name}")
        self._lock_busy_name = name
        self.linger = linger
        self._lock = threading.Lock()
        self._helper: _Helper | None = None
        self._busy = False
        self._timer: threading.Timer | None = None
        self._runs = 0

    def run(self, args: list[str], on_line: LineSink, control: RunControl,
            on_wait: Callable[[float], None] | None = None, on_spawn: SpawnHook | None = None,
            tag: str | None = None) -> OpkgRun:
        """Run opkg once in the helper: same arguments, answers and errors
        as :meth:`OpkgRunner.run` (``on_spawn`` gets opkg's pid and group)."""
        callbacks = {name: callback for name, callback in (("on_wait", on_wait), ("on_spawn", on_spawn))
                     if callback is not None}
        with OPKG_SERIAL:  # one opkg process at a time, daemon-wide, as in-process
            control.check()
            helper = self._take()
            try:
                return self._run_in(helper, args, on_line, control, callbacks, tag)
            finally:
                self._release()

    def plan_install(self, names: list[str], satisfied: list[str]) -> tuple[list[str] | None, int | None]:
        """:meth:`.system.OpkgSystem.plan_install`'s answer, computed in the
        helper (same settings, same answer and errors as in-process)."""
        with OPKG_SERIAL:  # the helper does one thing at a time; so does its pipe
            helper = self._take()
            try:
                self._runs += 1
                helper.send({"plan": list(names), "satisfied": list(satisfied), "id": self._runs,
                             "settings": vars(self.settings)})
                final = helper.receive([], _ignore_line, {})
                if final is None:
                    raise JobError(f"the opkg helper process ended while planning the install "
                                   f"({helper.exit_text()})", errors.OPKG_FAILED)
            finally:
                self._release()
        if "error" in final:
            raise JobError(final["error"]["message"], final["error"]["code"])
        return final["plan"]["packages"], final["plan"]["needed_kb"]

    def close(self) -> None:
        """Let the helper go now (it finishes a run in progress first)."""
        with self._lock:
            helper, self._helper = self._helper, None
            self._cancel_timer()
        if helper is not None:
            helper.retire()

    @property
    def helper_pid(self) -> int | None:
        """The helper's pid while there is one (for tests and diagnostics)."""
        helper = self._helper
        return helper.pid if helper is not None else None

    # ------------------------------------------------------------ internals
    def _run_in(self, helper: _Helper, args: list[str], on_line: LineSink, control: RunControl,
                callbacks: dict[str, Callable[..., None]], tag: str | None) -> OpkgRun:
        self._runs += 1
        run_id = self._runs
        helper.send({"run": list(args), "id": run_id, "settings": vars(self.settings), "tag": tag,
                     "callbacks": sorted(callbacks)})
        control._forward_to(lambda reason: helper.send({"stop": reason, "id": run_id}))
        lines: list[str] = []
        try:
            final = helper.receive(lines, on_line, callbacks)
        finally:
            control._forward_to(None)
        if final is None:
            raise JobError(f"the opkg helper process ended during the run ({helper.exit_text()}); "
                           "opkg may have been left running", errors.OPKG_FAILED)
        if final.get("stopped") and not control.stopped:
            control.stop(final["stopped"])  # detached: only records why (a timeout in the helper)
        if "error" in final:
            raise JobError(final["error"]["message"], final["error"]["code"])
        return OpkgRun(stdout=lines, **final["done"])

    def _take(self) -> _Helper:
        """The live helper, started if there is none; marks the runner busy."""
        with self._lock:
            self._cancel_timer()
            self._busy = True
            helper = self._helper
            if helper is None or not helper.alive():
                self._helper = None
                if helper is not None:
                    helper.reap()
                try:
                    helper = self._helper = _Helper(_BOOT.format(root=_PACKAGE_ROOT,
                                                                 lock_busy=self._lock_busy_name))
                except BaseException:
                    self._busy = False
                    raise
            return helper

    def _release(self) -> None:
        with self._lock:
            self._busy = False
            helper = self._helper
            if helper is None:
                return
            if not helper.alive():
                self._helper = None
                helper.reap()
                return
            self._timer = threading.Timer(self.linger, self._retire_if_idle, args=(helper,))
            self._timer.daemon = True
            self._timer.name = "pineapple-opkg-linger"
            self._timer.start()

    def _retire_if_idle(self, helper: _Helper) -> None:
        with self._lock:
            if self._busy or self._helper is not helper:
                return
            self._helper, self._timer = None, None
        helper.retire()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Helper:
    """The daemon's end of one helper process."""

    def __init__(self, boot: str) -> None:
        if not sys.executable:
            raise JobError("cannot start the opkg helper: the Python interpreter's path is unknown",
                           errors.OPKG_FAILED)
        try:
            self.pid, stdin, stdout = spawn_with_pipes([sys.executable, "-c", boot])
        except OSError as exc:
            raise JobError(f"cannot start the opkg helper process: {exc}", errors.OPKG_FAILED) from None
        self.stdin, self.stdout = os.fdopen(stdin, "wb"), os.fdopen(stdout, "rb")
        self.returncode: int | None = None
        self._write_lock = threading.Lock()

    def alive(self) -> bool:
        return self._poll() is None

    def send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self._write_lock:
            try:
                self.stdin.write(data)
                self.stdin.flush()
            except (OSError, ValueError):  # it died (its stdout then ends) or was retired
                pass

    def receive(self, lines: list[str], on_line: LineSink,
                callbacks: dict[str, Callable[..., None]]) -> dict | None:
        """Deliver what the helper reports until the run's outcome (None:
        the helper ended first)."""
        for raw in self.stdout:
            message = json.loads(raw)
            if "line" in message:
                lines.append(message["line"])
                _call(on_line, message["line"])
            elif "call" in message:
                callback = callbacks.get(message["call"])
                if callback is not None:
                    _call(callback, *message["args"])
                if message.get("ack"):
                    self.send({"ack": message["ack"]})
            else:
                return message
        return None

    def retire(self) -> None:
        """End of input: the helper exits (after a run in progress)."""
        with self._write_lock:
            try:
                self.stdin.close()
            except OSError:
                pass
        self.reap(RETIRE_WAIT)

    def reap(self, timeout: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self._poll() is None:
            if time.monotonic() >= deadline:
                log.warning("the opkg helper (pid %d) did not exit within %gs", self.pid, timeout)
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        self.stdout.close()

    def exit_text(self) -> str:
        self.reap(1.0)
        rc = self.returncode
        if rc is None:
            return "still running"
        return f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"

    def _poll(self) -> int | None:
        """The exit status once the helper has ended (reaped once), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has ended, how is unknown
                self.returncode = -1
            else:
                if pid == self.pid:
                    self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.returncode


def spawn_with_pipes(argv: list[str]) -> tuple[int, int, int]:
    """Start ``argv`` in a session of its own with its stdin and stdout on
    new pipes; its stderr is the daemon's. (pid, stdin write end, stdout
    read end).

    Not :mod:`subprocess`: importing it costs the daemon ~0.8 MiB for as
    long as it runs (it pulls in ``locale`` too), for what ``os`` does in a
    few calls. ``posix_spawn`` (Python 3.8+) does not fork the daemon's
    memory at all; Python 3.7 has none, and gets fork + exec, with nothing
    but system calls in the child.
    """
    child_in, stdin = os.pipe()
    stdout, child_out = os.pipe()
    try:
        if hasattr(os, "posix_spawn"):
            pid = os.posix_spawn(argv[0], argv, os.environ, setsid=True,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                                 file_actions=[(os.POSIX_SPAWN_DUP2, child_in, 0),
                                               (os.POSIX_SPAWN_DUP2, child_out, 1)])
        else:
            pid = _fork_exec(argv, child_in, child_out)
    except BaseException:
        os.close(stdin)
        os.close(stdout)
        raise
    finally:
        os.close(child_in)
        os.close(child_out)
    return pid, stdin, stdout


def _fork_exec(argv: list[str], child_in: int, child_out: int) -> int:
    env = dict(os.environ)  # built before the fork: the child only makes system calls
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.setsid()
            os.dup2(child_in, 0)
            os.dup2(child_out, 1)
            for number in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(number, signal.SIG_DFL)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid


def _ignore_line(line: str) -> None:
    pass


def _call(callback: Callable[..., None], *args: Any) -> None:
    # As with sh's reader threads in-process: a failing callback never
    # breaks the run (and here it must not leave the helper's output unread).
    try:
        callback(*args)
    except Exception:  # noqa: BLE001
        log.exception("opkg output callback failed")


# ================================================================ the helper
def serve(lock_busy: str) -> int:
    """The helper process: run requests from stdin until it ends."""
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    module, _, name = lock_busy.partition(":")
    is_lock_busy = getattr(importlib.import_module(module), name)
    out = _Output(sys.stdout.buffer)
    current: tuple[int, RunControl] | None = None
    worker: threading.Thread | None = None
    for raw in sys.stdin.buffer:
        request = json.loads(raw)
        if "ack" in request:
            out.acked(request["ack"])
            continue
        if "stop" in request:
            if current is not None and current[0] == request["id"]:
                current[1].stop(request["stop"])
            continue
        if worker is not None:
            worker.join()  # the daemon sends one request at a time
        if "plan" in request:
            current = None
            worker = threading.Thread(target=_serve_plan, args=(request, out))
        else:
            current = (request["id"], RunControl())
            worker = threading.Thread(target=_serve_run, args=(request, current[1], out, is_lock_busy))
        worker.start()
    out.ended()  # no acknowledgement comes any more
    if current is not None:
        current[1].abandon()  # the running opkg finishes; no retry starts after the daemon's death
    if worker is not None:
        worker.join()
    return 0


def _serve_run(request: dict, control: RunControl, out: _Output, is_lock_busy: Callable[[OpkgRun], bool]) -> None:
    settings = RunnerSettings(**request["settings"])
    # on_spawn waits for the daemon to have handled it (it journals the
    # group before opkg is waited for); the others are only reported.
    callbacks = {name: _forwarder(out, name, request["id"] if name == "on_spawn" else 0)
                 for name in request["callbacks"]}
    try:
        run = OpkgRunner(settings, is_lock_busy).run(request["run"], lambda line: out.send({"line": line}),
                                                     control, callbacks.get("on_wait"), callbacks.get("on_spawn"),
                                                     request["tag"])
    except JobError as exc:
        out.send({"error": {"message": str(exc), "code": exc.code}, "stopped": control.reason})
    except Exception as exc:  # noqa: BLE001 - reported to the daemon as the run's error
        out.send({"error": {"message": f"opkg helper: {type(exc).__name__}: {exc}", "code": errors.OPKG_FAILED},
                  "stopped": control.reason})
    else:
        fields = dict(vars(run))
        del fields["stdout"]  # the daemon has every line already
        out.send({"done": fields, "stopped": control.reason})


def _serve_plan(request: dict, out: _Output) -> None:
    from .system import OpkgSystem

    try:
        system = OpkgSystem(RunnerSettings(**request["settings"]))
        packages, needed = system.plan_in_process(request["plan"], request["satisfied"])
    except JobError as exc:
        out.send({"error": {"message": str(exc), "code": exc.code}})
    except Exception as exc:  # noqa: BLE001 - reported to the daemon as the plan's error
        out.send({"error": {"message": f"opkg helper: {type(exc).__name__}: {exc}", "code": errors.OPKG_FAILED}})
    else:
        out.send({"plan": {"packages": packages, "needed_kb": needed}})


def _forwarder(out: _Output, name: str, ack: int) -> Callable[..., None]:
    if not ack:
        return lambda *args: out.send({"call": name, "args": list(args)})

    def forward_and_wait(*args: Any) -> None:
        out.send({"call": name, "args": list(args), "ack": ack})
        out.wait_ack(ack)

    return forward_and_wait


class _Output:
    """JSON lines to the daemon, whole lines from any thread; the daemon's
    acknowledgements of calls that wait for one."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._acks = threading.Condition()
        self._acked = 0
        self.gone = False

    def acked(self, ack: int) -> None:
        with self._acks:
            self._acked = max(self._acked, ack)
            self._acks.notify_all()

    def wait_ack(self, ack: int) -> None:
        with self._acks:
            while self._acked < ack and not self.gone:
                self._acks.wait()

    def send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):
                self.ended()  # the daemon is gone: the run still finishes

    def ended(self) -> None:
        with self._acks:
            self.gone = True
            self._acks.notify_all()
