"""Job types declared in the daemon config (``config job_type``), in a real
``pineapple-jobd`` process: declared, submitted, followed, cancelled,
restarted, held, scheduled; bad declarations stop the start; and no request
can make the daemon import anything."""
from __future__ import annotations

import json
import textwrap
import time

import pytest

from pineapple.api.protocol import ApiError

WAIT = 20.0

USER_MODULE = '''
import time

from pineapple.errors import JobError
from pineapple.jobs import Job


def greet(job, name, greeting="hello"):
    job.logger.info("greeting %s", name)
    return {"text": f"{greeting} {name}", "type": job.type}


def spin(job, seconds=30.0):
    """Runs until cancelled (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not job.stop_requested:
        time.sleep(0.01)
    return {"stopped": job.stop_requested}


def interval(job, seconds=0.05):
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


ATTEMPTS = []


def flaky(job):
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < 3:
        raise JobError(f"attempt {len(ATTEMPTS)} failed", "download_failed")
    return {"attempts": len(ATTEMPTS)}


def anything(job, **params):
    return params


class Count(Job):
    def __init__(self, to, step=1):
        super().__init__()
        self.to, self.step = to, step

    def do_work(self, logger):
        for i in range(0, self.to, self.step):
            self.set_progress(i / self.to, f"at {i}")
        return {"counted": self.to, "resource": self.resource, "timeout": self.timeout}
'''

CONFIG = '''
config job_type 'greet'
    option handler 'userjobs:greet'
    option description 'Say hello'
    option params '{"greeting": "hi"}'
    option path '{path}'

config job_type 'spin'
    option handler 'userjobs:spin'
    option timeout '60'

config job_type 'interval'
    option handler 'userjobs:interval'
    option resource 'flash'

config job_type 'flaky'
    option handler 'userjobs:flaky'
    option max_retries '3'

config job_type 'anything'
    option handler 'userjobs:anything'

config job_type 'count'
    option handler 'userjobs:Count'
    option params '{"step": 2}'
    option resource 'counter'
    option timeout '30'
'''


def write_module(directory, name="userjobs", text=USER_MODULE):
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(text))


def write_config(tmp_path, text, name="jobd.uci"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("{path}", str(tmp_path / "userjobs")))
    return path


@pytest.fixture
def jobd(start_daemon, tmp_path):
    write_module(tmp_path / "userjobs")
    return start_daemon(extra_args=["--config", str(write_config(tmp_path, CONFIG))])


def wait_state(client, job_id, state):
    deadline = time.monotonic() + WAIT
    while client.poll(job_id)["state"] != state:
        assert time.monotonic() < deadline, f"{job_id} never reached {state}"
        time.sleep(0.01)


# -------------------------------------------------------------- declared
def test_declared_types_are_listed_beside_the_builtin_ones(jobd):
    with jobd.client() as client:
        types = {t["name"]: t for t in client.job_types()}
    assert {"install", "uninstall", "update", "greet", "spin", "interval", "flaky", "anything",
            "count"} == set(types)
    greet = types["greet"]
    assert greet["description"] == "Say hello"
    assert greet["params"]["name"] == "required" and greet["params"]["greeting"] == 'default "hi"'
    assert "timeout" in greet["params"] and "max_retries" in greet["params"]
    assert types["count"]["params"]["to"] == "required" and types["count"]["params"]["step"] == "default 2"
    assert "..." in types["anything"]["params"]


def test_a_function_type_runs_with_defaults_and_request_parameters(jobd):
    with jobd.client() as client:
        first = client.wait(client.submit("greet", name="ada")["job_id"], timeout=WAIT)
        assert first["state"] == "succeeded"
        assert first["result"] == {"text": "hi ada", "type": "greet"}
        second = client.wait(client.submit("greet", name="bob", greeting="hey")["job_id"], timeout=WAIT)
        assert second["result"]["text"] == "hey bob"
        record = client.get(second["job_id"])
    assert record["params"] == {"greeting": "hey", "name": "bob"}
    assert "greeting bob" in record["log"]
    assert record["timeout"] == 1800.0  # daemon.job_timeout: none declared


def test_a_class_type_gets_its_declared_resource_and_timeout(jobd):
    with jobd.client() as client:
        done = client.wait(client.submit("count", to=10)["job_id"], timeout=WAIT)
        record = client.get(done["job_id"])
    assert done["result"] == {"counted": 10, "resource": "counter", "timeout": 30.0}
    assert record["params"] == {"step": 2, "to": 10} and record["resource"] == "counter"


def test_bad_parameters_are_refused_at_submit(jobd):
    with jobd.client() as client:
        with pytest.raises(ApiError) as missing:
            client.submit("greet")
        assert missing.value.code == "missing_field" and "name" in str(missing.value)
        with pytest.raises(ApiError) as unknown:
            client.submit("greet", name="ada", colour="red")
        assert unknown.value.code == "invalid_field" and "colour" in str(unknown.value)
        with pytest.raises(ApiError) as lane:
            client.submit("anything", resource="opkg")  # the lane is the config's alone
        assert lane.value.code == "invalid_field"
        with pytest.raises(ApiError) as timeout:
            client.submit("greet", name="ada", timeout=-1)
        assert timeout.value.code == "invalid_field"
        anything = client.submit("anything", a=1, b=[2])["job_id"]
        assert client.wait(anything, timeout=WAIT)["result"] == {"a": 1, "b": [2]}


def test_a_declared_timeout_and_retries_apply(jobd):
    with jobd.client() as client:
        stopped = client.wait(client.submit("spin", timeout=0.2)["job_id"], timeout=WAIT)
        assert (stopped["state"], stopped["error_code"]) == ("failed", "timeout")
        flaky = client.wait(client.submit("flaky")["job_id"], timeout=WAIT)
        assert flaky["state"] == "succeeded" and flaky["result"] == {"attempts": 3}
        assert client.get(flaky["job_id"])["attempts"] == 3


def test_same_resource_runs_one_at_a_time(jobd):
    with jobd.client() as client:
        ids = [client.submit("interval")["job_id"] for _ in range(3)]
        spans = sorted(client.wait(job_id, timeout=WAIT)["result"] for job_id in ids)
    for before, after in zip(spans[:-1], spans[1:]):  # noqa: B905 (zip(strict=) is Python 3.10+)
        assert before[1] <= after[0], f"two 'flash' jobs overlapped: {spans}"


def test_cancel_follow_restart_and_hold_work_like_opkg_jobs(jobd):
    with jobd.client() as client:
        job_id = client.submit("spin")["job_id"]
        wait_state(client, job_id, "running")
        assert client.cancel(job_id)["cancelled"] is True
        events = list(client.follow(job_id, timeout=WAIT))
        assert events[-1]["event"] == "end" and events[-1]["job"]["state"] == "cancelled"
        again = client.restart(job_id)
        assert again["parent_id"] == job_id
        wait_state(client, again["job_id"], "running")
        client.cancel(again["job_id"])
        assert client.wait(again["job_id"], timeout=WAIT)["state"] == "cancelled"
        held = client.request("submit", job="greet", name="held", hold=True)["job_id"]
        assert client.poll(held)["state"] == "held"
        client.release(held)
        assert client.wait(held, timeout=WAIT)["result"]["text"] == "hi held"


def test_a_declared_type_can_be_scheduled(start_daemon, tmp_path):
    write_module(tmp_path / "userjobs")
    config = write_config(tmp_path, CONFIG + '''
config schedule 'boot_greet'
    option job 'greet'
    option params '{"name": "boot"}'
    option startup '1'
''')
    daemon = start_daemon(extra_args=["--config", str(config)])
    with daemon.client() as client:
        deadline = time.monotonic() + WAIT
        while not client.request("schedule_get", schedule_id="boot_greet")["runs"]:
            assert time.monotonic() < deadline, "the schedule never ran"
            time.sleep(0.05)
        job_id = client.request("schedule_get", schedule_id="boot_greet")["last_job_id"]
        assert client.wait(job_id, timeout=WAIT)["result"]["text"] == "hi boot"
        added = client.request("schedule_add", schedule_id="later", job="count", params={"to": 4},
                               trigger={"type": "interval", "every": "1h"})
        assert added["job"] == "count"


# ----------------------------------------------------- bad declarations
BAD = [
    ("import-error", "config job_type 'broken'\n    option handler 'raises:run'\n    option path '{path}'\n",
     ["config job_type 'broken'", "cannot import 'raises'", "ZeroDivisionError"]),
    ("no-module", "config job_type 'ghost'\n    option handler 'no_such_module_here:run'\n",
     ["config job_type 'ghost'", "cannot import 'no_such_module_here'"]),
    ("no-attribute", "config job_type 'typo'\n    option handler 'userjobs:gret'\n    option path '{path}'\n",
     ["config job_type 'typo'", "has no attribute 'gret'"]),
    ("not-a-job", "config job_type 'odd'\n    option handler 'userjobs:ATTEMPTS'\n    option path '{path}'\n",
     ["config job_type 'odd'", "neither a function nor a Job subclass"]),
    ("no-handler", "config job_type 'empty'\n    option description 'nothing'\n",
     ["config job_type 'empty'", "needs option handler"]),
    ("bad-option", "config job_type 'greet'\n    option handler 'userjobs:greet'\n    option path '{path}'\n"
     "    option retries '3'\n", ["config job_type 'greet'", "unknown option(s) retries"]),
    ("builtin", "config job_type 'install'\n    option handler 'userjobs:greet'\n    option path '{path}'\n",
     ["config job_type 'install'", "built-in job type"]),
    ("bad-params", "config job_type 'greet'\n    option handler 'userjobs:greet'\n    option path '{path}'\n"
     "    option params '[1, 2]'\n", ["config job_type 'greet'", "params must be a JSON object"]),
    ("unknown-default", "config job_type 'greet'\n    option handler 'userjobs:greet'\n    option path '{path}'\n"
     "    option params '{\"colour\": 1}'\n", ["config job_type 'greet'", "'colour'"]),
    ("bad-timeout", "config job_type 'greet'\n    option handler 'userjobs:greet'\n    option path '{path}'\n"
     "    option timeout 'soon'\n", ["config job_type 'greet'", "timeout 'soon'"]),
    ("bad-name", "config job_type 'Shout'\n    option handler 'userjobs:greet'\n    option path '{path}'\n",
     ["config job_type 'Shout'", "lowercase letters"]),
    ("no-job-argument", "config job_type 'bare'\n    option handler 'userjobs:bare'\n    option path '{path}'\n",
     ["config job_type 'bare'", "first argument"]),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=i) for i, t, e in BAD])
def test_a_bad_declaration_stops_the_start_naming_the_section(start_daemon, tmp_path, text, expected):
    write_module(tmp_path / "userjobs", text=USER_MODULE + "\n\ndef bare():\n    return 1\n")
    write_module(tmp_path / "userjobs", name="raises", text="1 / 0\n")
    daemon = start_daemon(extra_args=["--config", str(write_config(tmp_path, text))], wait=False)
    assert daemon.proc.wait(WAIT) == 2
    log = daemon.log()
    assert "configuration error" in log
    for words in expected:
        assert words in log, log


# ------------------------------------------------------ nothing imported
EVIL = '''
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("the daemon imported me")


def boom(job):
    return "ran"


class Boom:
    pass
'''


def test_no_request_can_make_the_daemon_import_code(jobd, tmp_path):
    """userjobs' directory is on the daemon's path; evil.py beside it writes a
    marker when imported. Nothing a client sends may import it."""
    write_module(tmp_path / "userjobs", name="evil", text=EVIL)
    marker = tmp_path / "userjobs" / "IMPORTED"
    attempts = [
        {"job": "evil:boom"}, {"job": "evil"}, {"job": "userjobs:greet", "name": "x"},
        {"job": "greet", "name": "x", "handler": "evil:boom"},
        {"job": "anything", "handler": "evil:boom", "path": str(tmp_path)},
        {"job": "count", "to": 1, "class": "evil:Boom"},
    ]
    with jobd.client() as client:
        for fields in attempts:
            try:
                answer = client.submit(**fields)
            except ApiError as exc:
                assert exc.code in ("unknown_job_type", "invalid_field"), (fields, exc.code)
            else:  # `anything` takes any parameter: the text arrives as data, never as code
                assert client.wait(answer["job_id"], timeout=WAIT)["result"]["handler"] == "evil:boom"
        for job in ("evil:boom", "evil"):
            with pytest.raises(ApiError) as caught:
                client.request("schedule_add", schedule_id="x", job=job, trigger={"type": "interval", "every": "1h"})
            assert caught.value.code == "unknown_job_type"
        with pytest.raises(ApiError):
            client.request("restart", job_id="evil:boom")
        assert {"evil", "evil:boom"}.isdisjoint(t["name"] for t in client.job_types())
    assert not marker.exists(), "a request made the daemon import a module"


def test_the_builtin_type_names_are_the_registered_ones():
    from pineapple.daemon.jobtypes import BUILTIN_TYPES
    from pineapple.jobs.registry import JobTypeRegistry
    from pineapple.opkg.jobs import register_opkg_jobs

    registry = JobTypeRegistry()
    register_opkg_jobs(registry, object(), default_timeout=None)
    assert {t["name"] for t in registry.catalogue()} == BUILTIN_TYPES
    json.dumps(registry.catalogue())


def test_declared_types_over_mqtt(broker, start_daemon, tmp_path):
    from tests.fixtures.mqtt import Recorder

    write_module(tmp_path / "userjobs")
    write_module(tmp_path / "userjobs", name="evil", text=EVIL)
    prefix = "pineapple/jt1"
    daemon = start_daemon(extra_args=["--config", str(write_config(tmp_path, CONFIG)), "--set", "mqtt.enabled=1",
                                      "--set", f"mqtt.port={broker.port}", "--set", "mqtt.device_id=jt1",
                                      "--set", "mqtt.commands=1"])
    recorder = Recorder(broker.port, [f"{prefix}/#"])
    try:
        recorder.wait_for(lambda msgs: any(p == b"online" for _, p, _ in msgs))

        def command(topic, ref, **fields):
            recorder.publish(f"{prefix}/jobs/{topic}", json.dumps({"ref": ref, **fields}))
            recorder.wait_for(lambda msgs: any(t == f"{prefix}/jobs/reply/{ref}" for t, _, _ in msgs))
            return recorder.json_on(f"{prefix}/jobs/reply/{ref}")[0]

        greeted = command("submit", "g1", job="greet", name="mqtt")
        assert greeted["ok"], greeted
        assert daemon.client().wait(greeted["payload"]["job_id"], timeout=WAIT)["result"]["text"] == "hi mqtt"
        spinning = command("submit", "s1", job="spin")["payload"]["job_id"]
        with daemon.client() as client:
            wait_state(client, spinning, "running")
        assert command("cancel", "c1", job_id=spinning)["payload"]["cancelled"] is True
        assert daemon.client().wait(spinning, timeout=WAIT)["state"] == "cancelled"
        assert command("submit", "e1", job="evil:boom")["code"] == "unknown_job_type"
    finally:
        recorder.close()
    assert not (tmp_path / "userjobs" / "IMPORTED").exists()
