"""The dev gateway: static front ends and forwarding to module sockets."""
from __future__ import annotations

import http.client as httpclient
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from pineapple.modules import Module
from pineapple.modules.gateway import API_PATH, Gateway
from tests.modules.helpers import EXAMPLES, REPO, WAIT, http, in_parallel, wait_for


def post(gateway: Gateway, body, **kwargs):
    status, headers, data = http(gateway.url + API_PATH, body, **kwargs)
    return status, json.loads(data)


def echo_module(sock_dir, name="packetsnoop") -> Module:
    module = Module(name, socket_dir=str(sock_dir))
    module.register_action_handler("echo", lambda request: request.to_dict())
    module.register_action_handler("fail", lambda request: ("it failed", False))
    module.register_action_handler("slow", lambda request: time.sleep(1.5) or "late")
    return module


def test_forwards_requests_and_answers(gateway, sock_dir, serve):
    serve(echo_module(sock_dir))
    status, answer = post(gateway, {"module": "packetsnoop", "action": "echo", "text": "line\nbreak", "n": 1})
    assert status == 200
    assert answer == {"payload": {"module": "packetsnoop", "action": "echo", "text": "line\nbreak", "n": 1}}
    # A module's own error answer is still a 200: the front end reads "error".
    assert post(gateway, {"module": "packetsnoop", "action": "fail"}) == (200, {"error": "it failed"})
    # A pretty-printed body is forwarded as well (re-encoded compactly).
    pretty = json.dumps({"module": "packetsnoop", "action": "echo", "x": [1, 2]}, indent=2).encode()
    assert post(gateway, pretty)[1]["payload"]["x"] == [1, 2]


@pytest.mark.parametrize("keep_open", [False, True], ids=["first-closed", "first-kept-open"])
def test_talks_to_a_module_like_the_mk7_api_server(sock_dir, keep_open):
    """What reaches the module's socket: the request with no newline on one
    connection (closed, or kept open with --keep-first-open), then a second
    connection that sends nothing and reads the answer."""
    path = sock_dir / "recorder.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(2)
    seen: dict = {}

    def module_side():
        request, _ = listener.accept()
        request.settimeout(WAIT)
        data = b""
        while not data.endswith(b"}"):
            data += request.recv(65536)
        seen["request"] = data
        waiter, _ = listener.accept()
        waiter.settimeout(0.3)
        try:
            seen["waiter_sent"] = waiter.recv(10)
        except socket.timeout:
            seen["waiter_sent"] = None  # nothing, and no EOF either
        request.settimeout(0.3)
        try:
            seen["first_after"] = request.recv(10)  # b"": closed by the gateway; timeout: kept open
        except socket.timeout:
            seen["first_after"] = None
        waiter.sendall(b'{"payload": "recorded"}')
        waiter.close()
        request.close()

    thread = threading.Thread(target=module_side, daemon=True)
    thread.start()
    with Gateway(str(EXAMPLES), str(sock_dir), port=0, keep_first_open=keep_open) as gateway:
        assert post(gateway, {"module": "recorder", "action": "x", "n": 1}) == (200, {"payload": "recorded"})
    thread.join(WAIT)
    listener.close()
    path.unlink()
    assert seen["request"] == b'{"module":"recorder","action":"x","n":1}'
    assert seen["waiter_sent"] is None
    assert seen["first_after"] == (None if keep_open else b"")


def test_concurrent_requests_each_get_their_own_answer(sock_dir, serve):
    module = Module("packetsnoop", socket_dir=str(sock_dir), max_workers=4)
    module.register_action_handler("slow_echo", lambda request: time.sleep(request.delay) or request.n)
    serve(module)
    with Gateway(str(EXAMPLES), str(sock_dir), port=0) as gateway:
        results = in_parallel(lambda i: [post(gateway, {"module": "packetsnoop", "action": "slow_echo", "n": [i, k],
                                                        "delay": ((i * 7 + k * 3) % 5) / 100})[1] for k in range(4)], 6)
    assert results == {i: [{"payload": [i, k]} for k in range(4)] for i in range(6)}


def test_modules_without_a_directory_are_forwarded_too(gateway, sock_dir, serve):
    serve(echo_module(sock_dir, name="nodir"))
    assert post(gateway, {"module": "nodir", "action": "echo"})[0] == 200


def test_gateway_errors(gateway, sock_dir, serve):
    status, answer = post(gateway, b"{nope")
    assert (status, answer["code"]) == (400, "invalid_json") and "not valid JSON" in answer["error"]
    assert post(gateway, b"[1, 2]") == (400, {"error": "the body must be a JSON object", "code": "invalid_request"})
    assert post(gateway, {"action": "x"})[1]["code"] == "invalid_request"
    assert post(gateway, {"module": "../etc", "action": "x"})[1]["code"] == "invalid_request"
    assert post(gateway, {"module": "packetsnoop"})[1]["code"] == "invalid_request"
    status, answer = post(gateway, {"module": "nosuchmodule", "action": "x"})
    assert (status, answer["code"]) == (404, "unknown_module")
    status, answer = post(gateway, {"module": "netinfo", "action": "interfaces"})
    assert (status, answer["code"]) == (503, "module_not_running") and "not running" in answer["error"]
    status, answer = post(gateway, {"module": "packetsnoop", "action": "x", "blob": "x" * (1024 * 1024)})
    assert (status, answer["code"]) == (413, "request_too_large")
    status, answer = post(gateway, b'{"module": "packetsnoop"}', content_type="text/plain")
    assert (status, answer["code"]) == (415, "unsupported_media_type")
    status, answer = post(gateway, {"module": "packetsnoop", "action": "x"}, headers={"Host": "evil.example"})
    assert (status, answer["code"]) == (403, "forbidden")
    status, _, body = http(gateway.url + API_PATH)
    assert (status, json.loads(body)["code"]) == (405, "method_not_allowed")
    status, _, body = http(gateway.url + "/api/other", {"x": 1})
    assert status == 404


def test_module_timeout_and_bad_answers(sock_dir, serve, tmp_path):
    serve(echo_module(sock_dir))
    with Gateway(str(EXAMPLES), str(sock_dir), port=0, module_timeout=0.5) as gateway:
        status, answer = post(gateway, {"module": "packetsnoop", "action": "slow"})
        assert (status, answer["code"]) == (504, "module_timeout")

    # Something that is not a module answering garbage.
    path = sock_dir / "garbage.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)

    def answer_garbage():
        request, _ = listener.accept()  # the MK7 way: the request here...
        request.recv(65536)
        request.close()
        waiter, _ = listener.accept()  # ...and the answer on the next connection
        waiter.sendall(b"<html>not json</html>")
        waiter.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    with Gateway(str(EXAMPLES), str(sock_dir), port=0) as gateway:
        status, answer = post(gateway, {"module": "garbage", "action": "x"})
    listener.close()
    assert (status, answer["code"]) == (502, "bad_module_answer") and "not JSON" in answer["error"]


def test_a_module_that_accepts_nothing_is_busy(gateway, sock_dir):
    """A backend stuck in a handler (Hak5's loop: one request at a time, backlog 1) fills its backlog."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_dir / "stuck.sock"))
    listener.listen(0)
    queued = []
    try:
        for _ in range(3):  # fill the backlog; these connections are never accepted
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            try:
                client.connect(str(sock_dir / "stuck.sock"))
            except BlockingIOError:
                client.close()
                break
            queued.append(client)
        status, answer = post(gateway, {"module": "stuck", "action": "x"})
        assert (status, answer["code"]) == (503, "module_busy"), answer
    finally:
        for client in queued:
            client.close()
        listener.close()


def test_serves_front_end_files(gateway):
    status, headers, body = http(gateway.url + "/modules/packetsnoop/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"Packet Snoop" in body
    status, headers, body = http(gateway.url + "/modules/packetsnoop/app.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and b"poll_job" in body
    status, headers, _ = http(gateway.url + "/modules/packetsnoop")
    assert status == 301 and headers["Location"] == "/modules/packetsnoop/"
    for path, code in (("/modules/packetsnoop/module.py", 404), ("/modules/packetsnoop/../netinfo/module.py", 404),
                       ("/modules/packetsnoop/%2e%2e/%2e%2e/setup.py", 404), ("/modules/nosuch/", 404),
                       ("/modules/packetsnoop/missing.js", 404), ("/elsewhere", 404)):
        assert http(gateway.url + path)[0] == code, path
    status, _, body = http(gateway.url + "/")
    assert status == 200 and b"packetsnoop" in body and b"netinfo" in body


def test_lists_modules(gateway, sock_dir, serve):
    serve(echo_module(sock_dir))
    _, _, body = http(gateway.url + "/api/modules")
    modules = {m["name"]: m for m in json.loads(body)["modules"]}
    assert modules["packetsnoop"] == {"name": "packetsnoop", "running": True, "page": True}
    assert modules["netinfo"] == {"name": "netinfo", "running": False, "page": False}


def test_connection_after_an_error(gateway, sock_dir, serve):
    serve(echo_module(sock_dir))
    conn = httpclient.HTTPConnection("127.0.0.1", gateway.port, timeout=WAIT)
    try:
        conn.request("POST", API_PATH, body=b'{"module": "packetsnoop", "action": "echo"}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["payload"]["action"] == "echo"
        conn.request("POST", API_PATH, body=b"x" * 100, headers={"Content-Type": "text/plain"})
        response = conn.getresponse()
        assert response.status == 415
        response.read()
        # The gateway closed that connection (an unread body); the client reconnects.
        conn.request("POST", API_PATH, body=b'{"module": "packetsnoop", "action": "echo"}',
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_runs_as_a_command(sock_dir):
    proc = subprocess.Popen([sys.executable, "-m", "pineapple.modules.gateway", "--port", "0",
                             "--modules-dir", str(EXAMPLES), "--socket-dir", str(sock_dir)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("gateway on http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        wait_for(lambda: http(url + "/")[0] == 200, what="gateway")
        proc.terminate()
        assert proc.wait(WAIT) == 0
    finally:
        proc.kill()
