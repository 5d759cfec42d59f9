"""An in-process stand-in for the daemon with a scheduler: a JobManager, a
registry with tiny job types, a Scheduler and the real ApiServer on a short
socket path in /tmp, serving on a thread. The schedule actions are added to
``actions.HANDLERS`` the way the daemon wiring does
(``HANDLERS.update(schedule_actions.HANDLERS)``)."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from pineapple.api import actions, schedule_actions
from pineapple.api.client import JobClient
from pineapple.api.server import ApiServer
from pineapple.jobs import Job, JobManager
from pineapple.jobs.registry import JobTypeRegistry, Params
from pineapple.jobs.schedule.scheduler import ScheduleDefinition, Scheduler

WAIT = 10.0


class EchoJob(Job):
    """Returns its parameters."""

    def __init__(self, job_type: str, params: dict) -> None:
        super().__init__()
        self.job_type = job_type
        self._params = params

    def params(self) -> dict:
        return dict(self._params)

    def do_work(self, logger):
        logger.info("echo %s", self._params)
        return self._params


class GateJob(Job):
    job_type = "gate"

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def do_work(self, logger):
        self.gate.wait(WAIT)
        return "through"


def install_schedule_handlers(monkeypatch) -> None:
    """What the lead's one-line wiring in actions.py does, undone after the test."""
    for name, handler in schedule_actions.HANDLERS.items():
        monkeypatch.setitem(actions.HANDLERS, name, handler)


class ScheduleService:
    """Daemon-like: has ``manager``, ``registry`` and ``scheduler``, serves
    the socket API on a thread."""

    def __init__(self, state_dir: Path, clock=None, max_sleep: float | None = 3600.0) -> None:
        self.state_dir = state_dir
        self.gate = threading.Event()
        self.manager = JobManager("sched-e2e", clock=clock, workers=2, retention=None, stop_grace=1)
        self.registry = JobTypeRegistry()
        self._register_types()
        self.scheduler = Scheduler(self.manager, self.registry, state_dir=state_dir, max_sleep=max_sleep)
        # AF_UNIX paths are limited to 108 bytes: keep the socket under a short /tmp dir.
        self.sock_dir = tempfile.mkdtemp(prefix="pjs-", dir="/tmp")
        self.socket = os.path.join(self.sock_dir, "s.sock")
        self.server = ApiServer(self, self.socket)
        self._thread: threading.Thread | None = None

    def _register_types(self) -> None:
        def echo(params: dict) -> Job:
            return EchoJob("echo", dict(params))

        def install(params: dict) -> Job:
            p = Params(params, "install")
            job = EchoJob("install", {"packages": p.take("packages", list), "dest": p.take("dest", str, None)})
            p.finish()
            return job

        self.registry.register("echo", echo, "returns its parameters")
        self.registry.register("install", install, "pretends to install", {"packages": "names", "dest": "where"})
        self.registry.register("gate", lambda params: GateJob(self.gate), "waits for the gate")

    # --------------------------------------------------------- life cycle
    def start(self, config: list[ScheduleDefinition] | tuple = ()) -> ScheduleService:
        self.scheduler.load(config)
        self.scheduler.start()
        self.server.listen()
        self._thread = threading.Thread(target=self.server.serve_forever, name="e2e-api", daemon=True)
        self._thread.start()
        return self

    def client(self) -> JobClient:
        return JobClient(self.socket, timeout=WAIT)

    def close(self) -> None:
        """Stop like the daemon does: scheduler first, then jobs, then the socket."""
        self.gate.set()
        self.scheduler.shutdown()
        self.manager.shutdown(wait=True, timeout=WAIT)
        if self._thread is not None:
            self.server.stop()
            self._thread.join(WAIT)
            self._thread = None
        self.server.close()
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    # ---------------------------------------------- what actions.py may ask
    def installed(self, packages: list[str]) -> dict[str, str | None]:
        return dict.fromkeys(packages)

    def stats(self) -> dict:
        return {"jobs": self.manager.counts()}
