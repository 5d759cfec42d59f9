"""Talking to module sockets and the gateway the way real clients do."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "modules"
WAIT = 15.0  # the longest any test waits for one thing
CONNECTS = threading.Lock()  # held from a request's first connect to its second


def exchange(path: str | os.PathLike[str], data: bytes, keep_open: bool = False, timeout: float = WAIT) -> bytes:
    """One request the way the MK7's API server sends it: connect, write the
    request (no newline), then close that connection (``keep_open=False``)
    or leave it open (``keep_open=True``); connect a second time, send
    nothing, and read the answer until the module closes that connection."""
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        first.settimeout(timeout)
        second.settimeout(timeout)
        # Answers are paired with requests by connection order: no other
        # thread's connection may come between these two (see pineapple.modules.server).
        with CONNECTS:
            first.connect(os.fspath(path))
            first.sendall(data)
            if not keep_open:
                first.close()
            second.connect(os.fspath(path))
        return read_to_eof(second)
    finally:
        first.close()
        second.close()


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    for chunk in iter(lambda: sock.recv(65536), b""):
        chunks.append(chunk)
    return b"".join(chunks)


def ask(path: str | os.PathLike[str], action: str, keep_open: bool = False, **fields: Any) -> dict:
    """One request as a JSON object (no newline, as the MK7 sends it); the decoded answer."""
    raw = exchange(path, json.dumps({"action": action, **fields}).encode(), keep_open=keep_open)
    assert not raw.endswith(b"\n"), raw  # Hak5's answers carry no newline either
    return json.loads(raw)


def in_parallel(client, count: int) -> dict[int, Any]:
    """Run ``client(i)`` for i in range(count) on threads at once; {i: its result}."""
    results: dict[int, Any] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, client(i))) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    return results


def wait_for(predicate, timeout: float = WAIT, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def poll_until_complete(path: str | os.PathLike[str], job_id: str, timeout: float = WAIT) -> dict:
    """poll_job through the module until is_complete; returns the last payload."""
    def complete() -> dict | None:
        answer = ask(path, "poll_job", job_id=job_id)
        assert "payload" in answer, answer
        return answer["payload"] if answer["payload"]["is_complete"] else None
    return wait_for(complete, timeout, interval=0.2, what=f"job {job_id}")


def load_example(name: str) -> ModuleType:
    """Import modules/NAME/module.py (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / name / "module.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def http(url: str, body: bytes | dict | None = None, content_type: str = "application/json",
         headers: dict[str, str] | None = None, method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; (status, headers, body) also for 4xx/5xx."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", content_type)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
