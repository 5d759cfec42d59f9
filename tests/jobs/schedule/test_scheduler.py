"""The scheduler with a FakeClock and a real JobManager: arming, firing,
misfire / coalesce / max_instances, the operations, start-up schedules and
wall-clock jumps. Nothing sleeps: the fake clock fires the timers."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pineapple import errors
from pineapple.errors import JobError
from pineapple.jobs import FakeClock, Job, JobManager
from pineapple.jobs.registry import JobTypeRegistry, Params
from pineapple.jobs.schedule.scheduler import (
    CATCHUP_LIMIT,
    INVALID_TRIGGER,
    SCHEDULE_BUSY,
    SCHEDULE_EXISTS,
    UNKNOWN_SCHEDULE,
    ScheduleDefinition,
    Scheduler,
)
from tests.jobs.helpers import WAIT

UTC = timezone.utc
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC).timestamp()  # a Sunday, noon UTC
HOUR = 3600.0
HOURLY = {"type": "cron", "minute": 0, "timezone": "UTC"}


class JumpClock(FakeClock):
    """A FakeClock whose wall time can be stepped alone (NTP, ``date -s``)."""

    def step_wall(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds


class NoopJob(Job):
    job_type = "noop"

    def __init__(self, value: object = None) -> None:
        super().__init__()
        self.value = value

    def do_work(self, logger):
        return self.value


class GateJob(Job):
    """Stays running until the harness opens the gate."""

    job_type = "gate"

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def do_work(self, logger):
        assert self.gate.wait(WAIT), "gate never opened"
        return "through"


class Harness:
    """A JobManager on a fake clock, a registry with tiny job types and a
    Scheduler; ``restart()`` builds the next generation on the same state dir."""

    def __init__(self, state_dir: Path | None, start: float = START, max_sleep: float | None = HOUR,
                 clock: FakeClock | None = None) -> None:
        self.state_dir = state_dir
        self.max_sleep = max_sleep
        self.clock = clock or JumpClock(start)
        self.gate = threading.Event()
        self.broken: Exception | None = None  # raised by the "flaky" factory when set
        self.manager = JobManager("sched-test", clock=self.clock, workers=2, retention=None, stop_grace=1)
        self.registry = JobTypeRegistry()
        self._register_types()
        self.scheduler = Scheduler(self.manager, self.registry, state_dir=state_dir, max_sleep=max_sleep)

    def _register_types(self) -> None:
        def noop(params: dict) -> Job:
            p = Params(params, "noop")
            job = NoopJob(p.take("value", (str, int, float, bool, list, dict), None))
            p.finish()
            return job

        def flaky(params: dict) -> Job:
            if self.broken is not None:
                raise self.broken
            return NoopJob("flaky")

        self.registry.register("noop", noop, "does nothing", {"value": "what to return"})
        self.registry.register("gate", lambda params: GateJob(self.gate), "waits for the gate")
        self.registry.register("flaky", flaky, "fails to build when told to")

    def start(self, config: list[ScheduleDefinition] | tuple = ()) -> Harness:
        self.scheduler.load(config)
        self.scheduler.start()
        return self

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def jobs(self, job_type: str | None = None) -> list[Job]:
        """Submitted jobs, oldest first."""
        jobs = reversed(self.manager.list_jobs())
        return [job for job in jobs if job_type is None or job.type == job_type]

    def finish_jobs(self) -> None:
        self.gate.set()
        for job in self.jobs():
            self.manager.wait(job.id, WAIT)

    def restart(self, after: float = 0.0, config: list[ScheduleDefinition] | tuple = ()) -> Harness:
        """Stop this generation and start the next, ``after`` seconds later."""
        self.close()
        following = Harness(self.state_dir, start=self.clock.time() + after, max_sleep=self.max_sleep)
        return following.start(config)

    def close(self) -> None:
        self.gate.set()
        self.scheduler.shutdown()
        self.manager.shutdown(wait=True, timeout=WAIT)


@pytest.fixture
def make(tmp_path):
    """Factory of started harnesses, closed at teardown."""
    made: list[Harness] = []

    def build(state: bool = True, **options) -> Harness:
        harness = Harness(tmp_path / "state" if state else None, **options).start()
        made.append(harness)
        return harness

    yield build
    for harness in made:
        harness.close()


@pytest.fixture
def h(make) -> Harness:
    return make()


def add(h: Harness, schedule_id: str = "s", trigger: dict | None = None, job: str = "noop",
        params: dict | None = None, **options) -> dict:
    return h.scheduler.add(schedule_id, job, params or {}, trigger or {"type": "interval", "every": "1h"},
                           **options)


def code_of(call, *args, **kwargs) -> str:
    with pytest.raises(JobError) as caught:
        call(*args, **kwargs)
    return caught.value.code


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


# ------------------------------------------------------------------ arming
def test_one_timer_is_armed_for_the_earliest_next_run(h):
    add(h, "hourly", HOURLY)
    add(h, "evening", {"type": "daily", "at": "18:00", "timezone": "UTC"})
    add(h, "often", {"type": "interval", "every": "10m"})
    assert len(h.manager.timers) == 1
    h.advance(599)
    assert h.jobs() == []
    h.advance(1)
    assert [h.scheduler.get(s)["runs"] for s in ("hourly", "evening", "often")] == [0, 0, 1]
    assert len(h.manager.timers) == 1


def test_the_idle_scheduler_arms_exactly_one_timer(h):
    assert len(h.manager.timers) == 0  # nothing scheduled: no timer at all
    for number in range(5):
        add(h, f"weekly-{number}", {"type": "weekly", "day": "mon", "at": f"0{number}:00", "timezone": "UTC"})
    assert len(h.manager.timers) == 1
    for _ in range(6):  # the timer wakes once per max_sleep to re-check the wall clock, and re-arms
        h.advance(HOUR)
        assert len(h.manager.timers) == 1
    assert h.jobs() == []
    for number in range(5):
        h.scheduler.pause(f"weekly-{number}")
    assert len(h.manager.timers) == 0


def test_next_run_is_answered_as_iso_and_epoch(h):
    answer = add(h, "nightly", {"type": "cron", "expr": "0 4 * * *", "timezone": "UTC"})
    assert answer["next_run"] == "2025-06-02T04:00:00+00:00"
    assert answer["next_run_epoch"] == datetime(2025, 6, 2, 4, tzinfo=UTC).timestamp()
    assert answer["trigger"]["type"] == "cron" and answer["description"].startswith("cron")
    assert answer["state"] == "scheduled" and answer["source"] == "api"
    assert json.loads(json.dumps(h.scheduler.list())) == h.scheduler.list()


# ------------------------------------------------------------------ firing
def test_a_due_schedule_submits_its_job_and_records_the_run(h):
    add(h, "answer", params={"value": 42})
    h.advance(HOUR)
    [job] = h.jobs("noop")
    assert h.manager.wait(job.id, WAIT).result == 42
    state = h.scheduler.get("answer")
    assert (state["runs"], state["last_job_id"], state["last_run_epoch"]) == (1, job.id, START + HOUR)
    assert state["last_run"] == iso(START + HOUR)
    assert state["next_run_epoch"] == START + 2 * HOUR
    h.advance(HOUR)
    assert h.scheduler.get("answer")["runs"] == 2


def test_a_once_schedule_fires_once_then_is_finished(h):
    add(h, "once", {"type": "date", "run_date": iso(START + 90)})
    h.advance(90)
    h.advance(10 * HOUR)
    state = h.scheduler.get("once")
    assert (state["runs"], state["state"], state["next_run"]) == (1, "finished", None)
    assert len(h.manager.timers) == 0


def test_a_failing_factory_skips_the_run_and_the_schedule_goes_on(h):
    add(h, "flaky", job="flaky")
    h.broken = JobError("opkg is gone", "opkg_not_found")
    h.advance(HOUR)
    state = h.scheduler.get("flaky")
    assert (state["runs"], state["skipped"]) == (0, 1)
    assert state["last_error"].startswith("opkg_not_found")
    h.broken = RuntimeError("bug in a job type")
    h.advance(HOUR)
    assert h.scheduler.get("flaky")["skipped"] == 2
    h.broken = None
    h.advance(HOUR)
    state = h.scheduler.get("flaky")
    assert (state["runs"], state["last_error"]) == (1, None)


# ------------------------------------------------------- misfire & coalesce
def suspend_five_hours(h: Harness) -> None:
    """The daemon was suspended from 12:00 to 17:00:30: five hourly fire
    times (13:00 .. 17:00) are due at once."""
    h.advance(5 * HOUR + 30)


def test_coalesce_collapses_missed_runs_into_one(h):
    add(h, "hourly", HOURLY)
    suspend_five_hours(h)
    state = h.scheduler.get("hourly")
    assert (state["runs"], state["missed"]) == (1, 0)
    assert state["next_run"] == "2025-06-01T18:00:00+00:00"


def test_without_coalesce_every_missed_fire_time_runs(h):
    add(h, "hourly", HOURLY, coalesce=False, max_instances=10)
    suspend_five_hours(h)
    assert len(h.jobs("noop")) == 5
    assert h.scheduler.get("hourly")["runs"] == 5


def test_runs_later_than_the_grace_are_missed(h):
    add(h, "hourly", HOURLY, coalesce=False, max_instances=10, misfire_grace_time=2 * HOUR)
    suspend_five_hours(h)  # 13:00, 14:00 and 15:00 are more than 2 h late
    state = h.scheduler.get("hourly")
    assert (state["runs"], state["missed"]) == (2, 3)
    assert state["next_run"] == "2025-06-01T18:00:00+00:00"


def test_coalesced_run_needs_the_latest_fire_time_within_the_grace(h):
    add(h, "lenient", HOURLY, misfire_grace_time=60)
    add(h, "strict", HOURLY, misfire_grace_time="10s")
    suspend_five_hours(h)  # 17:00 is 30 s late
    lenient, strict = h.scheduler.get("lenient"), h.scheduler.get("strict")
    assert (lenient["runs"], lenient["missed"]) == (1, 0)
    assert (strict["runs"], strict["missed"]) == (0, 5)
    assert strict["next_run"] == "2025-06-01T18:00:00+00:00"


def test_catch_up_is_bounded(h):
    add(h, "minutely", {"type": "interval", "every": "1m"}, coalesce=False, max_instances=1000)
    h.advance(24 * HOUR)
    state = h.scheduler.get("minutely")
    assert state["runs"] == CATCHUP_LIMIT
    assert state["next_run_epoch"] == START + 24 * HOUR + 60  # from now on, no burst


def test_max_instances_skips_runs_while_jobs_are_active(h):
    add(h, "gated", job="gate")
    h.advance(HOUR)
    [first] = h.jobs("gate")
    h.advance(HOUR)  # the first job still runs
    state = h.scheduler.get("gated")
    assert (state["runs"], state["skipped"], state["active_jobs"]) == (1, 1, [first.id])
    assert SCHEDULE_BUSY in state["last_error"]
    h.finish_jobs()
    h.advance(HOUR)
    assert h.scheduler.get("gated")["runs"] == 2


def test_max_instances_two_allows_two_active_jobs(h):
    add(h, "gated", job="gate", max_instances=2)
    for _ in range(3):
        h.advance(HOUR)
    state = h.scheduler.get("gated")
    assert (state["runs"], state["skipped"], len(state["active_jobs"])) == (2, 1, 2)


# --------------------------------------------------------------- operations
def test_add_rejects_bad_input(h):
    add(h, "taken")
    assert code_of(add, h, "taken") == SCHEDULE_EXISTS
    assert code_of(add, h, "x", job="nope") == errors.UNKNOWN_JOB_TYPE
    assert code_of(add, h, "x", params={"colour": "red"}) == errors.INVALID_FIELD  # the job type's own check
    assert code_of(add, h, "x", {"type": "cron", "expr": "61 * * * *"}) == INVALID_TRIGGER
    assert code_of(add, h, "x", {"type": "fortnightly"}) == INVALID_TRIGGER
    assert code_of(add, h, "x", {"type": "startup", "every": "1h"}) == INVALID_TRIGGER
    assert code_of(add, h, "x", {"type": "date", "run_date": datetime.now(UTC)}) == INVALID_TRIGGER  # not JSON
    assert code_of(add, h, "x", "daily") == INVALID_TRIGGER
    for bad_id in ("", "Upper", "-dash", "a" * 65, "sp ace", 7):
        assert code_of(add, h, bad_id) == errors.INVALID_FIELD
    for option in ({"max_instances": 0}, {"coalesce": "yes"}, {"misfire_grace_time": -5}, {"colour": 1}):
        assert code_of(add, h, "x", **option) == errors.INVALID_FIELD
    assert [s["schedule_id"] for s in h.scheduler.list()] == ["taken"]


def test_replace_existing_swaps_the_definition_and_keeps_the_history(h):
    add(h, "s", params={"value": 1})
    h.advance(HOUR)
    replaced = add(h, "s", {"type": "interval", "every": "2h"}, params={"value": 2}, replace_existing=True)
    assert (replaced["params"], replaced["runs"]) == ({"value": 2}, 1)
    assert replaced["next_run_epoch"] == START + 3 * HOUR


def test_modify_recomputes_the_next_run_only_for_a_new_trigger(h):
    add(h, "s")
    h.advance(20 * 60)
    kept = h.scheduler.modify("s", params={"value": "new"}, max_instances=3)
    assert kept["next_run_epoch"] == START + HOUR
    assert kept["options"]["max_instances"] == 3
    moved = h.scheduler.modify("s", trigger={"type": "interval", "every": "30m"})
    assert moved["next_run_epoch"] == START + 20 * 60 + 30 * 60
    assert moved["params"] == {"value": "new"}


def test_modify_rejects_bad_changes_and_keeps_the_schedule(h):
    before = add(h, "s")
    assert code_of(h.scheduler.modify, "s", job="nope") == errors.UNKNOWN_JOB_TYPE
    assert code_of(h.scheduler.modify, "s", trigger={"type": "interval"}) == INVALID_TRIGGER
    assert code_of(h.scheduler.modify, "s", colour="red") == errors.INVALID_FIELD
    assert code_of(h.scheduler.modify, "missing", coalesce=False) == UNKNOWN_SCHEDULE
    assert h.scheduler.get("s") == before


def test_pause_and_resume(h):
    add(h, "s")
    paused = h.scheduler.pause("s")
    assert (paused["enabled"], paused["state"], paused["next_run"]) == (False, "paused", None)
    h.advance(3 * HOUR + 600)
    assert h.jobs() == []
    resumed = h.scheduler.resume("s")
    assert resumed["next_run_epoch"] == START + 4 * HOUR  # the grid after now; paused runs are not made up
    h.advance(HOUR)
    assert h.scheduler.get("s")["runs"] == 1 and h.scheduler.get("s")["missed"] == 0


def test_remove(h):
    add(h, "s")
    h.scheduler.remove("s")
    assert code_of(h.scheduler.get, "s") == UNKNOWN_SCHEDULE
    assert code_of(h.scheduler.remove, "s") == UNKNOWN_SCHEDULE
    assert len(h.manager.timers) == 0
    h.advance(2 * HOUR)
    assert h.jobs() == []


def test_run_now_submits_at_once_without_moving_the_next_run(h):
    add(h, "s", params={"value": "now"})
    submission = h.scheduler.run_now("s")
    assert h.manager.wait(submission.job_id, WAIT).result == "now"
    state = h.scheduler.get("s")
    assert (state["runs"], state["last_job_id"], state["next_run_epoch"]) == (1, submission.job_id, START + HOUR)
    h.scheduler.pause("s")
    assert h.scheduler.run_now("s").job_id  # a paused schedule can still be run by hand
    assert code_of(h.scheduler.run_now, "nope") == UNKNOWN_SCHEDULE


def test_run_now_respects_max_instances(h):
    add(h, "gated", job="gate")
    h.scheduler.run_now("gated")
    assert code_of(h.scheduler.run_now, "gated") == SCHEDULE_BUSY


# ----------------------------------------------------------------- start-up
def test_startup_schedules_fire_once_per_start(tmp_path):
    config = [ScheduleDefinition("boot", "noop", {}, {"type": "startup"}),
              ScheduleDefinition("late-boot", "noop", {}, {"type": "startup", "delay": "2m"})]
    h = Harness(tmp_path).start(config)
    h.advance(0)
    assert (h.scheduler.get("boot")["runs"], h.scheduler.get("late-boot")["runs"]) == (1, 0)
    h.advance(120)
    h.advance(5 * HOUR)
    boot, late = h.scheduler.get("boot"), h.scheduler.get("late-boot")
    assert (boot["runs"], late["runs"], boot["state"], boot["next_run"]) == (1, 1, "startup", None)
    assert late["description"] == "at start-up (after 2m)"
    h = h.restart(after=HOUR, config=config)
    h.advance(120)
    assert (h.scheduler.get("boot")["runs"], h.scheduler.get("late-boot")["runs"]) == (2, 2)
    h.close()


def test_a_startup_schedule_added_while_running_waits_for_the_next_start(h):
    added = add(h, "boot", {"type": "startup"})
    assert (added["state"], added["next_run"]) == ("startup", None)
    h.advance(HOUR)
    assert h.jobs() == []


# ------------------------------------------------------------- wall clock
def test_wall_clock_stepped_back_re_arms_instead_of_firing_early(h):
    add(h, "four", {"type": "daily", "at": "16:00", "timezone": "UTC"})  # armed for 4 h from noon
    h.clock.step_wall(-HOUR)
    for _ in range(4):
        h.advance(HOUR)  # the wall clock reads 15:00 when the first deadline passes
    assert h.jobs() == []
    h.advance(HOUR)
    state = h.scheduler.get("four")
    assert (state["runs"], state["last_run"]) == (1, "2025-06-01T16:00:00+00:00")


def test_wall_clock_stepped_forward_is_noticed_within_max_sleep(h):
    add(h, "four", {"type": "daily", "at": "16:00", "timezone": "UTC"})
    h.clock.step_wall(3.5 * HOUR)  # 15:30 by the wall, the monotonic deadline is 4 h away
    h.advance(HOUR)                # 16:30: the capped timer wakes up and finds the run due
    assert h.scheduler.get("four")["runs"] == 1


def test_fire_times_from_before_the_clock_was_set_are_dropped(make):
    h = make(start=3600.0)  # 1970-01-01 01:00: a router without a real-time clock, before NTP
    add(h, "nightly", {"type": "daily", "at": "04:00", "timezone": "UTC"})
    assert h.scheduler.get("nightly")["next_run"] == "1970-01-01T04:00:00+00:00"
    h.clock.step_wall(START - 3600.0)  # NTP sets the clock to 2025-06-01 12:00
    h.advance(HOUR)
    state = h.scheduler.get("nightly")
    assert (state["runs"], state["missed"]) == (0, 0)
    assert state["next_run"] == "2025-06-02T04:00:00+00:00"


def test_a_router_that_never_gets_the_time_still_runs_its_schedules(make):
    h = make(start=3600.0)
    add(h, "nightly", {"type": "daily", "at": "04:00", "timezone": "UTC"})
    h.advance(3 * HOUR)
    assert h.scheduler.get("nightly")["runs"] == 1


def test_without_max_sleep_the_timer_waits_for_the_run(make):
    h = make(max_sleep=None)
    add(h, "nightly", {"type": "daily", "at": "04:00", "timezone": "UTC"})
    h.advance(15 * HOUR + 59 * 60)
    assert h.jobs() == [] and len(h.manager.timers) == 1
    h.advance(60)
    assert h.scheduler.get("nightly")["runs"] == 1


def test_shutdown_stops_firing(h):
    add(h, "s")
    h.scheduler.shutdown()
    h.advance(2 * HOUR)
    assert h.jobs() == []


# --------------------------------------------------------------------- reload
def test_reload_applies_config_schedules_all_or_nothing(h: Harness):
    daily = ScheduleDefinition("nightly", "noop", {}, {"type": "daily", "at": "04:00", "timezone": "UTC"}, {})
    h.scheduler.reload([daily])
    assert h.scheduler.get("nightly")["source"] == "config"
    add(h, "api", HOURLY)
    broken = ScheduleDefinition("other", "no-such-type", {}, HOURLY, {})
    with pytest.raises(ValueError):
        h.scheduler.reload([daily, broken])
    assert sorted(s["schedule_id"] for s in h.scheduler.list()) == ["api", "nightly"]  # as before
    h.scheduler.reload([])
    assert [s["schedule_id"] for s in h.scheduler.list()] == ["api"]  # API schedules stay


def test_reload_follows_a_changed_device_zone(h: Harness, monkeypatch):
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    local = ScheduleDefinition("local", "noop", {}, {"type": "daily", "at": "04:00"}, {})
    pinned = ScheduleDefinition("pinned", "noop", {}, {"type": "daily", "at": "04:00", "timezone": "UTC"}, {})
    h.scheduler.reload([local, pinned])
    assert h.scheduler.get("local")["next_run_epoch"] == datetime(2025, 6, 2, 2, tzinfo=UTC).timestamp()
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")  # the device moved (LuCI rewrote /etc/TZ)
    h.scheduler.reload([local, pinned])
    assert h.scheduler.get("local")["next_run_epoch"] == datetime(2025, 6, 2, 8, tzinfo=UTC).timestamp()
    assert h.scheduler.get("pinned")["next_run_epoch"] == datetime(2025, 6, 2, 4, tzinfo=UTC).timestamp()
