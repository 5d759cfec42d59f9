#!/usr/bin/env python3
"""jobs: every job of pineapple-jobd, live, on the device's web UI.

The page polls ``list_jobs`` about once a second and shows each job's type,
packages, state, progress and last log lines, with Cancel (queued, held or
running jobs) and Restart (finished jobs) buttons.

Actions:
    list_jobs {limit?}        -> {"jobs": [job, ...], "total": N, "limit": L}   newest first
    cancel_job {job_id}       -> the daemon's cancel answer {"job_id", "cancelled", "state", ...}
    restart_job {job_id}      -> the daemon's restart answer {"job_id" (the new one), "parent_id", "duplicate"}
where job = {"job_id", "type", "packages", "state", "is_complete", "progress": {"fraction", "message"},
             "job_error", "error_code", "created_at", "finished_at", "parent_id", "child_id",
             "log": [last lines], "log_total", "can_cancel", "can_restart"}.

Reading the log costs one daemon request per job, so it is asked for only
while a job is active and once more when it has finished (a finished job's
log never changes): a page polling every second costs the router a handful
of small requests, not one per listed job.

Run it:     python3 modules/jobs/module.py
Settings (environment): PINEAPPLE_MODULE_SOCKET_DIR, PINEAPPLE_JOBD_SOCKET.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from pineapple.modules import Module, Request

NAME = "jobs"
LOG_LINES = 5  # last log lines shown per job
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
ACTIVE = frozenset(("queued", "held", "running"))
FINISHED = frozenset(("succeeded", "failed", "cancelled", "interrupted"))


class JobsView:
    """What the page shows, read from the daemon (one connection, shared by handler threads)."""

    def __init__(self, jobd_socket: str | None, logger: logging.Logger) -> None:
        from pineapple.api.client import JobClient

        self._client = JobClient(jobd_socket)
        self._lock = threading.Lock()  # one daemon request at a time on the shared connection
        self._listing = threading.Lock()  # one listing at a time (several tabs): it updates _logs
        self._logs: dict[str, tuple[str, list[str], int]] = {}  # job id -> (state seen, last lines, total)
        self.log = logger

    def call(self, action: str, **fields: Any) -> Any:
        """One daemon request; its errors become :class:`JobsError` with the daemon's words."""
        from pineapple.api.client import DaemonUnavailable
        from pineapple.api.protocol import ApiError

        with self._lock:
            try:
                return self._client.request(action, **fields)
            except DaemonUnavailable as exc:
                raise JobsError(f"pineapple-jobd is not reachable: {exc}") from None
            except ApiError as exc:
                raise JobsError(f"{exc} ({exc.code})") from None

    def jobs(self, limit: int) -> dict:
        with self._listing:
            listing = self.call("list_jobs", limit=limit)
            jobs = [self._entry(summary) for summary in listing["jobs"]]
            listed = {job["job_id"] for job in jobs}
            for job_id in [j for j in self._logs if j not in listed]:
                del self._logs[job_id]  # gone (pruned or removed): forget its log too
        return {"jobs": jobs, "total": listing["total"], "limit": limit}

    def _entry(self, summary: dict) -> dict:
        job_id, state = summary["job_id"], summary["state"]
        lines, total = self._last_lines(job_id, state)
        params = summary.get("params") or {}
        return {
            "job_id": job_id, "type": summary.get("type"), "packages": list(params.get("packages") or []),
            "state": state, "is_complete": summary.get("is_complete"),
            "progress": summary.get("progress") or {"fraction": None, "message": ""},
            "job_error": summary.get("job_error"), "error_code": summary.get("error_code"),
            "created_at": summary.get("created_at"), "finished_at": summary.get("finished_at"),
            "parent_id": summary.get("parent_id"), "child_id": summary.get("child_id"),
            "log": lines, "log_total": total,
            "can_cancel": state in ACTIVE, "can_restart": state in FINISHED,
        }

    def _last_lines(self, job_id: str, state: str) -> tuple[list[str], int]:
        cached = self._logs.get(job_id)
        if cached is not None and cached[0] == state and state in FINISHED:
            return cached[1], cached[2]
        try:
            record = self.call("get_job", job_id=job_id)
        except JobsError as exc:  # removed between the listing and now: show it without a log
            self.log.info("no log for job %s: %s", job_id, exc)
            return [], 0
        lines = list(record.get("log") or [])[-LOG_LINES:]
        total = int(record.get("log_total") or len(lines))
        self._logs[job_id] = (record.get("state", state), lines, total)
        return lines, total


class JobsError(Exception):
    """A daemon error shown to the user as the answer's error."""


def build_module(jobd_socket: str | None = None, **options: Any) -> Module:
    """The jobs module; ``options`` go to :class:`Module` (socket_dir, ...)."""
    module = Module(NAME, logging.INFO, jobd_socket=jobd_socket, **options)
    view = JobsView(jobd_socket, module.logger)

    def answer(work: Any) -> tuple[Any, bool]:
        try:
            return work(), True
        except JobsError as exc:
            return str(exc), False

    @module.handles_action("list_jobs")
    def list_jobs(request: Request) -> tuple[Any, bool]:
        limit = request.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            return f"'limit' must be a whole number from 1 to {MAX_LIMIT}", False
        return answer(lambda: view.jobs(limit))

    @module.handles_action("cancel_job")
    def cancel_job(request: Request) -> tuple[Any, bool]:
        return answer(lambda: view.call("cancel", job_id=_job_id(request)))

    @module.handles_action("restart_job")
    def restart_job(request: Request) -> tuple[Any, bool]:
        return answer(lambda: view.call("restart", job_id=_job_id(request)))

    return module


def _job_id(request: Request) -> str:
    job_id = request.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise JobsError("the request needs a 'job_id' (a string)")
    return job_id


if __name__ == "__main__":
    build_module().start()
