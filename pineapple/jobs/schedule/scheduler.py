"""The scheduler: submits jobs when their triggers fire (recurring, delayed
and at start-up), persisted in ``STATE_DIR/schedules.json`` and controlled
over the socket API (see docs/schedules.md).

    scheduler = Scheduler(manager, registry, state_dir="/var/run/pineapple-jobd")
    scheduler.load(schedules_from_config(config.extra_sections))
    scheduler.start()
    scheduler.add("nightly_update", "update", {}, {"type": "cron", "expr": "0 4 * * *"})
    ...
    scheduler.shutdown()

Keeping time
------------
One timer on the job manager's :class:`~pineapple.jobs.timers.TimerQueue`
(no thread of its own; a ``FakeClock`` drives it in tests) is armed for the
earliest next run of all enabled schedules. When it fires, every due
schedule submits its job, records the run and computes its next fire time,
and the timer is re-armed. With nothing due the scheduler does nothing.

Next runs are wall-clock instants (triggers speak wall time and time
zones) while the timer queue counts monotonic seconds, so the timer is armed
at ``clock.monotonic() + (next_run_epoch - clock.time())``. The wall clock
can be stepped meanwhile (NTP on a router that booted at 1970, a manual
``date``), so:

* when the timer fires, the wall time is read again; a schedule that is not
  due yet (the clock went back) is simply re-armed;
* the timer never sleeps longer than ``max_sleep`` (default one hour), so a
  step forward is noticed within that bound instead of at the old deadline:
  an idle scheduler wakes at most once an hour to re-check the clock;
* fire times before 2020 that become "due" once the clock is after 2020 were
  computed while the clock was not set yet: they are dropped (neither run
  nor counted as missed) and the next run is computed from the real time.

Late runs (the daemon was down, suspended or the clock jumped forward):
the due fire times are collected (at most ``CATCHUP_LIMIT``). A fire time
more than ``misfire_grace_time`` seconds in the past is *missed*. With
``coalesce`` (the default) all due fire times collapse into one run, which
happens if the latest of them is within the grace (otherwise all of them
count as missed); without ``coalesce`` every fire time within the grace
runs. A run is *skipped* when ``max_instances`` jobs of the schedule are
still queued or running, or the manager refuses the job. The next run is
computed from the current time, so one late wake-up never causes a burst
beyond that.

Imports are kept light for the resident daemon: no ``dataclasses`` or
``copy``, and the trigger layer (``datetime``, the cron parser) is imported
when the first schedule needs it, so a daemon without schedules pays for
none of it.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ...errors import INVALID_FIELD, JobError
from ..timers import TimerHandle
from .store import ScheduleStore

if TYPE_CHECKING:
    from datetime import datetime
    from typing import Protocol  # Python 3.8+: only type checkers read _Section

    from ..manager import JobManager, Submission
    from ..registry import JobTypeRegistry
    from ._base import Trigger

log = logging.getLogger("pineapple.jobs.schedule")

# Stable error codes (JobError.code; the socket API answers them as "code").
# Stable codes (defined with the others in pineapple.errors):
# schedule_exists: add without replace_existing, id taken; unknown_schedule: no such id;
# invalid_trigger: bad trigger spec; schedule_busy: run_now while max_instances jobs are active;
# schedule_read_only: modify/replace/remove a schedule from the config file.
from ...errors import (  # noqa: E402
    INVALID_TRIGGER,
    SCHEDULE_BUSY,
    SCHEDULE_EXISTS,
    SCHEDULE_READ_ONLY,
    UNKNOWN_SCHEDULE,
)

SOURCE_API = "api"
SOURCE_CONFIG = "config"
ID_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,63}"
OPTION_DEFAULTS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1,
                                   "enabled": True}
MODIFIABLE = frozenset(("job", "params", "trigger", *OPTION_DEFAULTS))
DEFAULT_MAX_SLEEP = 3600.0
CATCHUP_LIMIT = 100          # due fire times examined per wake-up (bounds work after a long gap)
CLOCK_SET_AFTER = 1_577_836_800.0  # 2020-01-01: earlier wall times mean the clock was not set
_DUE_SLACK = 0.001           # float rounding between epochs and datetimes


# ======================================================================= triggers
class StartupTrigger:
    """Fires once each time the scheduler starts (``{"type": "startup"}``),
    ``delay`` seconds after :meth:`Scheduler.start`. It has no fire times of
    its own: the scheduler sets the run at start. Duck-types
    :class:`~pineapple.jobs.schedule.Trigger` (not a subclass, so importing
    this module does not import the trigger layer)."""

    __slots__ = ("delay",)

    def __init__(self, delay: float | str | None = None) -> None:
        from .durations import parse_duration

        self.delay = 0.0 if delay in (None, 0) else parse_duration(delay, field="startup: delay").total_seconds()

    def next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "startup"}
        if self.delay:
            spec["delay"] = int(self.delay) if self.delay.is_integer() else self.delay
        return spec

    def describe(self) -> str:
        from datetime import timedelta

        from .durations import format_duration

        if not self.delay:
            return "at start-up"
        return f"at start-up (after {format_duration(timedelta(seconds=self.delay))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StartupTrigger) and other.delay == self.delay

    def __hash__(self) -> int:
        return hash(("startup", self.delay))

    def __repr__(self) -> str:
        return f"StartupTrigger({self.to_dict()!r})"


def parse_trigger(spec: Any, now: datetime | None = None) -> Trigger:
    """A trigger from an API spec (:mod:`.spec` shapes plus ``startup``);
    raises :class:`JobError` with code ``invalid_trigger``."""
    from ._base import ScheduleError
    from .spec import trigger_from_spec

    try:
        if isinstance(spec, Mapping) and spec.get("type") == "startup":
            unknown = sorted(str(key) for key in spec if key not in ("type", "delay"))
            if unknown:
                raise ScheduleError(f"startup: unknown key {unknown[0]!r} (allowed: delay)")
            return StartupTrigger(spec.get("delay"))  # type: ignore[return-value]
        return trigger_from_spec(spec, now=now)
    except (ScheduleError, TypeError, OverflowError) as exc:
        raise JobError(f"invalid trigger: {exc}", INVALID_TRIGGER) from None


# ====================================================================== schedules
class ScheduleDefinition:
    """What a schedule is, as given (API request or config section):
    ``trigger`` is the spec dict, ``options`` any of :data:`OPTION_DEFAULTS`."""

    __slots__ = ("id", "job", "params", "trigger", "options")

    def __init__(self, id: str, job: str, params: dict, trigger: dict, options: dict | None = None) -> None:
        self.id, self.job, self.params, self.trigger = id, job, params, trigger
        self.options = {} if options is None else options

    def _key(self) -> tuple:
        return (self.id, self.job, self.params, self.trigger, self.options)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScheduleDefinition) and other._key() == self._key()

    def __repr__(self) -> str:
        return "ScheduleDefinition({!r}, {!r}, {!r}, {!r}, {!r})".format(*self._key())


class Schedule:
    """A schedule and its run-time state (next_run: UTC datetime; last_run: epoch)."""

    __slots__ = ("id", "job", "params", "trigger", "spec", "source", "misfire_grace_time", "coalesce",
                 "max_instances", "enabled", "next_run", "last_run", "last_job_id", "runs", "missed", "skipped",
                 "last_error", "instances")

    def __init__(self, id: str, job: str, params: dict, trigger: Trigger, spec: dict, source: str = SOURCE_API,
                 **options: Any) -> None:
        self.id, self.job, self.params, self.trigger = id, job, params, trigger
        self.spec = spec  # the trigger spec as given (config reloads compare it)
        self.source = source
        for name, default in OPTION_DEFAULTS.items():
            setattr(self, name, options.get(name, default))
        self.next_run: datetime | None = None
        self.last_run: float | None = None
        self.last_job_id: str | None = None
        self.runs = self.missed = self.skipped = 0
        self.last_error: str | None = None
        self.instances: list[str] = []  # jobs submitted that may still be active

    def options(self) -> dict:
        return {name: getattr(self, name) for name in OPTION_DEFAULTS}

    def carry_state(self, old: Schedule) -> None:
        """Keep the run history of the schedule this one replaces."""
        for name in ("last_run", "last_job_id", "runs", "missed", "skipped", "last_error", "instances"):
            setattr(self, name, getattr(old, name))

    def to_record(self) -> dict:
        """What ``schedules.json`` keeps."""
        return {"id": self.id, "job": self.job, "params": self.params, "spec": self.spec,
                "trigger": self.trigger.to_dict(), "options": self.options(), "source": self.source,
                "next_run": _epoch(self.next_run), "last_run": self.last_run, "last_job_id": self.last_job_id,
                "runs": self.runs, "missed": self.missed, "skipped": self.skipped, "last_error": self.last_error}


def schedule_from_record(record: Mapping[str, Any]) -> Schedule:
    """Rebuild a saved schedule; raises JobError/KeyError/TypeError/ValueError
    when the record is not valid."""
    check_id(record["id"])
    options = check_options(record.get("options", {}))
    schedule = Schedule(record["id"], _as_str(record["job"], "job"), check_params(record.get("params", {})),
                        parse_trigger(record["trigger"]), dict(record.get("spec") or record["trigger"]),
                        source=SOURCE_CONFIG if record.get("source") == SOURCE_CONFIG else SOURCE_API,
                        **options)
    next_run = record.get("next_run")
    schedule.next_run = None if next_run is None else _datetime(float(next_run))
    schedule.last_run = None if record.get("last_run") is None else float(record["last_run"])
    schedule.last_job_id = record.get("last_job_id")
    schedule.last_error = record.get("last_error")
    for name in ("runs", "missed", "skipped"):
        setattr(schedule, name, int(record.get(name, 0)))
    return schedule


# -------------------------------------------------------------------- validation
def check_id(value: Any) -> str:
    """A valid schedule id, or JobError ``invalid_field``."""
    if not isinstance(value, str) or re.fullmatch(ID_PATTERN, value, re.ASCII) is None:
        raise JobError(f"schedule id {value!r} must be 1-64 characters of a-z 0-9 _ . -, "
                       "starting with a letter or digit", INVALID_FIELD)
    return value


def check_params(params: Any) -> dict:
    """A private JSON copy of a job's parameters."""
    if not isinstance(params, dict):
        raise JobError("params must be an object", INVALID_FIELD)
    try:
        return _json_copy(params)
    except (TypeError, ValueError) as exc:
        raise JobError(f"params must be plain JSON: {exc}", INVALID_FIELD) from None


def check_options(options: Mapping[str, Any]) -> dict:
    """All options, validated, defaults filled in (None means the default)."""
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise JobError(f"unknown schedule option {unknown[0]!r} (options: {', '.join(OPTION_DEFAULTS)})",
                       INVALID_FIELD)
    checked = dict(OPTION_DEFAULTS)
    for name, value in options.items():
        if value is not None:
            checked[name] = _OPTION_CHECKS[name](value)
    return checked


def _grace(value: Any) -> float:
    from ._base import ScheduleError
    from .durations import parse_duration

    try:
        return parse_duration(value, field="misfire_grace_time").total_seconds()
    except ScheduleError as exc:
        raise JobError(f"{exc} (seconds, or a duration such as 10m)", INVALID_FIELD) from None


def _flag(name: str) -> Any:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise JobError(f"{name} must be true or false", INVALID_FIELD)
        return value
    return check


def _instances(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise JobError(f"max_instances must be a whole number 1-1000, got {value!r}", INVALID_FIELD)
    return value


_OPTION_CHECKS = {"misfire_grace_time": _grace, "coalesce": _flag("coalesce"), "max_instances": _instances,
                  "enabled": _flag("enabled")}


def _as_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise JobError(f"{name} must be a string", INVALID_FIELD)
    return value


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _trigger_spec(spec: Any) -> dict:
    """A private JSON copy of a trigger spec (it is saved as given)."""
    try:
        copied = _json_copy(spec)
    except (TypeError, ValueError) as exc:
        raise JobError(f"invalid trigger: the spec must be plain JSON: {exc}", INVALID_TRIGGER) from None
    if not isinstance(copied, dict):
        raise JobError(f"invalid trigger: expected an object, got {type(spec).__name__}", INVALID_TRIGGER)
    return copied


# ===================================================================== scheduler
class Scheduler:
    """Runs jobs on triggers; see the module docstring for the timing rules.

    :param manager: submits the jobs; its ``timers`` queue drives the schedule.
    :param registry: builds jobs from a schedule's ``job`` and ``params``: a
        :class:`JobTypeRegistry`, or a function answering it (called when a
        job is built, so a daemon can keep building its registry lazily).
    :param clock: the manager's clock (the default); tests pass a FakeClock.
    :param state_dir: where ``schedules.json`` lives; None keeps schedules in memory.
    :param max_sleep: longest timer wait, so a stepped wall clock is noticed
        (None: sleep until the next run however far).

    Thread-safe: API handlers (I/O thread) and the timer may call in at once.
    Operations raise :class:`JobError` with stable codes (``invalid_field``,
    ``invalid_trigger``, ``unknown_job_type`` and the job type's own codes,
    ``schedule_exists``, ``unknown_schedule``, ``schedule_busy``,
    ``schedule_read_only``).
    """

    def __init__(self, manager: JobManager, registry: JobTypeRegistry | Callable[[], JobTypeRegistry],
                 clock: Any = None, state_dir: Any = None, *,
                 max_sleep: float | None = DEFAULT_MAX_SLEEP) -> None:
        self.manager = manager
        self._registry = registry
        self.clock = clock or manager.clock
        self.timers = manager.timers
        self.max_sleep = max_sleep
        self.store = ScheduleStore(state_dir) if state_dir is not None else None
        self._lock = threading.RLock()
        self._schedules: dict[str, Schedule] = {}
        self._timer: TimerHandle | None = None
        self._timer_generation = 0  # tells a stale timer callback from the current one
        self._started = False
        self._closed = False

    @property
    def registry(self) -> JobTypeRegistry:
        registry = self._registry
        return registry if hasattr(registry, "create") else registry()  # type: ignore[operator,return-value]

    # ------------------------------------------------------------- life cycle
    def load(self, config: Iterable[ScheduleDefinition] = ()) -> None:
        """Read ``schedules.json`` and apply the config file's schedules (they
        win over saved ones with the same id; saved config schedules no
        longer in the config are dropped). Raises :class:`ScheduleConfigError`
        when a config schedule is rejected (unknown job type, bad params)."""
        with self._lock:
            self._schedules = self._read_store()
            self._apply_config(list(config))
            self._save()

    def reload(self, config: Iterable[ScheduleDefinition] = ()) -> None:
        """Apply the config file's schedules again (the daemon's SIGHUP), as
        :meth:`load` does but without re-reading ``schedules.json``; all or
        nothing: on :class:`ScheduleConfigError` the schedules stay as they
        were. Wall-clock schedules without a ``timezone`` are rebuilt when
        the device's zone changed, so they follow the new local time."""
        with self._lock:
            before = dict(self._schedules)
            try:
                self._apply_config(list(config))
                self._follow_local_zone()
            except ScheduleConfigError:
                self._schedules = before
                raise
            self._changed()

    def _follow_local_zone(self) -> None:
        from .cron import CronTrigger

        for schedule in list(self._schedules.values()):
            trigger = schedule.trigger
            if not isinstance(trigger, CronTrigger) or "timezone" in schedule.spec:
                continue
            rebuilt = parse_trigger(schedule.spec, self._now())
            if rebuilt.timezone != trigger.timezone:
                log.info("schedule %s follows the new local time zone", schedule.id)
                fresh = Schedule(schedule.id, schedule.job, schedule.params, rebuilt, schedule.spec,
                                 source=schedule.source, **schedule.options())
                self._install(fresh, schedule, same_trigger=False)

    def start(self) -> None:
        """Arm the timer; start-up schedules run now (after their delay)."""
        with self._lock:
            self._started = True
            now = self.clock.time()
            for schedule in self._schedules.values():
                if schedule.enabled and isinstance(schedule.trigger, StartupTrigger):
                    schedule.next_run = _datetime(now + schedule.trigger.delay)
            self._changed()

    def shutdown(self) -> None:
        """Stop firing (call before the manager shuts down) and save."""
        with self._lock:
            self._closed = True
            self._cancel_timer()
            self._save()

    # ------------------------------------------------------------- operations
    def add(self, schedule_id: str, job: str, params: dict, trigger: dict, *, replace_existing: bool = False,
            **options: Any) -> dict:
        """Add a schedule (``options``: misfire_grace_time, coalesce,
        max_instances, enabled) and answer it as :meth:`get` does."""
        definition = ScheduleDefinition(check_id(schedule_id), job, params, trigger, options)
        with self._lock:
            old = self._schedules.get(schedule_id)
            if old is not None:
                if not replace_existing:
                    raise JobError(f"a schedule {schedule_id!r} exists already (use replace_existing)",
                                   SCHEDULE_EXISTS)
                self._check_writable(old)
            schedule = self._build(definition, SOURCE_API)
            self._check_fires(schedule.trigger)
            self._install(schedule, old, same_trigger=False)
            self._changed()
            return self._public(schedule)

    def modify(self, schedule_id: str, **changes: Any) -> dict:
        """Change any of job, params, trigger and the options; a new trigger
        (or re-enabling) computes the next run from now."""
        unknown = sorted(set(changes) - MODIFIABLE)
        if unknown:
            raise JobError(f"cannot modify {unknown[0]!r} (modifiable: {', '.join(sorted(MODIFIABLE))})",
                           INVALID_FIELD)
        with self._lock:
            old = self._find(schedule_id)
            self._check_writable(old)
            definition = self._merged(old, changes)
            kept = None if "trigger" in changes else old.trigger
            schedule = self._build(definition, old.source, trigger=kept)
            if kept is None:
                self._check_fires(schedule.trigger)
            self._install(schedule, old, same_trigger=kept is not None)
            self._changed()
            return self._public(schedule)

    def pause(self, schedule_id: str) -> dict:
        """Stop firing until :meth:`resume` (a config schedule's pause lasts
        until the daemon restarts)."""
        with self._lock:
            schedule = self._find(schedule_id)
            schedule.enabled, schedule.next_run = False, None
            self._changed()
            return self._public(schedule)

    def resume(self, schedule_id: str) -> dict:
        """Fire again; the next run is computed from now (runs that fell in
        the pause are not made up)."""
        with self._lock:
            schedule = self._find(schedule_id)
            if not schedule.enabled:
                schedule.enabled = True
                schedule.next_run = self._next(schedule.trigger, None, self._now())
                self._changed()
            return self._public(schedule)

    def remove(self, schedule_id: str) -> None:
        """Delete a schedule (its jobs already submitted keep running)."""
        with self._lock:
            self._check_writable(self._find(schedule_id))
            del self._schedules[schedule_id]
            self._changed()

    def run_now(self, schedule_id: str) -> Submission:
        """Submit the schedule's job now, paused or not; the regular next run
        is unchanged. ``schedule_busy`` when max_instances jobs are active."""
        with self._lock:
            schedule = self._find(schedule_id)
            submission = self._submit(schedule)
            self._save()
            return submission

    def get(self, schedule_id: str) -> dict:
        """One schedule as a JSON-safe dict (see docs/schedules.md)."""
        with self._lock:
            return self._public(self._find(schedule_id))

    def list(self) -> list[dict]:
        """Every schedule as :meth:`get` answers it, sorted by id."""
        with self._lock:
            return [self._public(self._schedules[key]) for key in sorted(self._schedules)]

    def __contains__(self, schedule_id: object) -> bool:
        return schedule_id in self._schedules

    # ---------------------------------------------------------------- building
    def _build(self, definition: ScheduleDefinition, source: str, trigger: Trigger | None = None) -> Schedule:
        """Validate a definition into a schedule (no next run yet)."""
        check_id(definition.id)
        params = check_params(definition.params)
        self.registry.create(definition.job, _json_copy(params))  # unknown type / bad params: refuse now
        spec = _trigger_spec(definition.trigger)
        if trigger is None:
            trigger = parse_trigger(spec, self._now())
        options = check_options(definition.options)
        return Schedule(definition.id, definition.job, params, trigger, spec, source=source, **options)

    def _check_fires(self, trigger: Trigger) -> None:
        """Refuse a new trigger that could never fire (a once date, or an
        end_date, already past): added by hand, that is a mistake, not a
        schedule to keep as "finished" (config schedules are loaded as they are)."""
        now = self._now()
        if isinstance(trigger, StartupTrigger) or self._next(trigger, None, now) is not None:
            return
        spec = trigger.to_dict()
        past = spec.get("run_date") or spec.get("end_date")
        detail = f"{past} is in the past" if past else "it has no fire time left"
        raise JobError(f"invalid trigger: it would never run: {detail} (now {now.isoformat(timespec='seconds')})",
                       INVALID_TRIGGER)

    def _install(self, schedule: Schedule, old: Schedule | None, same_trigger: bool) -> None:
        """Put ``schedule`` in place of ``old`` (or new), keeping the old run
        history and, when the trigger is the same and it stays enabled, the
        old next run."""
        if old is not None:
            schedule.carry_state(old)
        if not schedule.enabled:
            schedule.next_run = None
        elif same_trigger and old is not None and old.enabled:
            schedule.next_run = old.next_run
        else:
            schedule.next_run = self._next(schedule.trigger, None, self._now())
        self._schedules[schedule.id] = schedule

    @staticmethod
    def _merged(old: Schedule, changes: Mapping[str, Any]) -> ScheduleDefinition:
        options = old.options()
        options.update({name: value for name, value in changes.items() if name in OPTION_DEFAULTS})
        return ScheduleDefinition(old.id, changes.get("job", old.job), changes.get("params", old.params),
                                  changes.get("trigger", old.spec), options)

    def _find(self, schedule_id: Any) -> Schedule:
        schedule = self._schedules.get(schedule_id) if isinstance(schedule_id, str) else None
        if schedule is None:
            raise JobError(f"no schedule {schedule_id!r}", UNKNOWN_SCHEDULE)
        return schedule

    @staticmethod
    def _check_writable(schedule: Schedule) -> None:
        if schedule.source == SOURCE_CONFIG:
            raise JobError(f"schedule {schedule.id!r} comes from the daemon's configuration file; change it "
                           "there (pause, resume and run work over the API)", SCHEDULE_READ_ONLY)

    # ------------------------------------------------------------------ firing
    def _on_timer(self, generation: int) -> None:
        """The timer is due: fire what is due by the wall clock, re-arm."""
        with self._lock:
            if generation != self._timer_generation or self._closed:
                return  # cancelled after the queue had already taken it
            self._timer = None
            try:
                now = self._now()
                due = [s for s in self._schedules.values() if self._is_due(s, now)]
                for schedule in due:
                    self._fire_safely(schedule, now)
                if due:
                    self._save()
            finally:
                self._arm()

    def _is_due(self, schedule: Schedule, now: datetime) -> bool:
        next_run = schedule.next_run
        return schedule.enabled and next_run is not None and next_run.timestamp() <= now.timestamp() + _DUE_SLACK

    def _fire_safely(self, schedule: Schedule, now: datetime) -> None:
        try:
            self._fire(schedule, now)
        except Exception as exc:  # a broken trigger must not stop the other schedules
            log.exception("schedule %s failed to fire", schedule.id)
            schedule.last_error, schedule.next_run = f"internal error: {exc}", None

    def _fire(self, schedule: Schedule, now: datetime) -> None:
        """Run (or count as missed) the due fire times, then compute the next."""
        due, last = self._due_times(schedule, now)
        timely = [fire for fire in due if self._in_grace(schedule, fire, now)]
        if schedule.coalesce:
            runs = 1 if due and due[-1] in timely else 0
            missed = 0 if runs else len(due)
        else:
            runs, missed = len(timely), len(due) - len(timely)
        if missed:
            schedule.missed += missed
            log.warning("schedule %s: %d run(s) missed (more than %ss late)", schedule.id, missed,
                        schedule.misfire_grace_time)
        for _ in range(runs):
            self._try_submit(schedule)
        schedule.next_run = self._next(schedule.trigger, last, now)

    def _due_times(self, schedule: Schedule, now: datetime) -> tuple[list[datetime], datetime | None]:
        """The due fire times (at most CATCHUP_LIMIT) and the last one seen."""
        due: list[datetime] = []
        fire, last = schedule.next_run, None
        limit = now.timestamp() + _DUE_SLACK
        for _ in range(CATCHUP_LIMIT):
            if fire is None or fire.timestamp() > limit:
                break
            if not fire.timestamp() < CLOCK_SET_AFTER <= now.timestamp():
                due.append(fire)  # else: computed while the clock was unset, not a real miss
            last, fire = fire, self._next(schedule.trigger, fire, fire)
        return due, last

    @staticmethod
    def _in_grace(schedule: Schedule, fire: datetime, now: datetime) -> bool:
        grace = schedule.misfire_grace_time
        return grace is None or (now - fire).total_seconds() <= grace + _DUE_SLACK

    def _try_submit(self, schedule: Schedule) -> None:
        try:
            self._submit(schedule)
        except Exception as exc:  # counted and shown; the schedule goes on
            code = getattr(exc, "code", "internal_error")
            schedule.skipped += 1
            schedule.last_error = f"{code}: {exc}"
            log.warning("schedule %s: run skipped: %s (%s)", schedule.id, exc, code)

    def _submit(self, schedule: Schedule) -> Submission:
        active = self._active_jobs(schedule)
        if len(active) >= schedule.max_instances:
            raise JobError(f"schedule {schedule.id!r} has {len(active)} job(s) still queued, held or running "
                           f"({', '.join(active)}; max_instances {schedule.max_instances})", SCHEDULE_BUSY)
        job = self.registry.create(schedule.job, _json_copy(schedule.params))
        submission = self.manager.submit(job)
        if submission.job_id not in schedule.instances:
            schedule.instances.append(submission.job_id)
        schedule.runs += 1
        schedule.last_run, schedule.last_job_id, schedule.last_error = self.clock.time(), submission.job_id, None
        log.info("schedule %s: submitted %s job %s%s", schedule.id, schedule.job, submission.job_id,
                 " (an identical job was already active)" if submission.duplicate else "")
        return submission

    def _active_jobs(self, schedule: Schedule) -> list[str]:
        """Ids of this schedule's jobs the manager still has active (queued, held, running)."""
        alive = []
        for job_id in schedule.instances:
            job = self.manager.get_job(job_id, remove_if_complete=False)
            if job is not None and job.is_active:
                alive.append(job_id)
        schedule.instances = alive
        return alive

    # ------------------------------------------------------------------ timing
    def _now(self) -> datetime:
        return _datetime(self.clock.time())

    @staticmethod
    def _next(trigger: Trigger, previous: datetime | None, now: datetime) -> datetime | None:
        from datetime import timezone

        fire = trigger.next_fire_time(previous, now)
        return None if fire is None else fire.astimezone(timezone.utc)

    def _changed(self) -> None:
        self._save()
        self._arm()

    def _arm(self) -> None:
        """One timer for the earliest next run (none when nothing is scheduled)."""
        if not self._started or self._closed:
            return
        runs = [s.next_run.timestamp() for s in self._schedules.values() if s.enabled and s.next_run]
        if not runs:
            self._cancel_timer()
            return
        delay = min(runs) - self.clock.time()
        if self.max_sleep is not None:
            delay = min(delay, self.max_sleep)
        deadline = self.clock.monotonic() + max(0.0, delay)
        if self._timer is not None and abs(self._timer.deadline - deadline) < 1e-6:
            return
        self._cancel_timer()
        generation = self._timer_generation
        self._timer = self.timers.call_at(deadline, lambda: self._on_timer(generation))

    def _cancel_timer(self) -> None:
        self._timer_generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------- persistence
    def _save(self) -> None:
        if self.store is None:
            return
        try:
            self.store.save([self._schedules[key].to_record() for key in sorted(self._schedules)])
        except OSError as exc:  # keep running from memory; the next change tries again
            log.error("cannot save schedules to %s: %s", self.store.path, exc)

    def _read_store(self) -> dict[str, Schedule]:
        schedules: dict[str, Schedule] = {}
        bad = 0
        for record in self.store.load() if self.store is not None else []:
            try:
                schedule = schedule_from_record(record)
            except (JobError, KeyError, TypeError, ValueError) as exc:
                bad += 1
                log.warning("schedules file: dropping schedule %r: %s", record.get("id"), exc)
                continue
            if isinstance(schedule.trigger, StartupTrigger):
                schedule.next_run = None  # set again by start()
            schedules[schedule.id] = schedule
        if bad and self.store is not None:
            self.store.set_aside(f"{bad} invalid schedule(s)", copy=True)
        return schedules

    def _apply_config(self, definitions: list[ScheduleDefinition]) -> None:
        wanted = {definition.id for definition in definitions}
        for schedule_id, schedule in list(self._schedules.items()):
            if schedule.source == SOURCE_CONFIG and schedule_id not in wanted:
                log.info("schedule %s is no longer in the configuration: removed", schedule_id)
                del self._schedules[schedule_id]
        for definition in definitions:
            self._apply_config_schedule(definition)

    def _apply_config_schedule(self, definition: ScheduleDefinition) -> None:
        old = self._schedules.get(definition.id)
        if old is not None and old.source == SOURCE_API:
            log.warning("schedule %s from the configuration replaces the one added over the API", definition.id)
        same = old is not None and old.source == SOURCE_CONFIG and old.spec == definition.trigger
        try:
            schedule = self._build(definition, SOURCE_CONFIG, trigger=old.trigger if same else None)
        except JobError as exc:
            raise ScheduleConfigError(f"schedule {definition.id!r}: {exc} ({exc.code})") from None
        self._install(schedule, old, same_trigger=same)

    # ------------------------------------------------------------------ answers
    def _public(self, schedule: Schedule) -> dict:
        next_epoch = _epoch(schedule.next_run)
        return {
            "schedule_id": schedule.id, "job": schedule.job, "params": _json_copy(schedule.params),
            "trigger": schedule.trigger.to_dict(), "description": schedule.trigger.describe(),
            "options": schedule.options(), "enabled": schedule.enabled, "source": schedule.source,
            "state": _state(schedule), "next_run": _iso(next_epoch), "next_run_epoch": next_epoch,
            "last_run": _iso(schedule.last_run), "last_run_epoch": schedule.last_run,
            "last_job_id": schedule.last_job_id, "active_jobs": list(self._active_jobs(schedule)),
            "runs": schedule.runs, "missed": schedule.missed, "skipped": schedule.skipped,
            "last_error": schedule.last_error,
        }


def _state(schedule: Schedule) -> str:
    if not schedule.enabled:
        return "paused"
    if schedule.next_run is not None:
        return "scheduled"
    return "startup" if isinstance(schedule.trigger, StartupTrigger) else "finished"


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else _datetime(epoch).isoformat()


def _datetime(epoch: float) -> datetime:
    """An aware UTC datetime (``datetime`` is imported on first use)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc)


# ========================================================================= config
class ScheduleConfigError(ValueError):
    """A ``config schedule`` section is invalid; the message names it."""


if TYPE_CHECKING:
    class _Section(Protocol):
        type: str
        name: str | None
        options: dict


# UCI option -> trigger spec (exactly one of these per section)
_UCI_TRIGGERS = {
    "cron": lambda v: {"type": "cron", "expr": v},
    "every": lambda v: {"type": "interval", "every": v},
    "hourly": lambda v: {"type": "hourly", "minute": _uci_int(v, "hourly")},
    "daily": lambda v: {"type": "daily", "at": v},
    "weekly": lambda v: _weekly_spec(v),
    "at": lambda v: {"type": "date", "run_date": v},
    "startup": lambda v: {"type": "startup"},
}
_UCI_TRIGGER_OPTIONS = ("timezone", "jitter", "delay")
_UCI_OTHER = ("job", "packages", "params", "enabled", "coalesce", "misfire_grace", "max_instances")
_UCI_KNOWN = frozenset((*_UCI_TRIGGERS, *_UCI_TRIGGER_OPTIONS, *_UCI_OTHER))


def schedules_from_config(sections: Iterable[_Section]) -> list[ScheduleDefinition]:
    """The ``config schedule 'ID'`` sections of the daemon's UCI file (other
    section types are ignored). Raises :class:`ScheduleConfigError`::

        config schedule 'nightly_update'
            option job 'update'
            option cron '0 4 * * *'      # or every '30m', hourly '15', daily '04:00',
                                         # weekly 'mon 04:00', at '2025-06-01T04:00', startup '1'
            option timezone 'Europe/Berlin'
            option misfire_grace '1h'
            option coalesce '1'
            option max_instances '1'
            option enabled '1'
            list packages 'tcpdump'      # params for install / uninstall
            option params '{"dest": "sd"}'
    """
    definitions: list[ScheduleDefinition] = []
    for section in sections:
        if section.type != "schedule":
            continue
        definition = _definition_from_section(section)
        if any(d.id == definition.id for d in definitions):
            raise ScheduleConfigError(f"schedule {definition.id!r}: declared twice")
        definitions.append(definition)
    return definitions


def _definition_from_section(section: _Section) -> ScheduleDefinition:
    where = f"schedule {section.name!r}"
    try:
        if section.name is None:
            raise JobError("a schedule section needs a name: config schedule 'ID'", INVALID_FIELD)
        check_id(section.name)
        options = dict(section.options)
        unknown = sorted(set(options) - _UCI_KNOWN)
        if unknown:
            raise JobError(f"unknown option {unknown[0]!r} (known: {', '.join(sorted(_UCI_KNOWN))})",
                           INVALID_FIELD)
        spec = _uci_trigger(options)
        parse_trigger(spec)
        return ScheduleDefinition(section.name, _uci_single(options, "job"), _uci_params(options), spec,
                                  _uci_options(options))
    except (JobError, ValueError) as exc:  # ValueError: ScheduleError from the trigger layer
        raise ScheduleConfigError(f"{where}: {exc}") from None


def _uci_trigger(options: dict) -> dict:
    given = [name for name in _UCI_TRIGGERS if name in options and
             not (name == "startup" and not _uci_bool(options[name], name))]
    if len(given) != 1:
        found = ", ".join(given) if given else "none"
        raise JobError(f"give exactly one of {', '.join(_UCI_TRIGGERS)} (found: {found})", INVALID_FIELD)
    spec = _UCI_TRIGGERS[given[0]](_uci_single(options, given[0]))
    for name in _UCI_TRIGGER_OPTIONS:
        if name in options:
            spec[name] = _uci_single(options, name)
    return spec


def _uci_params(options: dict) -> dict:
    params: dict[str, Any] = {}
    if "params" in options:
        try:
            params = json.loads(_uci_single(options, "params"))
        except ValueError as exc:
            raise JobError(f"params must be a JSON object: {exc}", INVALID_FIELD) from None
        if not isinstance(params, dict):
            raise JobError("params must be a JSON object", INVALID_FIELD)
    if "packages" in options:
        packages = options["packages"]
        params["packages"] = packages if isinstance(packages, list) else packages.split()
    return params


def _uci_options(options: dict) -> dict:
    result: dict[str, Any] = {}
    for name in ("enabled", "coalesce"):
        if name in options:
            result[name] = _uci_bool(_uci_single(options, name), name)
    if "misfire_grace" in options:
        result["misfire_grace_time"] = _uci_single(options, "misfire_grace")
    if "max_instances" in options:
        result["max_instances"] = _uci_int(_uci_single(options, "max_instances"), "max_instances")
    check_options(result)
    return result


def _uci_single(options: dict, name: str) -> str:
    value = options.get(name)
    if value is None:
        raise JobError(f"missing option {name!r}", INVALID_FIELD)
    if not isinstance(value, str):
        raise JobError(f"{name}: expected one value (option), got a list", INVALID_FIELD)
    return value


def _uci_bool(value: Any, name: str) -> bool:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in ("1", "on", "true", "yes", "enabled"):
        return True
    if text in ("0", "off", "false", "no", "disabled"):
        return False
    raise JobError(f"{name}: {value!r} is not a boolean (1/0, yes/no, true/false)", INVALID_FIELD)


def _uci_int(value: str, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise JobError(f"{name}: {value!r} is not a whole number", INVALID_FIELD) from None


def _weekly_spec(value: str) -> dict:
    words = value.split()
    if len(words) != 2:
        raise JobError(f"weekly: expected 'DAY HH:MM', got {value!r}", INVALID_FIELD)
    return {"type": "weekly", "day": words[0], "at": words[1]}
