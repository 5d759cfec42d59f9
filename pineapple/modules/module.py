"""``Module``: the backend half of a WiFi Pineapple module.

Compatible with Hak5's ``pineapple.modules.Module`` (``Module(name,
log_level)``, ``@module.handles_action("x")``, ``@module.on_start()``,
``@module.on_shutdown()``, ``module.start()``, handlers returning ``X``,
``(X, True)`` or ``(X, False)``), with its defects fixed: see
:mod:`pineapple.modules` for the list.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..logger import LOG_MAX_BYTES, module_log_handler
from ..workers import WorkerPool, run_task
from .request import Request
from .server import ModuleError, ModuleSocket, bind_unix_socket

if TYPE_CHECKING:
    from .dependencies import DependencyManager, DependencySet

DEFAULT_SOCKET_DIR = "/tmp/modules"
SOCKET_DIR_ENV = "PINEAPPLE_MODULE_SOCKET_DIR"
MAX_REQUEST = 1024 * 1024  # Hak5's module read up to 10 MiB in one recv()
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_CO_VARARGS = 0x04  # code.co_flags: the function takes *args

Handler = Callable[[Request], Any]
F = TypeVar("F", bound=Callable[..., Any])


def default_socket_dir() -> str:
    """``$PINEAPPLE_MODULE_SOCKET_DIR``, else ``/tmp/modules`` (the device's)."""
    return os.environ.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR


class Module:
    """A module backend serving ``SOCKET_DIR/NAME.sock``.

    :param name: the module's name (also its socket, log and pid file names).
    :param log_level: level of ``module.logger`` (int or name such as "INFO").
    :param socket_dir: where ``NAME.sock`` and ``NAME.pid`` go (default
        ``$PINEAPPLE_MODULE_SOCKET_DIR`` or ``/tmp/modules``).
    :param log_dir: where ``NAME.log`` goes (default: ``socket_dir``); the log
        rotates at ``log_max_bytes`` keeping ``log_backups`` old file(s).
    :param storage_dir: small runtime state, e.g. the last dependency job id
        (default: ``socket_dir``, RAM on a device: no flash wear, and the
        daemon's jobs do not outlive a reboot either).
    :param jobd_socket: pineapple-jobd's socket (default: the client's default).
    :param max_workers: handler threads; more concurrent requests wait.
    :param dependencies: the opkg packages the module needs (see
        :meth:`enable_dependency_actions`).
    """

    def __init__(self, name: str, log_level: int | str = logging.WARNING, *, socket_dir: str | None = None,
                 log_dir: str | None = None, storage_dir: str | None = None, jobd_socket: str | None = None,
                 max_workers: int = 4, dependencies: Iterable[str] | None = None, max_request: int = MAX_REQUEST,
                 read_timeout: float = 10.0, shutdown_grace: float = 5.0, max_pending: int = 32,
                 log_max_bytes: int = LOG_MAX_BYTES, log_backups: int = 1) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ModuleError(f"invalid module name {name!r}: use letters, digits, '_', '-' and '.', "
                              "starting with a letter or digit, at most 64 characters")
        self.name = name
        self.socket_dir = socket_dir or default_socket_dir()
        self.log_dir = log_dir or self.socket_dir
        self.storage_dir = storage_dir or self.socket_dir
        self.jobd_socket = jobd_socket
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.max_request = max_request
        self.read_timeout = read_timeout
        self.shutdown_grace = shutdown_grace
        self.socket_path = os.path.join(self.socket_dir, f"{name}.sock")
        self.pid_path = os.path.join(self.socket_dir, f"{name}.pid")
        self.log_path = os.path.join(self.log_dir, f"{name}.log")
        self.logger = self._make_logger(log_level, log_max_bytes, log_backups)
        self._handlers: dict[str, Handler] = {}
        self._start_handlers: list[Callable[[], Any]] = []
        self._shutdown_handlers: list[Callable[[int | None], Any]] = []
        self._dependencies: DependencySet | None = None
        self._dependency_manager: DependencyManager | None = None
        self._lock = threading.Lock()
        self._socket: ModuleSocket | None = None
        self._started = False
        self._stop_requested = False
        self._stop_signal: int | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        if dependencies is not None:
            self.dependencies = dependencies

    # --------------------------------------------------------- registration
    def handles_action(self, action: str) -> Callable[[F], F]:
        """Decorator: the function handles requests whose ``action`` is ``action``."""
        def register(handler: F) -> F:
            self.register_action_handler(action, handler)
            return handler
        return register

    def register_action_handler(self, action: str, handler: Handler) -> None:
        """Make ``handler(request)`` answer ``action`` (replacing any earlier one)."""
        if not isinstance(action, str) or not action:
            raise ValueError("an action name must be a non-empty string")
        self._handlers[action] = handler

    def has_action(self, action: str) -> bool:
        """True when a handler is registered for ``action``."""
        return action in self._handlers

    @property
    def actions(self) -> list[str]:
        """The registered action names, sorted."""
        return sorted(self._handlers)

    def on_start(self, func: Callable[[], Any] | None = None) -> Any:
        """Decorator (``@module.on_start()`` or ``@module.on_start``): run
        ``func()`` in :meth:`start` once the socket is listening, before
        requests are served. A raising start handler is logged; the module
        still starts."""
        def register(handler: Callable[[], Any]) -> Callable[[], Any]:
            self.register_startup_handler(handler)
            return handler
        return register(func) if func is not None else register

    def register_startup_handler(self, handler: Callable[[], Any]) -> None:
        """Run ``handler()`` when the module starts (see :meth:`on_start`)."""
        self._start_handlers.append(handler)

    def on_shutdown(self, func: Callable[[int | None], Any] | None = None) -> Any:
        """Decorator (``@module.on_shutdown()`` or bare): run ``func(signum)``
        when the module stops; ``signum`` is the signal that stopped it, or
        None after :meth:`shutdown`."""
        def register(handler: Callable[[int | None], Any]) -> Callable[[int | None], Any]:
            self.register_shutdown_handler(handler)
            return handler
        return register(func) if func is not None else register

    def register_shutdown_handler(self, handler: Callable[[int | None], Any]) -> None:
        """Run ``handler(signum)`` when the module stops (see :meth:`on_shutdown`);
        :class:`pineapple.jobs.JobManager` registers its own this way. A
        handler that takes no argument is called without one (Hak5's
        library called it with the signal and it failed)."""
        self._shutdown_handlers.append(handler if _takes_an_argument(handler) else (lambda _signum: handler()))

    # -------------------------------------------------------- notifications
    def send_notification(self, message: str, level: int) -> bool:
        """Show ``message`` in the device's notification list, from this
        module, at ``level`` (``notification_helpers.INFO`` ... ``SUCCESS``).
        False (and a log line) when the device's notification socket is
        not there; see :mod:`pineapple.helpers.notification_helpers`."""
        from ..helpers.notification_helpers import send_notification

        return send_notification(message, self.name, level)

    # --------------------------------------------------------- dependencies
    @property
    def dependencies(self) -> DependencySet:
        """The opkg packages this module needs (a :class:`DependencySet`)."""
        from .dependencies import DependencySet

        if self._dependencies is None:
            self._dependencies = DependencySet(())
        return self._dependencies

    @dependencies.setter
    def dependencies(self, packages: Iterable[str]) -> None:
        from .dependencies import DependencySet

        self._dependencies = packages if isinstance(packages, DependencySet) else DependencySet(packages)

    @property
    def dependency_manager(self) -> DependencyManager:
        """Check, install and follow this module's dependencies from Python."""
        if self._dependency_manager is None:
            from .dependencies import DependencyManager

            self._dependency_manager = DependencyManager(self)
        return self._dependency_manager

    def enable_dependency_actions(self) -> DependencyManager:
        """Register ``check_dependencies`` (a bare boolean, as Hak5's pages
        read it), ``dependency_status``, ``manage_dependencies``,
        ``poll_job`` and ``rebind_last_job`` (an action the module already
        handles keeps its own handler). Returns the :class:`DependencyManager`."""
        manager = self.dependency_manager
        for action, handler in manager.actions().items():
            if action not in self._handlers:
                self.register_action_handler(action, handler)
        return manager

    # -------------------------------------------------------------- running
    def start(self) -> None:
        """Serve the socket until SIGTERM/SIGINT or :meth:`shutdown`; then
        clean up (socket and pid file removed, shutdown handlers run) and
        return. Can be called once per Module."""
        with self._lock:
            if self._started:
                raise ModuleError("Module.start() can only be called once")
            self._started = True
        os.makedirs(self.socket_dir, exist_ok=True)
        listener, inode = bind_unix_socket(self.socket_path, self.logger)
        pool = WorkerPool(run_task, size=self.max_workers, name=f"{self.name}-handler", max_pending=self.max_pending)
        served = ModuleSocket(listener, self.answer, pool, self.logger, self.max_request, self.read_timeout)
        with self._lock:
            self._socket = served
            if self._stop_requested:
                served.stop()
        previous = self._install_signal_handlers()
        try:
            self._write_pid_file()
            self.logger.info("module %s started on %s (pid %d)", self.name, self.socket_path, os.getpid())
            self._run_start_handlers()
            self._ready.set()
            served.serve()
        finally:
            self._ready.clear()
            self._stop(served, inode)
            self._restore_signal_handlers(previous)
            self._stopped.set()

    def shutdown(self, sig: int | None = None, frame: object = None) -> None:
        """Ask :meth:`start` to stop and return (from any thread or a handler).
        Usable as a signal handler, and as Hak5's: a subclass may override
        ``shutdown(self, sig, frame)`` and call ``super().shutdown(sig, frame)``;
        ``sig`` is then what the shutdown handlers receive."""
        signum = sig
        with self._lock:
            if not self._stop_requested:
                self._stop_requested = True
                self._stop_signal = signum
            served = self._socket
        if served is not None:
            served.stop()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the socket is serving (for tests and embedders)."""
        return self._ready.wait(timeout)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until :meth:`start` has cleaned up."""
        return self._stopped.wait(timeout)

    # ----------------------------------------------------------- answering
    def answer(self, raw: bytes) -> bytes:
        """The answer for one raw request (never raises): JSON, ASCII, no
        newline, as Hak5's library encodes it. This is what the socket
        sends back; tests may call it directly."""
        started = time.monotonic()
        action, key, value = self._dispatch(raw)
        line = self._encode(action, key, value)
        self.logger.debug("%s -> %s in %.0f ms", action, key, (time.monotonic() - started) * 1000)
        return line

    def call(self, action: str, **fields: Any) -> dict:
        """Run ``action`` in-process and return the decoded answer dict."""
        return json.loads(self.answer(json.dumps({"action": action, **fields}).encode()))

    def _dispatch(self, raw: bytes) -> tuple[str, str, Any]:
        try:
            data = json.loads(raw)
        except ValueError as exc:  # includes invalid UTF-8
            return "?", "error", f"request is not valid JSON: {exc}"
        if not isinstance(data, dict):
            return "?", "error", f"request must be a JSON object, got {type(data).__name__}"
        action = data.get("action")
        if not isinstance(action, str):
            return "?", "error", "request has no 'action' (a string)"
        handler = self._handlers.get(action)
        if handler is None:
            known = ", ".join(self.actions) or "none"
            # Hak5's words first (what existing pages and scripts may match), then ours.
            return action, "error", (f"No action handler registered for action {action} "
                                     f"(module {self.name} has: {known})")
        try:
            result = handler(Request(data))
        except Exception as exc:
            self.logger.exception("handler for %r raised", action)
            return action, "error", f"action {action!r} failed: {type(exc).__name__}: {exc}"
        return (action, *self._convention(action, result))

    def _convention(self, action: str, result: Any) -> tuple[str, Any]:
        """Hak5's return conventions: ``X``, ``(X, True)``, ``(X, False)``."""
        if not isinstance(result, tuple):
            return "payload", result
        if len(result) == 2 and isinstance(result[1], bool):
            return ("payload" if result[1] else "error"), result[0]
        self.logger.error("handler for %r returned a bad tuple: %r", action, result)
        return "error", (f"action {action!r} returned a tuple that is not (value, True) or (value, False) "
                         f"(a bug in the module)")

    def _encode(self, action: str, key: str, value: Any) -> bytes:
        try:
            # allow_nan=False: NaN/Infinity are not JSON and break JSON.parse in the browser.
            text = json.dumps({key: value}, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            self.logger.error("answer of %r is not JSON-serialisable: %s", action, exc)
            text = json.dumps({"error": f"action {action!r} returned a value that is not JSON-serialisable "
                                        f"({type(exc).__name__}: {exc})"})
        return text.encode("ascii")

    # ------------------------------------------------------------ internals
    def _make_logger(self, level: int | str, max_bytes: int, backups: int) -> logging.Logger:
        logger = logging.getLogger(f"pineapple.modules.{self.name}")
        logger.setLevel(level.upper() if isinstance(level, str) else level)
        logger.propagate = False  # the module's own log file is where its lines go
        for old in [h for h in logger.handlers if getattr(h, "_pineapple_module", False)]:
            logger.removeHandler(old)  # a Module built again with the same name (tests, reloads)
            old.close()
        handler = module_log_handler(self.log_path, max_bytes, backups)
        handler._pineapple_module = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        return logger

    def _run_start_handlers(self) -> None:
        for handler in self._start_handlers:
            try:
                handler()
            except Exception:
                self.logger.exception("start handler %s raised; starting anyway", _name_of(handler))

    def _stop(self, served: ModuleSocket, inode: int) -> None:
        served.close_listener()
        _unlink_if(self.socket_path, inode)  # no new connections from here on
        still_running = served.finish(self.shutdown_grace)
        if still_running:
            self.logger.warning("%d handler(s) still running after %.1fs; leaving them", still_running,
                                self.shutdown_grace)
        for handler in self._shutdown_handlers:
            try:
                handler(self._stop_signal)
            except Exception:
                self.logger.exception("shutdown handler %s raised", _name_of(handler))
        self._remove_pid_file()
        self.logger.info("module %s stopped%s", self.name,
                         f" by signal {self._stop_signal}" if self._stop_signal else "")
        for handler in self.logger.handlers:
            handler.flush()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal.signal only works on the main thread; embedders call shutdown()
        return {signum: signal.signal(signum, self._on_signal) for signum in _STOP_SIGNALS}

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.shutdown(signum, frame)  # an overriding shutdown(sig, frame) sees what Hak5's did

    def _write_pid_file(self) -> None:
        tmp = f"{self.pid_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(tmp, self.pid_path)

    def _remove_pid_file(self) -> None:
        try:
            with open(self.pid_path) as handle:
                if handle.read().strip() != str(os.getpid()):
                    return  # another instance's file
            os.unlink(self.pid_path)
        except OSError:
            pass


def _unlink_if(path: str, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def _takes_an_argument(func: Callable[..., Any]) -> bool:
    """Does ``func`` accept one positional argument? (No ``inspect``: it is
    a slow import on a router.) Anything but a plain function or method is
    assumed to, as documented."""
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if code is None:
        return True
    bound = 1 if getattr(func, "__self__", None) is not None else 0
    return bool(code.co_flags & _CO_VARARGS) or code.co_argcount - bound >= 1


def _name_of(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)
