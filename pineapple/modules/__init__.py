"""Module backends for the WiFi Pineapple web UI, compatible with Hak5's
``pineapple.modules`` library.

    import logging
    from pineapple.modules import Module, Request

    module = Module("example", logging.INFO, dependencies=["tcpdump"])
    module.enable_dependency_actions()   # check/manage_dependencies, poll_job, rebind_last_job

    @module.handles_action("hello")
    def hello(request: Request):
        return f"hello {request.get('who', 'world')}"   # -> {"payload": "hello world"}

    @module.on_shutdown()
    def bye(signum):
        module.logger.info("stopping (signal %s)", signum)

    if __name__ == "__main__":
        module.start()                    # serves /tmp/modules/example.sock until SIGTERM

The protocol: the device's web server forwards the browser's
``{"module": NAME, "action": ACTION, ...}`` to the Unix stream socket
``/tmp/modules/NAME.sock``. A handler's return value ``X`` or ``(X, True)``
answers ``{"payload": X}``; ``(X, False)`` answers ``{"error": X}``.

What is different from Hak5's library (all fixes; the handler API is the same):

- **Framing.** One request per connection, read until a newline or the
  client's half-close (EOF), up to ``max_request`` bytes (64 KiB). Hak5's
  library read one ``recv()`` and could cut a request in two.
- **The answer goes back on the same connection**, which is then closed —
  what the gateway in :mod:`pineapple.modules.gateway` (and any sane web
  server) expects. Hak5's library answered on a *second* accepted
  connection; that is not supported.
- **Concurrency.** Handlers run on a small bounded thread pool
  (``max_workers``); accepting and reading stay on one thread, so a slow
  handler or a silent client never freezes the module.
- **Errors answer, the module lives on.** A handler that raises, returns a
  malformed tuple, or returns something that is not JSON gets an
  ``{"error": ...}`` answer (and a log line with the traceback).
- **Bounded log.** ``LOG_DIR/NAME.log`` rotates at 256 KiB, keeping one
  old file (at most 512 KiB in RAM).
- **Clean shutdown.** SIGTERM/SIGINT or :meth:`Module.shutdown`: the socket
  and pid file are removed, in-flight handlers get ``shutdown_grace``
  seconds, then the shutdown handlers run with the signal number (or None).
- **Dependencies.** Declare the module's opkg packages once and get
  ready-made actions that install them through pineapple-jobd (see
  :mod:`pineapple.modules.dependencies`).

Imports are kept cheap for a router: nothing from the daemon or its
client is imported until a dependency action runs.
"""
from __future__ import annotations

from .module import DEFAULT_SOCKET_DIR, SOCKET_DIR_ENV, Module, default_socket_dir
from .request import Request
from .server import ModuleError

__all__ = ["DEFAULT_SOCKET_DIR", "SOCKET_DIR_ENV", "DependencyError", "DependencyManager", "DependencySet",
           "Module", "ModuleError", "Request", "default_socket_dir"]


def __getattr__(name: str) -> object:
    # DependencySet/DependencyManager on first use (PEP 562): keeps ``import pineapple.modules`` small.
    if name in ("DependencySet", "DependencyManager", "DependencyError"):
        from . import dependencies

        return getattr(dependencies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
