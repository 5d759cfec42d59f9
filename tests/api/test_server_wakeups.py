"""The I/O thread's wake-ups from other threads are never lost (in process:
many threads hand work over at once, the last item must still run)."""
from __future__ import annotations

import tempfile
import threading

from pineapple.api.server import ApiServer
from pineapple.jobs import JobManager
from tests.api.helpers import wait_until


class Service:
    def __init__(self) -> None:
        self.manager = JobManager("test.wakeups", workers=1)


def test_call_soon_from_many_threads_never_loses_a_wake_up(tmp_path):
    service = Service()
    sock_dir = tempfile.mkdtemp(prefix="pj-", dir="/tmp")
    server = ApiServer(service, f"{sock_dir}/w.sock")
    server.listen()
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    done = []
    per_thread, threads = 1000, 4

    def hand_over() -> None:
        for _ in range(per_thread):
            server.call_soon(lambda: done.append(1))

    try:
        for _round in range(30):
            done.clear()
            workers = [threading.Thread(target=hand_over) for _ in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            # Nothing wakes the loop after the last hand-over but that hand-over itself.
            wait_until(lambda: len(done) == per_thread * threads, timeout=10,
                       what=f"{per_thread * threads} calls (ran {len(done)})")
    finally:
        server.stop()
        loop.join(10)
        server.close()
        service.manager.shutdown()
    assert not loop.is_alive()
