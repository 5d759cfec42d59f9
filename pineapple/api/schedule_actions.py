"""Socket API handlers for schedules (docs/schedules.md): add, modify,
pause, resume, remove, run now, list and show.

Wiring (in :mod:`pineapple.api.actions`): ``HANDLERS.update(schedule_actions.HANDLERS)``;
the service must have a ``scheduler`` attribute
(:class:`~pineapple.jobs.schedule.scheduler.Scheduler`). The scheduler
raises :class:`~pineapple.errors.JobError` with stable codes, which
``actions.handle`` turns into error answers.

The schedule is named by ``schedule_id``, not ``id``: ``id`` is the
protocol's request id, echoed in the answer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..jobs.schedule.scheduler import MODIFIABLE, OPTION_DEFAULTS
from .protocol import INVALID_FIELD, ApiError, field

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol  # Python 3.8+: only type checkers read ScheduleService

    from ..jobs.schedule.scheduler import Scheduler

    class ScheduleService(Protocol):
        """What these handlers need from the daemon."""

        scheduler: Scheduler

    Handler = Callable[[ScheduleService, dict], Any]

_ENVELOPE = frozenset(("action", "id", "schedule_id"))
_ADD_KEYS = _ENVELOPE | {"job", "params", "trigger", "replace_existing", *OPTION_DEFAULTS}
_MODIFY_KEYS = _ENVELOPE | MODIFIABLE


def schedule_add(service: ScheduleService, request: dict) -> dict:
    _reject_unknown(request, _ADD_KEYS)
    options = {name: request[name] for name in OPTION_DEFAULTS if name in request}
    return service.scheduler.add(
        field(request, "schedule_id", str), field(request, "job", str), field(request, "params", dict, {}),
        field(request, "trigger", dict), replace_existing=field(request, "replace_existing", bool, False),
        **options)


def schedule_modify(service: ScheduleService, request: dict) -> dict:
    _reject_unknown(request, _MODIFY_KEYS)
    changes = {name: request[name] for name in MODIFIABLE if name in request}
    if not changes:
        raise ApiError(f"nothing to modify (fields: {', '.join(sorted(MODIFIABLE))})", INVALID_FIELD)
    for name, kind in (("job", str), ("params", dict), ("trigger", dict)):
        if name in changes:
            field(changes, name, kind)
    return service.scheduler.modify(field(request, "schedule_id", str), **changes)


def schedule_pause(service: ScheduleService, request: dict) -> dict:
    return service.scheduler.pause(field(request, "schedule_id", str))


def schedule_resume(service: ScheduleService, request: dict) -> dict:
    return service.scheduler.resume(field(request, "schedule_id", str))


def schedule_remove(service: ScheduleService, request: dict) -> dict:
    schedule_id = field(request, "schedule_id", str)
    service.scheduler.remove(schedule_id)
    return {"schedule_id": schedule_id, "removed": True}


def schedule_run(service: ScheduleService, request: dict) -> dict:
    schedule_id = field(request, "schedule_id", str)
    submission = service.scheduler.run_now(schedule_id)
    return {"schedule_id": schedule_id, "job_id": submission.job_id, "duplicate": submission.duplicate}


def schedule_list(service: ScheduleService, request: dict) -> dict:
    return {"schedules": service.scheduler.list()}


def schedule_get(service: ScheduleService, request: dict) -> dict:
    return service.scheduler.get(field(request, "schedule_id", str))


def _reject_unknown(request: dict, allowed: frozenset[str]) -> None:
    # A typo ("coalese") must not silently mean the default.
    unknown = sorted(key for key in request if key not in allowed)
    if unknown:
        raise ApiError(f"unknown field {unknown[0]!r} for {request['action']} "
                       f"(fields: {', '.join(sorted(allowed - {'action', 'id'}))})", INVALID_FIELD)


HANDLERS: dict[str, Handler] = {
    "schedule_add": schedule_add, "schedule_modify": schedule_modify, "schedule_pause": schedule_pause,
    "schedule_resume": schedule_resume, "schedule_remove": schedule_remove, "schedule_run": schedule_run,
    "schedule_list": schedule_list, "schedule_get": schedule_get,
}
