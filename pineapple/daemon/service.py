"""The daemon's parts wired together: job manager, job types, opkg, the
socket API and (when enabled) MQTT.

Life cycle: :meth:`Daemon.start` takes the single-instance lock, opens the
journal (jobs lost in a crash come back ``interrupted``) and listens. The
job types and the opkg layer are set up on first use (the first ``submit``,
``job_types`` or ``installed``): an idle daemon does not carry them.
:meth:`Daemon.serve` runs the I/O loop until a stop is requested; the first
SIGTERM/SIGINT drains (no new jobs, running jobs get ``shutdown_grace``
seconds, then are cancelled), a second one cancels at once. SIGHUP
(:meth:`Daemon.request_reload`) re-reads the configuration and applies it
without stopping jobs (:mod:`.reload`).
:meth:`Daemon.close` flushes the journal and removes the socket.
"""
from __future__ import annotations

import logging
import os
import socket as _socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..api.protocol import MAX_LINE
from ..api.server import ApiServer
from ..jobs import JobManager
from .config import Config

if TYPE_CHECKING:
    from ..jobs.registry import JobTypeRegistry

log = logging.getLogger("pineapple.daemon")


class Daemon:
    """One running pineapple-jobd."""

    def __init__(self, config: Config, reload_config: Callable[[], Config] | None = None) -> None:
        self.config = config
        self._reload_config = reload_config  # reads the configuration again (SIGHUP)
        self._reload_lock = threading.Lock()
        self._reloading = False
        self._reload_again = False
        self.started = time.monotonic()
        self.manager: JobManager | None = None
        self.mqtt: Any = None
        self._registry: JobTypeRegistry | None = None
        self._opkg: Any = None
        self._scheduler: Any = None
        self._hooks: Any = None
        self._declared: list[Any] = []  # job types of `config job_type` sections, checked at start
        self._parts_lock = threading.RLock()  # the scheduler builds the registry while holding it
        self._draining: threading.Thread | None = None
        d = config.daemon
        self.server = ApiServer(self, d.socket, group=d.socket_group,
                                allowed_uids={int(u) for u in d.allowed_uids},
                                allowed_gids={int(g) for g in d.allowed_gids},
                                max_connections=d.max_connections, idle_timeout=d.idle_timeout)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Lock, restore the journal, listen."""
        d = self.config.daemon
        os.makedirs(os.path.dirname(os.path.abspath(d.socket)), exist_ok=True)
        self.server.acquire()
        self.manager = JobManager("pineapple.jobd", logging.getLogger("pineapple").level, workers=d.workers,
                                  retention=d.retention, max_finished=d.max_finished,
                                  max_queued=d.max_queued, state_dir=d.state_dir,
                                  stop_grace=min(10.0, d.shutdown_grace), journal_max_bytes=d.journal_max_bytes)
        if any(section.type == "hook" for section in self.config.extra_sections):
            _ = self.hooks  # a bad `config hook` section stops the start, not a later request
        if any(section.type == "job_type" for section in self.config.extra_sections):
            from .jobtypes import declared_job_types

            self._declared = declared_job_types(self.config.extra_sections)  # imported and checked now
        self._recover_interrupted()  # before anything can submit: recovery may run opkg
        self._start_mqtt()
        self.server.listen()
        if self._has_schedules():
            _ = self.scheduler  # saved or configured schedules run without waiting for a request

    def serve(self) -> None:
        """Serve until stopped (see :meth:`request_stop`)."""
        self.server.serve_forever()

    def request_stop(self, reason: str = "signal") -> None:
        """First call: drain and stop; second call: cancel running jobs now.
        Any thread; not a signal handler (it logs): the daemon's handlers
        hand it to the I/O loop (``call_soon``)."""
        if self._draining is None:
            log.info("stopping (%s): finishing running jobs for up to %gs",
                     reason, self.config.daemon.shutdown_grace)
            self._draining = threading.Thread(target=self._drain, name="pineapple-drain", daemon=True)
            self._draining.start()
        else:
            log.info("stopping now (%s): cancelling running jobs", reason)
            threading.Thread(target=self.manager.stop_running, daemon=True).start()

    def request_reload(self) -> None:
        """Re-read the configuration and apply it (SIGHUP; safe from a signal
        handler). Reloads run one at a time on their own thread; one asked
        for while another runs follows it."""
        self.server.call_soon(self._start_reload)

    def reload(self) -> bool:
        """Re-read and apply the configuration now (see :mod:`.reload`)."""
        from .reload import reload_daemon

        if self._reload_config is None or self._draining is not None:
            return False
        return reload_daemon(self, self._reload_config)

    def _start_reload(self) -> None:
        with self._reload_lock:
            if self._reloading:
                self._reload_again = True
                return
            self._reloading = True
        threading.Thread(target=self._reload_loop, name="pineapple-reload", daemon=True).start()

    def _reload_loop(self) -> None:
        while True:
            try:
                self.reload()
            except Exception:  # a bug in a reload must not take the daemon down
                log.exception("reload failed")
            with self._reload_lock:
                if not self._reload_again:
                    self._reloading = False
                    return
                self._reload_again = False

    def close(self) -> None:
        """Release everything (after :meth:`serve` returned)."""
        self._stop_scheduler()
        if self.manager is not None and self._draining is None:
            self.manager.shutdown(wait=False)
        if self.mqtt is not None:
            self.mqtt.stop()
        self.server.close()
        if self.manager is not None:  # it had started (a refused start already said why)
            log.info("stopped")

    def _recover_interrupted(self) -> None:
        """Finish or undo what jobs a crash interrupted left half done (their
        journal records still name an intent), before taking new jobs."""
        pending = self.manager.pending_recoveries()
        if not pending:
            return
        from ..jobs.registry import Recovery

        log.warning("recovering %d job(s) the last stop interrupted", len(pending))
        for job in pending:
            try:
                recovery = self.registry.recover(job.type, job.intent or {})
            except Exception as exc:  # recovery must never stop the start
                log.exception("recovery of job %s failed", job.id)
                recovery = Recovery({"failed": f"{type(exc).__name__}: {exc}"},
                                    f"recovery failed: {exc}; see the daemon's log")
            if recovery is None:
                recovery = Recovery({}, f"recovery: nothing known to undo for a {job.type} job")
            log.warning("job %s (%s): %s", job.id, job.type, recovery.summary)
            self.manager.record_recovery(job.id, recovery.report, recovery.summary)

    def _drain(self) -> None:
        try:
            self._stop_scheduler()
            self.manager.shutdown(wait=True, timeout=self.config.daemon.shutdown_grace)
        except Exception:  # a stop that fails half-way must still stop
            log.exception("error while stopping")
        finally:
            self.server.stop()

    # -------------------------------------------------------------- parts
    @property
    def registry(self) -> JobTypeRegistry:
        """The job types this daemon runs (built on first use, thread-safe:
        the I/O thread and MQTT's thread both submit)."""
        if self._registry is None:
            with self._parts_lock:
                if self._registry is None:
                    self._registry = self._build_registry()
        return self._registry

    @property
    def opkg(self) -> Any:
        """The :class:`~pineapple.opkg.system.OpkgSystem` (built on first use)."""
        if self._opkg is None:
            from ..opkg.system import OpkgSystem

            with self._parts_lock:
                if self._opkg is None:
                    self._opkg = OpkgSystem.from_settings(self.config.opkg)
        return self._opkg

    @property
    def hooks(self) -> Any:
        """The :class:`~pineapple.daemon.hooks.HookFactory` (allow-listed
        commands from ``config hook`` sections, MQTT notifications)."""
        if self._hooks is None:
            from .hooks import HookFactory, commands_from_config

            self._hooks = HookFactory(commands_from_config(self.config.extra_sections), lambda: self.mqtt)
        return self._hooks

    @property
    def scheduler(self) -> Any:
        """The :class:`~pineapple.jobs.schedule.scheduler.Scheduler`, built on
        first use (at start when schedules are saved or configured)."""
        if self._scheduler is None:
            with self._parts_lock:
                if self._scheduler is None:
                    self._scheduler = self._build_scheduler()
        return self._scheduler

    def _build_scheduler(self) -> Any:
        from ..jobs.schedule.scheduler import Scheduler, schedules_from_config

        scheduler = Scheduler(self.manager, lambda: self.registry, state_dir=self.config.daemon.state_dir)
        scheduler.load(schedules_from_config(self.config.extra_sections))
        scheduler.start()
        return scheduler

    def _has_schedules(self) -> bool:
        from ..jobs.schedule.store import FILE_NAME

        configured = any(section.type == "schedule" for section in self.config.extra_sections)
        return configured or os.path.exists(os.path.join(self.config.daemon.state_dir, FILE_NAME))

    def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown()

    def _build_registry(self) -> JobTypeRegistry:
        from ..jobs.registry import JobTypeRegistry
        from ..opkg.jobs import register_opkg_jobs
        from ..opkg.system import OpkgSystem

        if self._opkg is None:
            self._opkg = OpkgSystem.from_settings(self.config.opkg)
        registry = JobTypeRegistry()
        default_timeout = self.config.daemon.job_timeout or None
        register_opkg_jobs(registry, self._opkg, default_timeout=default_timeout)
        if self._declared:
            from .jobtypes import register_declared

            register_declared(registry, self._declared, default_timeout)
        return registry

    # ------------------------------------------------- applied by a reload
    def reset_job_types(self) -> None:
        """Build the job types and the opkg layer again from :attr:`config`
        on next use; running jobs keep theirs."""
        with self._parts_lock:
            self._registry = None
            self._opkg = None

    def reload_schedules(self) -> None:
        """Apply :attr:`config`'s schedules (all or nothing); builds the
        scheduler if schedules appeared."""
        from ..jobs.schedule.scheduler import schedules_from_config

        definitions = schedules_from_config(self.config.extra_sections)
        if self._scheduler is not None:
            self._scheduler.reload(definitions)
        elif definitions:
            _ = self.scheduler

    def set_hooks(self, hooks: Any) -> None:
        """The hook commands for jobs submitted from now on."""
        self._hooks = hooks

    def restart_mqtt(self) -> None:
        """Stop the MQTT bridge and start one with :attr:`config`'s settings."""
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None
        self._start_mqtt()

    def _start_mqtt(self) -> None:
        if not self.config.mqtt.enabled:
            return
        from ..mqtt.bridge import MqttBridge  # paho-mqtt is only imported when enabled

        self.mqtt = MqttBridge(self, self.config.mqtt, state_dir=self.config.daemon.state_dir or None)
        self.mqtt.start()

    # ------------------------------------------------- what the API asks for
    def installed(self, packages: list[str]) -> dict[str, str | None]:
        return self.opkg.which_installed(packages)

    def limits(self) -> dict:
        """The limits in effect (after defaults, config, environment, flags)."""
        d = self.config.daemon
        return {"workers": self.manager.workers, "max_queued": self.manager.max_queued,
                "max_finished": self.manager.max_finished, "retention": self.manager.retention,
                "job_timeout": d.job_timeout or None, "shutdown_grace": d.shutdown_grace,
                "max_connections": self.server.max_connections, "idle_timeout": self.server.idle_timeout,
                "max_line": MAX_LINE}

    def stats(self) -> dict:
        from ..jobs.state import ALL_STATES

        counts = self.manager.counts()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 3),
            "rss_kib": _rss_kib(),
            "threads": threading.active_count(),
            "workers": self.manager.workers,
            "connections": self.server.connection_count,
            "requests": self.server.requests_served,
            "jobs": {state: counts.get(state, 0) for state in ALL_STATES},
            "waiting": self.manager.waiting(),
            "totals": self.manager.totals(),
            "limits": self.limits(),
            "hostname": _socket.gethostname(),
            "mqtt": self.mqtt.status() if self.mqtt is not None else None,
            "journal": self.manager.journal_status(),
        }


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
