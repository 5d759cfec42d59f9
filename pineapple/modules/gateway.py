"""Development gateway: plays the device's web server for module front ends.

    python -m pineapple.modules.gateway --modules-dir modules --port 8000
    # then open http://127.0.0.1:8000/modules/packetsnoop/

- ``GET /`` lists the modules (directories of ``--modules-dir``) and
  whether each backend is running; ``GET /api/modules`` the same as JSON.
- ``GET /modules/NAME/PATH`` serves the module's front end files from
  ``MODULES_DIR/NAME/`` (``index.html`` for the directory itself); only
  front end file types, never anything outside the module's directory.
- ``POST /api/module/request`` with a JSON object ``{"module": NAME,
  "action": ACTION, ...}`` forwards the object to ``SOCKET_DIR/NAME.sock``
  the way the MK7's API server does (connect, write the request with no
  newline, close; connect again and read the answer until EOF: see
  :mod:`pineapple.modules.server`) and answers the module's JSON answer
  (``{"payload": ...}`` or ``{"error": ...}``) with status 200, as the
  device does. ``--keep-first-open`` keeps the request's connection open
  while reading the answer (the other variant a server may use). The gateway's own
  errors answer ``{"error": message, "code": code}`` with a 4xx/5xx status:
  ``invalid_json`` / ``invalid_request`` 400, ``unknown_module`` 404,
  ``unsupported_media_type`` 415, ``request_too_large`` 413,
  ``length_required`` 411, ``bad_module_answer`` 502,
  ``module_not_running`` / ``module_busy`` 503, ``module_timeout`` 504.

Bound to 127.0.0.1 only; requests must carry a loopback ``Host`` (against
DNS rebinding) and API posts ``Content-Type: application/json`` (so another
web site cannot post to it without a CORS preflight, which is never
granted). It is a development tool, not the device's server.
"""
from __future__ import annotations

import argparse
import html
import json
import logging
import mimetypes
import os
import re
import signal
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from .module import default_socket_dir

log = logging.getLogger("pineapple.modules.gateway")

API_PATH = "/api/module/request"
MAX_BODY = 1024 * 1024  # the module's own request limit
MAX_ANSWER = 4 * 1024 * 1024
DISCARD_LIMIT = 16 * 1024 * 1024  # a refused body up to this size is read (and dropped) before the error
MODULE_TIMEOUT = 60.0
_MODULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_FRONT_END_TYPES = frozenset((".html", ".htm", ".js", ".mjs", ".css", ".svg", ".png", ".jpg", ".jpeg", ".gif",
                              ".ico", ".json", ".woff", ".woff2", ".map", ".txt"))
_LOOPBACK_HOSTS = frozenset(("127.0.0.1", "localhost", "[::1]"))


class GatewayError(Exception):
    """An error the gateway itself answers (not the module)."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Gateway:
    """The gateway server; :meth:`start` runs it on a background thread."""

    def __init__(self, modules_dir: str, socket_dir: str | None = None, port: int = 8000,
                 module_timeout: float = MODULE_TIMEOUT, max_body: int = MAX_BODY,
                 keep_first_open: bool = False) -> None:
        self.modules_dir = os.path.realpath(modules_dir)
        self.socket_dir = socket_dir or default_socket_dir()
        self.module_timeout = module_timeout
        self.max_body = max_body
        self.keep_first_open = keep_first_open
        self._connect_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.gateway = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        """Serve on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="gateway", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(10)
        self.httpd.server_close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- modules
    def module_names(self) -> list[str]:
        """Module directories plus modules with a socket but no directory."""
        names = set()
        for directory, suffix in ((self.modules_dir, ""), (self.socket_dir, ".sock")):
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            for entry in entries:
                name = entry[:-len(suffix)] if suffix and entry.endswith(suffix) else (None if suffix else entry)
                if name and _MODULE_NAME.match(name) and (suffix or os.path.isdir(os.path.join(directory, entry))):
                    names.add(name)
        return sorted(names)

    def socket_path(self, name: str) -> str:
        return os.path.join(self.socket_dir, f"{name}.sock")

    def is_running(self, name: str) -> bool:
        return os.path.exists(self.socket_path(name))

    def has_page(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.modules_dir, name, "index.html"))

    def forward(self, request: dict) -> dict:
        """Send ``request`` to its module; the module's answer object."""
        name = request.get("module")
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise GatewayError(HTTPStatus.BAD_REQUEST, "invalid_request",
                               "the request needs a 'module' (a module name)")
        if not isinstance(request.get("action"), str):
            raise GatewayError(HTTPStatus.BAD_REQUEST, "invalid_request", "the request needs an 'action' (a string)")
        path = self.socket_path(name)
        if not os.path.isdir(os.path.join(self.modules_dir, name)) and not os.path.exists(path):
            raise GatewayError(HTTPStatus.NOT_FOUND, "unknown_module", f"no module named {name!r}")
        body = json.dumps(request, separators=(",", ":")).encode("ascii")
        return _parse_answer(name, self._exchange(name, path, body))

    def _connect_lock(self, path: str) -> threading.Lock:
        with self._locks_lock:
            return self._connect_locks.setdefault(path, threading.Lock())

    def _exchange(self, name: str, path: str, body: bytes) -> bytes:
        """The MK7 way: the request on one connection, the answer on the next."""
        first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        first.settimeout(self.module_timeout)
        second.settimeout(self.module_timeout)
        try:
            # The module pairs an answer connection with the request before it:
            # no other request's connection may come between ours. Only the
            # connects are serialised; answers are awaited in parallel.
            with self._connect_lock(path):
                _connect(first, path, name)
                first.sendall(body)
                if not self.keep_first_open:
                    first.close()
                _connect(second, path, name)
            return _read_all(second, name)
        except socket.timeout:  # TimeoutError only from Python 3.10 on
            raise GatewayError(HTTPStatus.GATEWAY_TIMEOUT, "module_timeout",
                               f"module {name} did not answer within {self.module_timeout:g}s") from None
        except OSError as exc:
            raise GatewayError(HTTPStatus.BAD_GATEWAY, "bad_module_answer",
                               f"lost the connection to module {name}: {exc.strerror or exc}") from None
        finally:
            first.close()
            second.close()


def _connect(sock: socket.socket, path: str, name: str) -> None:
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise GatewayError(HTTPStatus.SERVICE_UNAVAILABLE, "module_not_running",
                           f"module {name} is not running (no backend listening on {path})") from None
    except BlockingIOError:  # its accept backlog is full: e.g. a one-request-at-a-time backend, busy
        raise GatewayError(HTTPStatus.SERVICE_UNAVAILABLE, "module_busy",
                           f"module {name} is busy (it accepts no connection now); try again") from None


def _read_all(sock: socket.socket, name: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER:
            raise GatewayError(HTTPStatus.BAD_GATEWAY, "bad_module_answer",
                               f"module {name}'s answer is larger than {MAX_ANSWER} bytes")
        chunks.append(chunk)


def _parse_answer(name: str, raw: bytes) -> dict:
    try:
        answer = json.loads(raw)
    except ValueError:
        shown = raw[:200].decode("utf-8", "replace")
        raise GatewayError(HTTPStatus.BAD_GATEWAY, "bad_module_answer",
                           f"module {name} answered something that is not JSON: {shown!r}") from None
    if not isinstance(answer, dict):
        raise GatewayError(HTTPStatus.BAD_GATEWAY, "bad_module_answer", f"module {name} answered a non-object")
    return answer


class _Handler(BaseHTTPRequestHandler):
    server_version = "pineapple-gateway"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stalls mid-request is dropped

    @property
    def gateway(self) -> Gateway:
        return self.server.gateway  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # -------------------------------------------------------------- verbs
    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, route: Any) -> None:
        try:
            self._check_host()
            route(unquote(urlsplit(self.path).path))
        except GatewayError as exc:
            self.close_connection = True  # an unread request body must not be taken for the next request
            self._json(exc.status, {"error": str(exc), "code": exc.code})
        except Exception as exc:  # never a silent 500 without a body
            log.exception("gateway error on %s %s", self.command, self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"gateway error: {exc}", "code": "internal_error"})

    def _get(self, path: str) -> None:
        if path == "/":
            self._send(HTTPStatus.OK, _index_page(self.gateway).encode(), "text/html; charset=utf-8")
        elif path == "/api/modules":
            g = self.gateway
            self._json(HTTPStatus.OK, {"modules": [{"name": n, "running": g.is_running(n), "page": g.has_page(n)}
                                                   for n in g.module_names()]})
        elif path.startswith("/modules/"):
            self._static(path[len("/modules/"):])
        elif path == API_PATH:
            raise GatewayError(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", f"use POST for {API_PATH}")
        else:
            raise GatewayError(HTTPStatus.NOT_FOUND, "not_found", f"nothing at {path}")

    def _post(self, path: str) -> None:
        if path != API_PATH:
            raise GatewayError(HTTPStatus.NOT_FOUND, "not_found", f"POST only to {API_PATH}")
        request = self._read_json_body()
        self._json(HTTPStatus.OK, self.gateway.forward(request))

    # ------------------------------------------------------------ helpers
    def _check_host(self) -> None:
        if _host_name(self.headers.get("Host") or "") not in _LOOPBACK_HOSTS:
            raise GatewayError(HTTPStatus.FORBIDDEN, "forbidden", "the gateway only answers loopback host names")

    def _read_json_body(self) -> dict:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise GatewayError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                               "send the request as Content-Type: application/json")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise GatewayError(HTTPStatus.LENGTH_REQUIRED, "length_required", "a Content-Length is required")
        if int(length) > self.gateway.max_body:
            self._discard(int(length))
            raise GatewayError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                               f"request body over {self.gateway.max_body} bytes")
        body = self.rfile.read(int(length))
        try:
            request = json.loads(body)
        except ValueError as exc:
            raise GatewayError(HTTPStatus.BAD_REQUEST, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise GatewayError(HTTPStatus.BAD_REQUEST, "invalid_request", "the body must be a JSON object")
        return request

    def _discard(self, length: int) -> None:
        """Read and drop a refused body (up to a bound) so the client, still
        sending, reads the error instead of a broken pipe."""
        remaining = min(length, DISCARD_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)

    def _static(self, rest: str) -> None:
        name, slash, inner = rest.partition("/")
        root = os.path.join(self.gateway.modules_dir, name)
        if not _MODULE_NAME.match(name) or not os.path.isdir(root):
            raise GatewayError(HTTPStatus.NOT_FOUND, "unknown_module", f"no module named {name!r}")
        if not slash:  # /modules/NAME: relative links need the trailing slash
            self._redirect(f"/modules/{name}/")
            return
        root = os.path.realpath(root)
        target = os.path.realpath(os.path.join(root, inner or "index.html"))
        if not target.startswith(root + os.sep) or not os.path.isfile(target):
            raise GatewayError(HTTPStatus.NOT_FOUND, "not_found", f"no file {inner!r} in module {name}")
        extension = os.path.splitext(target)[1].lower()
        if extension not in _FRONT_END_TYPES:
            raise GatewayError(HTTPStatus.NOT_FOUND, "not_found", f"{inner!r} is not a front end file")
        with open(target, "rb") as handle:
            data = handle.read()
        content_type = mimetypes.guess_type(target)[0] or "application/octet-stream"
        if content_type.startswith("text/") or extension in (".js", ".mjs", ".json", ".svg"):
            content_type += "; charset=utf-8"
        self._send(HTTPStatus.OK, data, content_type)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: HTTPStatus, body: dict) -> None:
        self._send(status, (json.dumps(body, ensure_ascii=False) + "\n").encode("utf-8"),
                   "application/json; charset=utf-8")

    def _send(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")  # edits show on reload while developing
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")  # so the client reconnects instead of reusing it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _host_name(header: str) -> str:
    """The host part of a Host header (``[::1]:8000`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def _index_page(gateway: Gateway) -> str:
    rows = []
    for name in gateway.module_names():
        state = "running" if gateway.is_running(name) else "not running"
        label = html.escape(name)
        link = f'<a href="/modules/{label}/">{label}</a>' if gateway.has_page(name) else label
        rows.append(f"<li>{link} — {state}</li>")
    items = "\n".join(rows) or "<li>no modules found</li>"
    return (f"<!doctype html><meta charset=utf-8><title>pineapple modules</title>"
            f"<h1>Modules</h1><p>from {html.escape(gateway.modules_dir)}, sockets in "
            f"{html.escape(gateway.socket_dir)}</p><ul>\n{items}\n</ul>\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pineapple.modules.gateway",
                                     description="Serve module front ends and forward their API requests "
                                                 "to module sockets (development only; 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default 8000; 0: any)")
    parser.add_argument("--modules-dir", default="modules", help="directory of module directories (default ./modules)")
    parser.add_argument("--socket-dir", default=None,
                        help="module sockets (default $PINEAPPLE_MODULE_SOCKET_DIR or /tmp/modules)")
    parser.add_argument("--timeout", type=float, default=MODULE_TIMEOUT, help="seconds to wait for a module's answer")
    parser.add_argument("--keep-first-open", action="store_true",
                        help="keep each request's connection open while reading the answer (default: close it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        gateway = Gateway(args.modules_dir, args.socket_dir, args.port, args.timeout,
                          keep_first_open=args.keep_first_open)
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    # SIGTERM stops serve_forever from another thread (shutdown() blocks the serving thread).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=gateway.httpd.shutdown).start())
    print(f"gateway on {gateway.url}/ (modules from {gateway.modules_dir}, sockets in {gateway.socket_dir})",
          flush=True)
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
