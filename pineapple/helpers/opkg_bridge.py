"""Where the opkg helpers' work runs: pineapple-jobd when it answers, this
process otherwise — with the same job code, so with the same answers.

Through the daemon (its Unix socket, ``$PINEAPPLE_JOBD_SOCKET`` or the
configured path): one opkg at a time for every module on the device, waits
for opkg's lock, coded errors carrying opkg's own text, a failed install
rolled back, the job visible to ``pineapple-jobd`` tools and MQTT.

In this process (no daemon listening): the daemon's own job classes
(:mod:`pineapple.opkg.jobs`) run here, on the daemon's configuration
(``/etc/config/pineapple-jobd`` and ``PINEAPPLE_JOBD_OPKG_*``): the same
checks, lock waits, error codes and rollback; only "one at a time" is then
left to opkg's lock, and a crash is not recovered at the next start.

The daemon is chosen when it answers a ``ping`` before the work is handed
over; once it has the work, a lost connection is an error, never a second
run here.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, NamedTuple

from .. import errors
from ..errors import JobError

CLIENT_TIMEOUT = 10.0
KINDS = ("install", "uninstall", "update")

log = logging.getLogger("pineapple.helpers.opkg")


class Outcome(NamedTuple):
    """What one opkg operation came to, whichever way it ran."""

    ok: bool
    error: str | None  # opkg's text (and ours) when not ok
    code: str | None  # a stable code from pineapple.errors when not ok
    result: Any  # the job's result dict (installed, already_present, rolled_back, ...)
    via: str  # "daemon" or "local"


class OpkgOperation:
    """One install, uninstall or update; :meth:`run` once, :meth:`stop` from
    any thread (the daemon's job is cancelled, or the local opkg stopped)."""

    def __init__(self, kind: str, packages: list[str] | None = None,
                 logger: logging.Logger | None = None,
                 on_progress: Callable[[float | None, str], None] | None = None, **params: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown opkg operation {kind!r}")
        self.kind = kind
        self.params: dict[str, Any] = dict(params)
        if kind != "update":
            self.params["packages"] = list(packages or ())
        self.logger = logger or log
        self.on_progress = on_progress  # (fraction or None, message), as the job reports it
        self._lock = threading.Lock()
        self._stop_wanted = False
        self._daemon_job: str | None = None
        self._local_job: Any = None
        self._socket: str | None = None

    def run(self) -> Outcome:
        client = _daemon_client()
        if client is not None:
            self._socket = client.path
            try:
                return self._run_via_daemon(client)
            finally:
                client.close()
        return self._run_here()

    def stop(self) -> None:
        """Cancel the work (also before it started: it then does not start)."""
        with self._lock:
            self._stop_wanted = True
            daemon_job, local_job = self._daemon_job, self._local_job
        if daemon_job is not None:
            self._cancel_daemon_job(daemon_job)
        elif local_job is not None:
            local_job.stop()

    # ---------------------------------------------------------------- daemon
    def _run_via_daemon(self, client: Any) -> Outcome:
        from ..api.protocol import ApiError

        if self._stopped_before_start():
            return _cancelled("daemon")
        try:
            job_id = client.submit(self.kind, wait=True, **self.params)["job_id"]
            with self._lock:
                self._daemon_job = job_id
                cancel = self._stop_wanted
            self.logger.info("opkg %s handed to pineapple-jobd as job %s", self.kind, job_id)
            if cancel:
                self._cancel_daemon_job(job_id)
            final = client.wait(job_id, on_event=self._forward_log)
        except ApiError as exc:
            return Outcome(False, str(exc), exc.code, None, "daemon")
        if final.get("removed") or "job_error" not in final:
            return Outcome(False, f"pineapple-jobd removed job {job_id} before it could be read",
                           errors.UNKNOWN_JOB, None, "daemon")
        error = final.get("job_error")
        return Outcome(error is None, error, final.get("error_code") if error is not None else None,
                       final.get("result"), "daemon")

    def _forward_log(self, event: dict) -> None:
        if event.get("event") == "log":
            self.logger.info("%s", event.get("line"))
        elif event.get("event") == "progress" and self.on_progress is not None:
            data = event.get("data") or {}
            self.on_progress(data.get("fraction"), str(data.get("message") or ""))

    def _cancel_daemon_job(self, job_id: str) -> None:
        from ..api.client import JobClient
        from ..api.protocol import ApiError

        try:
            with JobClient(self._socket, timeout=CLIENT_TIMEOUT) as client:
                client.cancel(job_id)
        except ApiError as exc:  # finished meanwhile, or the daemon went away: nothing to cancel
            self.logger.warning("cancelling pineapple-jobd job %s: %s", job_id, exc)

    # ----------------------------------------------------------------- local
    def _run_here(self) -> Outcome:
        try:
            job = _local_job(self.kind, self.params)
        except JobError as exc:
            return Outcome(False, str(exc), exc.code, exc.result, "local")
        if self.on_progress is not None:
            report = self.on_progress
            job._sink = lambda _job, kind, data: report(data.fraction, data.message) if kind == "progress" else None
        with self._lock:
            self._local_job = job
            stopped = self._stop_wanted
        if stopped:
            return _cancelled("local")
        self.logger.info("opkg %s runs in this process (pineapple-jobd is not running)", self.kind)
        try:
            result = job.do_work(self.logger)
        except JobError as exc:
            return Outcome(False, str(exc), exc.code, exc.result, "local")
        return Outcome(True, None, None, result, "local")

    def _stopped_before_start(self) -> bool:
        with self._lock:
            return self._stop_wanted


def installed_versions(packages: list[str]) -> dict[str, str | None]:
    """The installed version of each package (None: not installed), as
    pineapple-jobd sees it, or read here from opkg's status file."""
    from ..api.protocol import ApiError

    client = _daemon_client(ping=False)
    if client is not None:
        try:
            return client.installed(packages)
        except ApiError as exc:
            if exc.code in (errors.INVALID_PACKAGE_NAME, errors.INVALID_FIELD):
                raise JobError(str(exc), exc.code) from None
            # unreachable, or refused: the status file answers as well
        finally:
            client.close()
    return _local_system().which_installed(packages)


# ------------------------------------------------------------------ internals
def _daemon_client(ping: bool = True) -> Any:
    """A client of the running daemon, or None when none answers."""
    from ..api.client import DaemonUnavailable, JobClient

    client = JobClient(timeout=CLIENT_TIMEOUT)
    if not ping:
        return client
    try:
        client.ping()
    except DaemonUnavailable:
        client.close()
        return None
    except Exception as exc:  # the daemon answered, but oddly: still, it is there
        log.debug("pineapple-jobd ping: %s", exc)
    return client


def _cancelled(via: str) -> Outcome:
    return Outcome(False, "cancelled before opkg ran", errors.CANCELLED, None, via)


_systems: dict[tuple, Any] = {}
_systems_lock = threading.Lock()


def _local_system() -> Any:
    """The OpkgSystem the daemon would use, from its configuration; one per
    distinct configuration, so its status cache lasts between calls."""
    from ..daemon.config import ConfigError, load_config
    from ..opkg.system import OpkgSystem

    try:
        settings = load_config().opkg
    except ConfigError as exc:
        raise JobError(f"cannot read pineapple-jobd's configuration for opkg: {exc}", errors.INVALID_FIELD) from None
    key = tuple(sorted((name, repr(value)) for name, value in settings.to_dict().items()))
    with _systems_lock:
        system = _systems.get(key)
        if system is None:
            system = _systems[key] = OpkgSystem.from_settings(settings)
        return system


def _local_job(kind: str, params: dict[str, Any]) -> Any:
    from ..opkg import jobs

    system = _local_system()
    if kind == "install":
        return jobs.InstallDependenciesJob(system, params["packages"], update=params.get("update", "auto"))
    if kind == "uninstall":
        return jobs.UninstallDependenciesJob(system, params["packages"])
    return jobs.UpdatePackageListsJob(system)
