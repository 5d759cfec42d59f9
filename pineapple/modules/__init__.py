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

The protocol is the MK7's (see :mod:`pineapple.modules.server`): the
device's API server forwards the browser's ``{"module": NAME, "action":
ACTION, ...}`` to the Unix stream socket ``/tmp/modules/NAME.sock`` on one
connection (no newline; the request ends where the JSON value ends, or at
EOF), then connects a second time and reads the answer until the module
closes it. A handler's return value ``X`` or ``(X, True)`` answers
``{"payload": X}``; ``(X, False)`` answers ``{"error": X}``.

What is different from Hak5's library (all fixes; the handler API and the
wire protocol are the same):

- **Framing.** A request is read whole (up to ``max_request``, 1 MiB),
  ended by a complete JSON value or EOF. Hak5's library read one
  ``recv()`` and could cut a request in two.
- **Every request is answered.** ``{}``, non-JSON, a missing ``action``, an
  oversized or incomplete request get an ``{"error": ...}`` answer on the
  answer connection; Hak5's answered nothing (and then took the server's
  answer connection for a request) or died.
- **Pairing.** Each answer connection gets the answer of the request just
  before it; a request nobody connects for is dropped instead of being
  handed to the next client (details and the one rule a client must keep
  in :mod:`pineapple.modules.server`).
- **Concurrency.** Handlers run on a small bounded thread pool
  (``max_workers``); accepting, reading and writing stay on one thread, so
  a slow handler or a silent client never freezes the module, and answers
  finishing out of order still reach their own clients.
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
