"""Request handlers of the socket API: one function per action.

Each handler takes the service (the daemon's parts) and the decoded request
and returns the answer's payload, or raises :class:`ApiError`. Handlers run
on the daemon's single I/O thread, so they only do quick work: queueing a
job, reading a record, reading opkg's status file.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__, errors
from ..errors import JobError
from ..jobs import Job, JobManager
from ..jobs.state import ALL_STATES
from .hooks import validate_hooks
from .protocol import INVALID_FIELD, UNKNOWN_ACTION, ApiError, field

if TYPE_CHECKING:  # the registry (and the dataclasses it uses) is loaded with the first job type
    from collections.abc import Callable
    from typing import Protocol  # Python 3.8+: only type checkers read Service

    from ..jobs.registry import JobTypeRegistry

    class Service(Protocol):
        """What the handlers need from the daemon."""

        manager: JobManager
        registry: JobTypeRegistry
        hooks: Any  # pineapple.daemon.hooks.HookFactory

        def installed(self, packages: list[str]) -> dict[str, str | None]: ...

        def stats(self) -> dict: ...

    Handler = Callable[[Service, dict], Any]

MAX_PAGE = 500
MAX_LOG_PAGE = 1000
# Keys of a submit request that are not job parameters.
_SUBMIT_KEYS = frozenset(("action", "id", "job", "hold", "wait", "on_success", "on_failure"))
MAX_WAIT = 3600.0  # seconds a `wait` submit may wait for room at most (true: no limit)


def handle(service: Service, request: dict) -> Any:
    """Run the handler of ``request["action"]``."""
    handler = HANDLERS.get(request["action"])
    if handler is None:
        known = ", ".join(sorted(HANDLERS) + ["follow"])
        raise ApiError(f"unknown action {request['action']!r} (known: {known})", UNKNOWN_ACTION)
    try:
        return handler(service, request)
    except JobError as exc:
        raise ApiError(exc.message, exc.code) from None


def find_job(service: Service, request: dict) -> Job:
    """The job named by the request's ``job_id`` (``unknown_job`` if none)."""
    job_id = field(request, "job_id", str)
    job = service.manager.get_job(job_id, remove_if_complete=False)
    if job is None:
        raise ApiError(f"no job with id {job_id!r}: never submitted here, or finished and pruned "
                       f"(finished jobs are kept {service.manager.retention or 0:g}s)", errors.UNKNOWN_JOB)
    return job


# ------------------------------------------------------------------ actions
def ping(service: Service, request: dict) -> dict:
    return {"pong": True, "version": __version__}


def submit(service: Service, request: dict) -> dict:
    job_type = field(request, "job", str)
    hold = field(request, "hold", bool, False)
    _check_wait(request)
    params = {k: v for k, v in request.items() if k not in _SUBMIT_KEYS}
    job = service.registry.create(job_type, params)
    _attach_hooks(service, job, request)
    submission = service.manager.submit(job, hold=hold)
    current = service.manager.get_job(submission.job_id, remove_if_complete=False)
    answer = {"job_id": submission.job_id, "duplicate": submission.duplicate,
              "state": current.state if current else "queued"}
    if submission.duplicate:
        answer["message"] = f"an identical {job_type} job is already {answer['state']}; answering its id"
    return answer


def poll_job(service: Service, request: dict) -> dict:
    remove = field(request, "remove_if_complete", bool, False)
    job = find_job(service, request)
    if remove and job.is_complete:
        service.manager.remove_job(job.id)
    return job.summary()


def get_job(service: Service, request: dict) -> dict:
    return find_job(service, request).to_dict()


def list_jobs(service: Service, request: dict) -> dict:
    states = _states(request)
    job_type = field(request, "type", str, None)
    package = field(request, "package", str, None)
    offset = _bounded_int(request, "offset", 0, 0, None)
    limit = _bounded_int(request, "limit", 50, 1, MAX_PAGE)
    jobs = [job for job in service.manager.list_jobs(states)
            if (job_type is None or job.type == job_type) and (package is None or _mentions(job, package))]
    page = [_listing(job) for job in jobs[offset:offset + limit]]
    return {"jobs": page, "total": len(jobs), "offset": offset, "limit": limit}


def cancel(service: Service, request: dict) -> dict:
    return _control(service, request, service.manager.cancel_job, "cancelled",
                    "job already {state}; nothing to cancel")


def remove(service: Service, request: dict) -> dict:
    job = find_job(service, request)
    if not job.is_complete:
        raise ApiError(f"job {job.id} is {job.state}; cancel it first", errors.JOB_ACTIVE)
    service.manager.remove_job(job.id)
    return {"job_id": job.id, "removed": True}


def prune(service: Service, request: dict) -> dict:
    return {"removed": service.manager.prune_completed_jobs()}


def installed(service: Service, request: dict) -> dict:
    from ..opkg.names import validate_package_names

    packages = validate_package_names(field(request, "packages", list))
    return {"installed": service.installed(packages)}


def stats(service: Service, request: dict) -> dict:
    return service.stats()


def job_types(service: Service, request: dict) -> dict:
    return {"types": service.registry.catalogue()}


def restart(service: Service, request: dict) -> dict:
    old = find_job(service, request)

    def rebuild(job: Job) -> Job:
        new = service.registry.create(job.type, job.params())
        if job.hook_specs:
            service.hooks.attach(new, job.hook_specs)
        return new

    submission = service.manager.restart_job(old.id, rebuild)
    answer = {"job_id": submission.job_id, "parent_id": old.id, "duplicate": submission.duplicate}
    if submission.duplicate:
        child = service.manager.get_job(submission.job_id, remove_if_complete=False)
        answer["parent_id"] = child.parent_id if child is not None else old.id  # what its record says
        answer["message"] = "an identical job is already queued or running; answering its id"
    return answer


def log(service: Service, request: dict) -> dict:
    job = find_job(service, request)
    offset = _bounded_int(request, "offset", 0, 0, None)
    return job.log_page(offset, _bounded_int(request, "limit", 100, 1, MAX_LOG_PAGE))


def hold(service: Service, request: dict) -> dict:
    return _control(service, request, service.manager.hold_job, "held",
                    "only a queued job can be held; this one is {state}")


def release(service: Service, request: dict) -> dict:
    return _control(service, request, service.manager.release_job, "released",
                    "only a held job can be released; this one is {state}")


def _control(service: Service, request: dict, operate: Callable[[str], bool], done: str, refusal: str) -> dict:
    """cancel / hold / release: ``{job_id, <done>: bool, state}`` plus why not."""
    job = find_job(service, request)
    succeeded = operate(job.id)
    answer = {"job_id": job.id, done: succeeded, "state": job.state}
    if not succeeded:
        answer["message"] = refusal.format(state=job.state)
    return answer


HANDLERS: dict[str, Handler] = {
    "ping": ping, "submit": submit, "poll_job": poll_job, "get_job": get_job,
    "list_jobs": list_jobs, "cancel": cancel, "remove": remove, "prune": prune,
    "installed": installed, "stats": stats, "job_types": job_types,
    "restart": restart, "log": log, "hold": hold, "release": release,
}

# Schedule actions (docs/schedules.md) load the scheduler on first use only.
SCHEDULE_ACTIONS = ("schedule_add", "schedule_modify", "schedule_pause", "schedule_resume",
                    "schedule_remove", "schedule_run", "schedule_list", "schedule_get")


def _schedule_action(name: str) -> Handler:
    def handler(service: Service, request: dict) -> Any:
        from . import schedule_actions

        return schedule_actions.HANDLERS[name](service, request)

    handler.__name__ = name
    return handler


HANDLERS.update({name: _schedule_action(name) for name in SCHEDULE_ACTIONS})


# ------------------------------------------------------------------ helpers
def _check_wait(request: dict) -> None:
    """``wait``: true, false, or seconds (0 < s <= MAX_WAIT). The socket
    server does the waiting (pineapple/api/server.py); elsewhere (MQTT) a
    full queue is answered ``queue_full`` at once."""
    wait = field(request, "wait", (bool, float), False)
    if not isinstance(wait, bool) and not 0 < wait <= MAX_WAIT:
        raise ApiError(f"field 'wait' must be true, false or seconds (0 < s <= {MAX_WAIT:g})", INVALID_FIELD)


def _attach_hooks(service: Service, job: Job, request: dict) -> None:
    if request.get("on_success") is None and request.get("on_failure") is None:
        return
    service.hooks.attach(job, validate_hooks(request))


def _states(request: dict) -> set[str] | None:
    value = field(request, "state", (str, list), None)
    if value is None:
        return None
    states = [value] if isinstance(value, str) else value
    bad = [s for s in states if s not in ALL_STATES]
    if bad:
        raise ApiError(f"unknown state {bad[0]!r} (states: {', '.join(ALL_STATES)})", INVALID_FIELD)
    return set(states)


def _bounded_int(request: dict, name: str, default: int, low: int, high: int | None) -> int:
    value = field(request, name, int, default)
    if value < low or (high is not None and value > high):
        limit = f"{low}..{high}" if high is not None else f">= {low}"
        raise ApiError(f"field '{name}' must be {limit}", INVALID_FIELD)
    return value


def _mentions(job: Job, package: str) -> bool:
    return package in (job.params().get("packages") or ())


def _listing(job: Job) -> dict:
    summary = job.summary()
    summary.update(params=job.params(), created_at=job.created_at, finished_at=job.finished_at,
                   parent_id=job.parent_id, child_id=job.child_id)
    return summary
