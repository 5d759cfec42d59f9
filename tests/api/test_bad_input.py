"""Bad input over the real socket: every kind gets its stable code and the
daemon keeps serving (the same connection where it stays open, and new ones)."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from tests.api.helpers import DEADLINE, Line, ping_ok, wait_until

PING = {"action": "ping"}


@pytest.fixture(scope="module")
def jobd(module_daemons):
    return module_daemons()


@pytest.fixture(scope="module")
def short_idle(module_daemons):
    """A daemon that closes connections idle for one second."""
    return module_daemons(["--set", "daemon.idle_timeout=1"])


def job_count(path) -> int:
    with Line(path) as line:
        return sum(line.payload({"action": "stats"})["jobs"].values())


BAD_LINES = [
    (b"{not json", "invalid_json"),
    (b'{"action": "ping"', "invalid_json"),
    (b'{"action":"ping"} trailing', "invalid_json"),
    (b"\xff\xfe\x00\x80garbage\x01\x02", "invalid_json"),  # not UTF-8
    (b"[" * 20000, "invalid_json"),  # nested deeper than the parser goes
    (b"[1, 2]", "invalid_request"),
    (b'"ping"', "invalid_request"),
    (b"42", "invalid_request"),
    (b"null", "invalid_request"),
    (b'{"action": "reboot"}', "unknown_action"),
    (b'{"action": ""}', "unknown_action"),
    (b'{"nothing": "here"}', "missing_field"),
    (b'{"action": 5}', "invalid_field"),
    (b'{"action": ["ping"]}', "invalid_field"),
    (b'{"action": "poll_job"}', "missing_field"),
    (b'{"action": "poll_job", "job_id": 5}', "invalid_field"),
    (b'{"action": "poll_job", "job_id": "x", "remove_if_complete": "yes"}', "invalid_field"),
    (b'{"action": "submit"}', "missing_field"),
    (b'{"action": "submit", "job": 3}', "invalid_field"),
    (b'{"action": "submit", "job": "rm -rf /"}', "unknown_job_type"),
    (b'{"action": "submit", "job": "install"}', "missing_field"),
    (b'{"action": "submit", "job": "install", "packages": "tcpdump"}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "frobnicate": true}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "atomic": "no"}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "update": "sometimes"}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "timeout": -1}', "invalid_field"),
    (b'{"action": "list_jobs", "limit": "ten"}', "invalid_field"),
    (b'{"action": "list_jobs", "limit": 0}', "invalid_field"),
    (b'{"action": "list_jobs", "limit": 501}', "invalid_field"),
    (b'{"action": "list_jobs", "offset": -1}', "invalid_field"),
    (b'{"action": "list_jobs", "state": "sleeping"}', "invalid_field"),
    (b'{"action": "list_jobs", "limit": true}', "invalid_field"),
    (b'{"action": "installed"}', "missing_field"),
    (b'{"action": "installed", "packages": "tool-a"}', "invalid_field"),
]

BAD_PACKAGES = ["a;reboot", "--force-depends", "-d", "../../etc/passwd", "tool a", "", "$(reboot)",
                "UPPER", "a" * 200, "x\nreboot"]


@pytest.mark.parametrize(("line", "code"), BAD_LINES, ids=[f"{c}:{raw[:30]!r}" for raw, c in BAD_LINES])
def test_bad_request_gets_its_code_and_the_daemon_keeps_serving(jobd, line, code):
    with Line(jobd.socket) as conn:
        answer = conn.request(line + b"\n")
        assert answer["ok"] is False
        assert answer["code"] == code, answer
        assert answer["error"]  # a human message
        assert conn.request(PING)["payload"]["pong"] is True  # same connection
    assert ping_ok(jobd.socket)  # a new connection


@pytest.mark.parametrize("name", BAD_PACKAGES)
def test_invalid_package_names_are_refused_before_anything_runs(jobd, name):
    before = job_count(jobd.socket)
    with Line(jobd.socket) as conn:
        for action in ({"action": "submit", "job": "install", "packages": ["tool-a", name]},
                       {"action": "submit", "job": "uninstall", "packages": [name]},
                       {"action": "installed", "packages": [name]}):
            answer = conn.request(action)
            assert (answer["ok"], answer["code"]) == (False, "invalid_package_name"), answer
        if name:  # an empty dest means opkg's default dest
            dest = conn.request({"action": "submit", "job": "install", "packages": ["tool-a"], "dest": name})
            assert (dest["ok"], dest["code"]) == (False, "invalid_package_name"), dest
        assert conn.request(PING)["ok"] is True
    assert job_count(jobd.socket) == before  # nothing was queued


def test_the_id_is_echoed_on_answers_and_errors(jobd):
    with Line(jobd.socket) as conn:
        for request_id in (7, "abc", 1.5, [1, "x"], {"nested": {"id": True}}, False, 0, "", None, "\U0001f600"):
            assert conn.request({"action": "ping", "id": request_id})["id"] == request_id
            error = conn.request({"action": "reboot", "id": request_id})
            assert (error["code"], error["id"]) == ("unknown_action", request_id)
            missing = conn.request({"action": "poll_job", "id": request_id})
            assert (missing["code"], missing["id"]) == ("missing_field", request_id)
        assert "id" not in conn.request({"action": "ping"})


def test_many_requests_on_one_connection_are_answered_in_order(jobd):
    kinds = [{"action": "ping"}, {"action": "poll_job", "job_id": "nope"}, {"action": "job_types"},
             {"action": "frobnicate"}, {"action": "stats"}]
    requests = [dict(kinds[i % len(kinds)], id=i) for i in range(500)]
    with Line(jobd.socket) as conn:
        conn.send(b"".join(json.dumps(r).encode() + b"\n" for r in requests))  # pipelined in one write
        answers = [conn.read() for _ in requests]
    assert [a["id"] for a in answers] == list(range(500))
    for request, answer in zip(requests, answers):
        action = request["action"]
        if action == "ping":
            assert answer["payload"]["pong"] is True
        elif action == "poll_job":
            assert answer["code"] == "unknown_job"
        elif action == "job_types":
            assert {t["name"] for t in answer["payload"]["types"]} >= {"install", "uninstall", "update"}
        elif action == "frobnicate":
            assert answer["code"] == "unknown_action"
        else:
            assert answer["payload"]["pid"] == jobd.proc.pid


def test_a_flood_bigger_than_the_buffers_is_answered_completely_and_in_order(jobd):
    # ~2,000 answers of ~1 KiB: the daemon must stop reading (back-pressure)
    # and resume as this client drains, without losing or reordering anything.
    count = 2000
    with Line(jobd.socket, timeout=30) as conn:
        writer = threading.Thread(target=lambda: conn.send(b"".join(
            json.dumps({"action": "job_types", "id": i}).encode() + b"\n" for i in range(count))))
        writer.start()
        ids = [conn.read()["id"] for _ in range(count)]
        writer.join(10)
        assert ids == list(range(count))
        assert conn.request(PING)["payload"]["pong"] is True


def test_blank_lines_and_crlf_are_tolerated(jobd):
    with Line(jobd.socket) as conn:
        conn.send(b"\n   \n\r\n" + b'{"action":"ping","id":1}\r\n')
        assert conn.read()["id"] == 1


def test_a_last_request_without_newline_is_answered_at_end_of_input(jobd):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(jobd.socket))
    sock.sendall(b'{"action":"ping","id":"last"}')
    sock.shutdown(socket.SHUT_WR)
    data = b""
    for chunk in iter(lambda: sock.recv(65536), b""):
        data += chunk
    sock.close()
    assert json.loads(data)["id"] == "last"


# ------------------------------------------------------------------ sizes
def padded_ping(size: int) -> bytes:
    """A valid ping request line of exactly ``size`` bytes (newline excluded)."""
    head, tail = b'{"action":"ping","pad":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_a_line_of_exactly_64_kib_is_served(jobd):
    with Line(jobd.socket) as conn:
        assert conn.request(padded_ping(64 * 1024) + b"\n")["payload"]["pong"] is True
        assert conn.request(PING)["ok"] is True


@pytest.mark.parametrize("ending", [b"\n", b""], ids=["complete-line", "no-newline"])
def test_a_line_over_64_kib_is_refused_and_the_connection_closed(jobd, ending):
    # Even valid JSON: a complete over-long line must not be served just
    # because it arrived in one piece.
    with Line(jobd.socket) as conn:
        conn.send(padded_ping(64 * 1024 + 1) + ending)
        answer = conn.read()
        assert (answer["ok"], answer["code"]) == (False, "request_too_large")
        assert conn.closed_by_peer()
    assert ping_ok(jobd.socket)


def test_binary_garbage_without_newlines(jobd):
    with Line(jobd.socket) as conn:
        garbage = bytes(b for b in os.urandom(200_000) if b != 0x0A)
        try:
            conn.send(garbage)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may hang up before it has all of it
        answer = conn.read()
        assert answer["code"] == "request_too_large"
        assert conn.closed_by_peer()
    assert ping_ok(jobd.socket)


# ------------------------------------------------------------ slow clients
def test_a_stalled_half_line_blocks_nobody_and_is_closed_after_the_idle_timeout(short_idle):
    stalled = Line(short_idle.socket)
    stalled.send(b'{"action": "pi')
    opened = time.monotonic()
    # Others are served while the half line waits: a ping answered while the
    # stalled connection is still open (a server stuck on it would answer only
    # once the idle timeout had closed it). No clock bound: a busy machine
    # only means fewer pings.
    served_during_stall = 0
    while True:
        assert ping_ok(short_idle.socket)
        if stalled.closed_by_peer(timeout=0.01):
            break
        served_during_stall += 1
        assert time.monotonic() - opened < DEADLINE, "the stalled connection was never closed"
    assert served_during_stall >= 1
    assert time.monotonic() - opened >= 0.9  # closed by the idle timeout, not at once
    stalled.close()
    assert ping_ok(short_idle.socket)


def test_an_idle_connection_is_closed_after_the_idle_timeout(short_idle):
    with Line(short_idle.socket) as conn:
        assert conn.request(PING)["ok"]
        assert conn.closed_by_peer(timeout=10)


def test_a_client_that_never_reads_its_answers_is_dropped_and_blocks_nobody(short_idle):
    flooder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flooder.connect(str(short_idle.socket))
    flooder.setblocking(False)
    request = json.dumps({"action": "job_types"}).encode() + b"\n"
    chunk = request * 200
    dropped = threading.Event()
    stop = threading.Event()

    def flood() -> None:
        # Keep sending requests, never read an answer.
        while not stop.is_set():
            try:
                flooder.send(chunk)
            except BlockingIOError:
                time.sleep(0.005)  # the daemon stopped reading us: keep the pressure on
            except OSError:  # EPIPE / ECONNRESET: the daemon dropped us
                dropped.set()
                return

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        # Pings answered while the flooder is still connected show it blocks
        # nobody (no clock bound: a busy machine only means fewer of them).
        served_during_flood = 0
        deadline = time.monotonic() + 15
        while not dropped.is_set() and time.monotonic() < deadline:
            assert ping_ok(short_idle.socket)
            served_during_flood += 0 if dropped.is_set() else 1
        assert dropped.is_set(), "the daemon never dropped a client that does not read"
        assert served_during_flood >= 1, "no ping was answered while another client flooded the daemon"
    finally:
        stop.set()
        thread.join(5)
        flooder.close()
    with Line(short_idle.socket) as conn:
        stats = conn.payload({"action": "stats"})
    assert stats["connections"] == 1
    assert "does not read" in short_idle.log() or "idle connection" in short_idle.log()


def test_many_connections_opened_and_dropped_without_a_request(jobd):
    for _ in range(50):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(jobd.socket))
        sock.close()
    assert ping_ok(jobd.socket)
    with Line(jobd.socket) as conn:
        wait_until(lambda: conn.payload({"action": "stats"})["connections"] == 1, what="connections closed")


# ------------------------------------------------- strict JSON, Unicode text
def strict_loads(line: bytes):
    """json.loads that refuses NaN/Infinity: what any strict JSON reader does."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


UNREPRESENTABLE = [
    # lone UTF-16 surrogates: valid JSON escapes, but not Unicode text
    (b'{"action": "ping", "id": "\\ud800"}', "invalid_json"),
    (b'{"action": "ping", "id": "a\\udfffb"}', "invalid_json"),
    (b'{"action": "ping", "\\ud800": 1}', "invalid_json"),
    (b'{"action": "ping\\udc00"}', "invalid_json"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], '
     b'"on_success": [{"notify": "mqtt", "message": "\\ud800"}]}', "invalid_json"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-\\ud83d"]}', "invalid_json"),
    # not numbers in JSON, or too large for one
    (b'{"action": "ping", "id": NaN}', "invalid_json"),
    (b'{"action": "ping", "id": Infinity}', "invalid_json"),
    (b'{"action": "ping", "id": -Infinity}', "invalid_json"),
    (b'{"action": "ping", "id": 1e400}', "invalid_json"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "timeout": NaN}', "invalid_json"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "timeout": Infinity}', "invalid_json"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "timeout": 1e400}', "invalid_json"),
    # numbers outside their documented range
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "timeout": 0}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "timeout": 1e300}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "max_retries": -1}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "max_retries": 11}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "max_retries": 1.5}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "retry_delay": -1}', "invalid_field"),
    (b'{"action": "submit", "job": "install", "packages": ["tool-a"], "retry_delay": 3601}', "invalid_field"),
    (b'{"action": "submit", "job": "update", "retry_delay": -0.5}', "invalid_field"),
    (b'{"action": "list_jobs", "offset": 1e3}', "invalid_field"),
]


@pytest.mark.parametrize(("line", "code"), UNREPRESENTABLE, ids=[f"{c}:{raw[-40:]!r}" for raw, c in UNREPRESENTABLE])
def test_unrepresentable_values_are_refused_before_anything_happens(jobd, line, code):
    before = job_count(jobd.socket)
    with Line(jobd.socket) as conn:
        conn.send(line + b"\n")
        raw = conn.read_line()
        answer = strict_loads(raw)  # the answer itself is strict JSON
        assert (answer["ok"], answer["code"]) == (False, code), answer
        assert "id" not in answer or answer["id"] is None
        assert conn.request(PING)["payload"]["pong"] is True  # same connection, still served
    assert job_count(jobd.socket) == before, "a refused request registered a job"
    assert "Traceback" not in jobd.log()


def test_every_answer_is_strict_json_at_the_edges_of_the_ranges(jobd):
    with Line(jobd.socket) as conn:
        job = conn.payload({"action": "submit", "job": "install", "packages": ["tool-b"], "hold": True,
                            "timeout": 604800, "max_retries": 10, "retry_delay": 3600})
        conn.send({"action": "get_job", "job_id": job["job_id"]})
        record = strict_loads(conn.read_line())["payload"]
        assert (record["timeout"], record["max_retries"]) == (604800, 10)
        paired = conn.request({"action": "ping", "id": "\ud83d\ude00"})  # a valid pair is one character
        assert paired["id"] == "\U0001f600"
        assert conn.payload({"action": "cancel", "job_id": job["job_id"]})["cancelled"] is True


# ------------------------------------------------------- bounded per client
def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_follower_that_pipelines_without_reading_is_held_to_a_bounded_buffer(jobd):
    """Requests sent while following wait, unread, in a bounded buffer: the
    daemon stops reading (the client's writes block) instead of buffering
    megabytes; once the follow ends every request is answered, in order."""
    held = None
    with Line(jobd.socket) as control:
        held = control.payload({"action": "submit", "job": "install", "packages": ["tool-c"], "hold": True})["job_id"]
    follower = Line(jobd.socket, timeout=60)
    follower.send({"action": "follow", "job_id": held, "log": False})
    pad = "x" * 1000
    requests = [json.dumps({"action": "ping", "id": i, "pad": pad}).encode() + b"\n" for i in range(24_000)]
    total = sum(len(r) for r in requests)  # ~24 MB
    accepted = [0]

    def write() -> None:
        try:
            for start in range(0, len(requests), 64):
                chunk = b"".join(requests[start:start + 64])
                follower.sock.sendall(chunk)
                accepted[0] += len(chunk)
        except OSError:
            pass

    rss_before = rss_kib(jobd.proc.pid)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    # Wait until the writer is stuck (the daemon stopped reading) or has sent it all.
    last, still_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and accepted[0] < total:
        if accepted[0] != last:
            last, still_since = accepted[0], time.monotonic()
        elif time.monotonic() - still_since > 1.5:
            break
        time.sleep(0.05)
    grown = rss_kib(jobd.proc.pid) - rss_before
    taken = accepted[0]
    assert taken < 2 * 1024 * 1024, f"the daemon took {taken} bytes of requests from a client that follows"
    assert grown < 8 * 1024, f"the daemon grew by {grown} KiB"
    with Line(jobd.socket) as control:
        assert control.payload({"action": "release", "job_id": held})["released"] is True
    assert follower.read()["payload"] == {"following": held}
    while True:  # the job's events, up to its end line
        event = follower.read()
        if event.get("event") == "end":
            assert event["job"]["state"] == "succeeded"
            break
    ids = []
    while len(ids) < len(requests):
        answer = follower.read()
        assert answer["payload"]["pong"] is True
        ids.append(answer["id"])
    writer.join(30)
    assert ids == list(range(len(requests)))
    follower.close()
