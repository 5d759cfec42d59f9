"""Out of file descriptors: the daemon neither spins nor dies, and takes
waiting clients once descriptors are available again."""
from __future__ import annotations

import os
import resource
import socket
import time

import pytest

from tests.api.helpers import Line, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing another process's limits needs root")


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_accept_pauses_on_emfile_and_resumes(module_daemons):
    daemon = module_daemons()
    pid = daemon.proc.pid
    held = Line(daemon.socket)
    assert held.request({"action": "ping"})["ok"]
    original = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    open_fds = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_fds, original[1]))  # not one more
    waiting = []
    try:
        for _ in range(3):  # connect() succeeds (the backlog), accept() fails with EMFILE
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(15)
            sock.connect(str(daemon.socket))
            sock.sendall(b'{"action":"ping","id":"late"}\n')
            waiting.append(sock)
        wait_until(lambda: "cannot accept connections" in daemon.log(), what="accept to fail")
        assert held.request({"action": "ping"})["ok"]  # the open connection is still served
        before = cpu_ticks(pid)
        time.sleep(0.5)  # a measurement window: a busy loop on the readable listener would burn ~50 ticks
        assert cpu_ticks(pid) - before <= 5
        assert daemon.proc.poll() is None
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, original)
    for sock in waiting:  # taken within a second or so of descriptors coming back
        assert b'"id":"late"' in sock.recv(4096)
        sock.close()
    held.close()
