"""The Module framework on real Unix sockets: protocol, conventions,
robustness, concurrency, logging and shutdown."""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pineapple.modules import Module, ModuleError, Request
from pineapple.modules.server import FRESH
from tests.modules.helpers import REPO, WAIT, ask, exchange, in_parallel, read_to_eof, wait_for


def make(sock_dir: Path, name: str = "demo", **options) -> Module:
    return Module(name, "DEBUG", socket_dir=str(sock_dir), **options)


# ------------------------------------------------------------ conventions
def test_return_conventions(sock_dir, serve):
    module = make(sock_dir)

    @module.handles_action("plain")
    def plain(request):
        return {"n": 1}

    @module.handles_action("ok")
    def ok(request):
        return [1, 2], True

    @module.handles_action("fail")
    def fail(request):
        return "nope", False

    @module.handles_action("nothing")
    def nothing(request):
        return None

    module.register_action_handler("registered", lambda request: "direct")
    serve(module)
    assert ask(module.socket_path, "plain") == {"payload": {"n": 1}}
    assert ask(module.socket_path, "ok") == {"payload": [1, 2]}
    assert ask(module.socket_path, "fail") == {"error": "nope"}
    assert ask(module.socket_path, "nothing") == {"payload": None}
    assert ask(module.socket_path, "registered") == {"payload": "direct"}
    assert module.actions == ["fail", "nothing", "ok", "plain", "registered"]


def test_bad_handlers_answer_errors_and_the_module_lives_on(sock_dir, serve):
    module = make(sock_dir)

    @module.handles_action("raises")
    def raises(request):
        raise ValueError("kaputt")

    @module.handles_action("bad_tuple")
    def bad_tuple(request):
        return 1, 2, 3

    @module.handles_action("not_bool_tuple")
    def not_bool_tuple(request):
        return "x", "yes"

    @module.handles_action("not_json")
    def not_json(request):
        return {"when": object()}

    @module.handles_action("nan")
    def nan(request):
        return math.nan

    @module.handles_action("fine")
    def fine(request):
        return "still here"

    serve(module)
    path = module.socket_path
    assert ask(path, "raises") == {"error": "action 'raises' failed: ValueError: kaputt"}
    assert "not (value, True) or (value, False)" in ask(path, "bad_tuple")["error"]
    assert "not (value, True)" in ask(path, "not_bool_tuple")["error"]
    assert "not JSON-serialisable" in ask(path, "not_json")["error"]
    assert "not JSON-serialisable" in ask(path, "nan")["error"]
    assert ask(path, "fine") == {"payload": "still here"}
    log = Path(module.log_path).read_text()
    assert "Traceback" in log and "kaputt" in log


@pytest.mark.parametrize("keep_open", [False, True], ids=["first-closed", "first-kept-open"])
def test_protocol_errors_are_answered(sock_dir, serve, keep_open):
    """What Hak5's loop never answered ({}, non-JSON, no action) or died on gets an error answer."""
    module = make(sock_dir, max_request=1024, read_timeout=0.5)
    module.register_action_handler("echo", lambda request: request.to_dict())
    serve(module)
    path = module.socket_path

    def raw(data: bytes) -> dict:
        return json.loads(exchange(path, data, keep_open=keep_open))

    assert raw(b"{}") == {"error": "request has no 'action' (a string)"}
    assert raw(b'{"x": 1}') == {"error": "request has no 'action' (a string)"}
    assert raw(b"[1]") == {"error": "request must be a JSON object, got list"}
    assert ask(path, "missing", keep_open=keep_open) == \
        {"error": "No action handler registered for action missing (module demo has: echo)"}
    too_big = json.dumps({"action": "echo", "blob": "x" * 2000}).encode()
    assert raw(too_big) == {"error": "request too large (limit 1024 bytes)"}
    # Not JSON: ended by EOF when the first connection is closed, by the read timeout when it is kept open.
    bad = raw(b"{nope")
    assert ("not valid JSON" if not keep_open else "incomplete request") in bad["error"], bad
    assert "error" in raw(b"\xff\xfe")
    assert ask(path, "echo", keep_open=keep_open, n=1) == {"payload": {"action": "echo", "n": 1}}  # still alive


def test_mk7_framing(sock_dir, serve):
    module = make(sock_dir)
    module.register_action_handler("echo", lambda request: request.get("n"))
    serve(module)
    path = module.socket_path
    # No newline needed, the first connection kept open: a complete JSON value ends the request.
    assert exchange(path, b'{"action": "echo", "n": 1}', keep_open=True) == b'{"payload": 1}'
    # Pretty-printed (newlines inside) and with a trailing newline: still one request.
    pretty = json.dumps({"action": "echo", "n": 2}, indent=2).encode() + b"\n"
    assert exchange(path, pretty, keep_open=True) == b'{"payload": 2}'
    # Sent in pieces, first connection kept open; nothing is ever written on it, and the module closes it.
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as second:
        first.settimeout(WAIT)
        second.settimeout(WAIT)
        first.connect(path)
        for piece in (b'{"action": ', b'"echo", ', b'"n": 3', b"}"):
            first.sendall(piece)
            time.sleep(0.05)
        second.connect(path)
        assert read_to_eof(second) == b'{"payload": 3}'
        assert read_to_eof(first) == b""  # nothing on the request's connection, then EOF
    # Like Hak5's, the request's connection stays open until the answer's connection
    # has come: a server writing more after the JSON value (a newline) is not cut off.
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as second:
        first.settimeout(WAIT)
        second.settimeout(WAIT)
        first.connect(path)
        first.sendall(b'{"action": "echo", "n": 4}')
        time.sleep(0.2)  # the module has read the complete request by now
        first.sendall(b"\n")  # no BrokenPipeError
        second.connect(path)
        assert read_to_eof(second) == b'{"payload": 4}'
        assert read_to_eof(first) == b""  # closed once the answer's connection came
    # Non-ASCII goes out as JSON escapes (ASCII only, as Hak5's json_to_bytes).
    answer = exchange(path, '{"action": "echo", "n": "caf\u00e9 \u2713"}'.encode())
    assert answer == b'{"payload": "caf\\u00e9 \\u2713"}'


def test_first_connection_half_closed(sock_dir, serve):
    """The third thing a server may do with the request's connection: shut down its writing side."""
    module = make(sock_dir)
    module.register_action_handler("echo", lambda request: request.get("n"))
    serve(module)
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as waiter:
        first.settimeout(WAIT)
        waiter.settimeout(WAIT)
        first.connect(module.socket_path)
        first.sendall(b'{"action": "echo", "n": "half"')  # not complete: the EOF ends it
        first.shutdown(socket.SHUT_WR)
        waiter.connect(module.socket_path)
        assert json.loads(read_to_eof(waiter))["error"].startswith("request is not valid JSON")
        assert read_to_eof(first) == b""
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as waiter:
        waiter.settimeout(WAIT)
        first.connect(module.socket_path)
        first.sendall(b'{"action": "echo", "n": 7}')
        first.shutdown(socket.SHUT_WR)
        waiter.connect(module.socket_path)
        assert read_to_eof(waiter) == b'{"payload": 7}'


def test_a_waiter_that_half_closes_still_gets_its_answer_and_a_probe_none(sock_dir, serve):
    module = make(sock_dir)
    module.register_action_handler("echo", lambda request: request.get("n"))
    release = threading.Event()
    module.register_action_handler("slow", lambda request: release.wait(WAIT) and request.get("n"))
    serve(module)
    path = module.socket_path
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as waiter:
        waiter.settimeout(WAIT)
        first.connect(path)
        first.sendall(b'{"action": "echo", "n": 1}')
        first.close()
        waiter.connect(path)
        waiter.shutdown(socket.SHUT_WR)  # sends nothing, says so, and reads
        assert read_to_eof(waiter) == b'{"payload": 1}'
    # A probe (connect, close) between a request and its waiter takes nothing.
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as probe, \
            socket.socket(socket.AF_UNIX) as waiter:
        waiter.settimeout(WAIT)
        first.connect(path)
        first.sendall(b'{"action": "slow", "n": 2}')
        first.close()
        probe.connect(path)
        time.sleep(0.1)  # silent long enough to be paired with the request...
        probe.close()  # ...then gone without reading: not a waiter after all
        waiter.connect(path)
        release.set()
        assert read_to_eof(waiter) == b'{"payload": 2}'


def test_a_connection_with_no_request_gets_an_error(sock_dir, serve):
    module = make(sock_dir, read_timeout=0.5)
    module.register_action_handler("ping", lambda request: "pong")
    serve(module)
    # An empty request (connect, close) is nothing at all; the answer connection after it has nothing to wait for.
    answer = json.loads(exchange(module.socket_path, b""))
    assert answer["error"].startswith("no request to answer"), answer
    assert ask(module.socket_path, "ping") == {"payload": "pong"}


def test_silent_client_gets_an_error_and_blocks_nobody(sock_dir, serve):
    module = make(sock_dir, read_timeout=0.5)
    module.register_action_handler("ping", lambda request: "pong")
    serve(module)
    with socket.socket(socket.AF_UNIX) as stuck, socket.socket(socket.AF_UNIX) as waiter:
        stuck.settimeout(WAIT)
        waiter.settimeout(WAIT)
        stuck.connect(module.socket_path)
        stuck.sendall(b'{"action": "ping"')  # never completed, never closed
        waiter.connect(module.socket_path)
        assert ask(module.socket_path, "ping") == {"payload": "pong"}  # others are served meanwhile
        answer = json.loads(read_to_eof(waiter))
    assert answer["error"].startswith("incomplete request")


def test_abandoned_request_is_not_handed_to_the_next_client(sock_dir, serve):
    """A client that never connects for its answer (e.g. one that waits on
    the request's own connection, our old protocol) must not make the next
    client read its answer."""
    module = make(sock_dir, read_timeout=1.0)
    module.register_action_handler("echo", lambda request: request.get("n"))
    serve(module)
    path = module.socket_path
    with socket.socket(socket.AF_UNIX) as old_style:
        old_style.settimeout(WAIT)
        old_style.connect(path)
        old_style.sendall(b'{"action": "echo", "n": "abandoned"}\n')
        time.sleep(2 * FRESH)  # abandoned: nobody connected for its answer in time (a slower machine only adds)
        for n in range(3):
            assert ask(path, "echo", n=n) == {"payload": n}
        # Its connection never carries an answer; it is closed once the request has waited read_timeout.
        assert read_to_eof(old_style) == b""


def test_a_paired_connection_that_sends_is_a_request(sock_dir, serve):
    """Connections 1: request A; 2: connects silent (taken as A's waiter), then
    sends request B; 3: B's answer connection; 4: A's answer connection."""
    module = make(sock_dir)
    module.register_action_handler("echo", lambda request: request.get("n"))
    release = threading.Event()
    module.register_action_handler("slow", lambda request: release.wait(WAIT) and "A")
    serve(module)
    path = module.socket_path
    socks = [socket.socket(socket.AF_UNIX) for _ in range(4)]
    try:
        for sock in socks:
            sock.settimeout(WAIT)
        socks[0].connect(path)
        socks[0].sendall(b'{"action": "slow"}')
        socks[0].close()
        socks[1].connect(path)
        time.sleep(0.2)  # silent long enough to be paired with A
        socks[1].sendall(b'{"action": "echo", "n": "B"}')
        socks[1].close()
        socks[2].connect(path)
        assert json.loads(read_to_eof(socks[2])) == {"payload": "B"}
        socks[3].connect(path)
        release.set()
        assert json.loads(read_to_eof(socks[3])) == {"payload": "A"}
    finally:
        release.set()
        for sock in socks:
            sock.close()


# ------------------------------------------------------------ concurrency
def test_slow_handler_does_not_freeze_the_module(sock_dir, serve):
    module = make(sock_dir, max_workers=2)
    release = threading.Event()

    @module.handles_action("slow")
    def slow(request):
        release.wait(WAIT)
        return "slow done"

    module.register_action_handler("fast", lambda request: "fast")
    serve(module)
    slow_answer: list[dict] = []
    caller = threading.Thread(target=lambda: slow_answer.append(ask(module.socket_path, "slow")))
    caller.start()
    time.sleep(0.2)
    assert ask(module.socket_path, "fast") == {"payload": "fast"}
    assert slow_answer == []  # answered while the slow handler still holds its worker
    release.set()
    caller.join(WAIT)
    assert slow_answer == [{"payload": "slow done"}]


@pytest.mark.parametrize("keep_open", [False, True], ids=["first-closed", "first-kept-open"])
def test_concurrent_requests_never_cross(sock_dir, serve, keep_open):
    """Answers finish out of order (handlers sleep different times) yet each
    client reads its own: each answer goes to the connection after its request."""
    module = make(sock_dir, max_workers=4)
    module.register_action_handler("echo", lambda request: time.sleep(request.delay) or request.n)
    serve(module)
    answers = in_parallel(lambda i: [ask(module.socket_path, "echo", keep_open=keep_open, n=[i, k],
                                         delay=((i + k) % 4) / 50) for k in range(5)], 8)
    assert answers == {i: [{"payload": [i, k]} for k in range(5)] for i in range(8)}


def test_handler_pool_is_bounded(sock_dir, serve):
    module = make(sock_dir, max_workers=2, max_pending=1)
    running = []
    lock = threading.Lock()
    release = threading.Event()

    @module.handles_action("block")
    def block(request):
        with lock:
            running.append(request.get("i"))
        release.wait(WAIT)
        return request.get("i")

    serve(module)
    answers: dict[int, dict] = {}
    callers = [threading.Thread(target=lambda i=i: answers.__setitem__(i, ask(module.socket_path, "block", i=i)))
               for i in range(3)]
    for caller in callers[:2]:
        caller.start()
    wait_for(lambda: len(running) == 2, what="two handlers running")
    callers[2].start()  # waits in the queue (max_pending=1)
    time.sleep(0.2)
    assert len(running) == 2
    assert "busy" in ask(module.socket_path, "block", i=9)["error"]  # the queue is full
    release.set()
    for caller in callers:
        caller.join(WAIT)
    assert {i: a["payload"] for i, a in answers.items()} == {0: 0, 1: 1, 2: 2}


# ------------------------------------------------------------ request
def test_request_attributes():
    request = Request({"action": "scan", "channel": 6, "get": "field named get", "with-dash": True})
    assert request.action == "scan" and request.channel == 6
    assert request.get("channel") == 6 and request.get("band", "2.4") == "2.4"
    assert request["with-dash"] is True and "channel" in request and "band" not in request
    assert callable(request.get) and request.get("get") == "field named get"
    with pytest.raises(AttributeError) as info:
        _ = request.band
    message = str(info.value)
    assert "'scan'" in message and "'band'" in message and "channel" in message and "request.get" in message
    request.note = "annotated"
    assert request.to_dict()["note"] == "annotated"
    assert sorted(request) == ["action", "channel", "get", "note", "with-dash"]


def test_handlers_see_request_attributes_over_the_socket(sock_dir, serve):
    module = make(sock_dir)

    @module.handles_action("greet")
    def greet(request):
        return f"{request.greeting}, {request.get('who', 'world')}"

    serve(module)
    assert ask(module.socket_path, "greet", greeting="hi") == {"payload": "hi, world"}
    error = ask(module.socket_path, "greet")["error"]
    assert "AttributeError" in error and "'greeting'" in error


# ------------------------------------------------------------ logging
def test_log_file_is_bounded(sock_dir, serve):
    module = make(sock_dir, log_max_bytes=4096, log_backups=1)

    @module.handles_action("chatty")
    def chatty(request):
        for i in range(200):
            module.logger.info("line %d %s", i, "x" * 60)
        return True

    serve(module)
    for _ in range(3):
        assert ask(module.socket_path, "chatty") == {"payload": True}
    logs = sorted(p.name for p in sock_dir.iterdir() if p.name.startswith("demo.log"))
    assert logs == ["demo.log", "demo.log.1"]
    for name in logs:
        assert (sock_dir / name).stat().st_size <= 4096
    assert "line 199" in (sock_dir / "demo.log").read_text()


def test_log_dir_is_configurable(sock_dir, tmp_path, serve):
    module = make(sock_dir, log_dir=str(tmp_path / "logs"))
    module.register_action_handler("x", lambda request: module.logger.warning("hello log"))
    serve(module)
    ask(module.socket_path, "x")
    assert "hello log" in (tmp_path / "logs" / "demo.log").read_text()


# ------------------------------------------------------------ lifecycle
def test_start_and_shutdown_handlers_and_cleanup(sock_dir):
    module = make(sock_dir, shutdown_grace=5.0)
    events: list = []
    release = threading.Event()
    module.on_start()(lambda: events.append("start"))

    @module.on_start
    def broken_start():
        raise RuntimeError("start handler bug")

    @module.on_shutdown()
    def bye(signum):
        events.append(("shutdown", signum))

    @module.handles_action("slow")
    def slow(request):
        release.wait(WAIT)
        events.append("slow finished")
        return "late but answered"

    thread = threading.Thread(target=module.start)
    thread.start()
    assert module.wait_ready(WAIT)
    assert Path(module.socket_path).exists()
    assert Path(module.pid_path).read_text().strip() == str(os.getpid())
    answers: list[dict] = []
    caller = threading.Thread(target=lambda: answers.append(ask(module.socket_path, "slow")))
    caller.start()
    time.sleep(0.2)
    module.shutdown()
    wait_for(lambda: not Path(module.socket_path).exists(), what="socket removed")
    release.set()  # the in-flight handler finishes within the grace period
    thread.join(WAIT)
    caller.join(WAIT)
    assert answers == [{"payload": "late but answered"}]
    assert events == ["start", "slow finished", ("shutdown", None)]
    assert not Path(module.pid_path).exists()
    assert "start handler bug" in Path(module.log_path).read_text()
    with pytest.raises(ModuleError):
        module.start()


MODULE_SCRIPT = """
import sys
from pineapple.modules import Module
module = Module("sig", "INFO", socket_dir=sys.argv[1])
module.register_action_handler("ping", lambda request: "pong")
@module.on_shutdown()
def bye(signum):
    module.logger.info("shutdown handler got %s", signum)
module.start()
print("start returned", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_module_process_cleanly(sock_dir, signum):
    proc = subprocess.Popen([sys.executable, "-c", MODULE_SCRIPT, str(sock_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (sock_dir / "sig.sock").exists() or proc.poll() is not None, what="module socket")
        assert ask(sock_dir / "sig.sock", "ping") == {"payload": "pong"}
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert b"start returned" in output
    assert sorted(p.name for p in sock_dir.iterdir()) == ["sig.log"]  # socket and pid file gone
    assert f"shutdown handler got {int(signum)}" in (sock_dir / "sig.log").read_text()


def test_stale_socket_is_replaced_and_a_running_one_is_not(sock_dir, serve):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_dir / "demo.sock"))
    stale.close()  # a socket file nobody listens on: what a killed module leaves
    module = serve(make(sock_dir))
    module.register_action_handler("ping", lambda request: "pong")
    assert ask(module.socket_path, "ping") == {"payload": "pong"}
    with pytest.raises(ModuleError, match="already serves"):
        make(sock_dir).start()
    assert ask(module.socket_path, "ping") == {"payload": "pong"}


def test_bad_names_and_paths(sock_dir):
    for name in ("", "../x", "a/b", ".hidden", "x" * 65):
        with pytest.raises(ModuleError, match="invalid module name"):
            Module(name, socket_dir=str(sock_dir))
    long_dir = sock_dir / ("d" * 100)
    with pytest.raises(ModuleError, match="longer than 107 bytes"):
        Module("demo", socket_dir=str(long_dir)).start()


def test_in_process_call(sock_dir):
    module = make(sock_dir)
    module.register_action_handler("add", lambda request: request.a + request.b)
    assert module.call("add", a=1, b=2) == {"payload": 3}


def test_in_process_job_manager_attaches_to_a_module(sock_dir, serve):
    """pineapple.jobs.JobManager(module=...) registers poll_job and a shutdown handler, as with Hak5's."""
    from pineapple.jobs import Job, JobManager

    class Hello(Job):
        def do_work(self, logger):
            return "hello"

    module = make(sock_dir)
    manager = JobManager("demo-jobs", module=module, workers=1)
    serve(module)
    job_id = manager.execute_job(Hello())
    manager.wait(job_id, timeout=WAIT)
    assert ask(module.socket_path, "poll_job", job_id=job_id) == \
        {"payload": {"is_complete": True, "result": "hello", "job_error": None}}


def test_import_stays_cheap():
    """A module process on a router must not pay for the daemon client or the engine at import time."""
    code = ("import sys, pineapple.modules as m; m.Module('x', socket_dir='/nonexistent-dir-never-created'); "
            "import os; assert not os.path.exists('/nonexistent-dir-never-created'); "
            "print(sorted(n for n in sys.modules if n in ('sh', 'concurrent.futures') or n.startswith(("
            "'pineapple.api', 'pineapple.jobs', 'pineapple.daemon', 'paho'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
