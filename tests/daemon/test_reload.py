"""SIGHUP in a real daemon: the configuration is read again and applied while
an install runs; the install is not stopped (what `uci commit; reload_config`
does on a device through the init script's reload)."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from devtools.sandbox import PackageSpec, Sandbox
from tests.api.helpers import wait_until
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.opkgs import OPKGS, opkg_under_test

SLOW = {"OPKG_STANDIN_DOWNLOAD_DELAY": "1.5"}  # each package download takes 1.5 s
BASE = """config daemon 'main'
\toption workers '1'
\toption max_queued '50'
\toption retention '600'
\toption max_connections '20'
\toption log_level 'info'
"""


class ConfiguredDaemon(DaemonProcess):
    """A daemon whose daemon options all come from its UCI file (flags would
    win over the file): the file starts with the socket and state paths."""

    def __init__(self, *args, config_path, opkg_binary: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.config_path = config_path
        self.opkg_binary = opkg_binary or opkg_under_test(self.sandbox)
        self.paths = (f"config daemon 'main'\n\toption socket '{self.socket}'\n"
                      f"\toption state_dir '{self.state_dir}'\n")
        self.offset = self.paths.count("\n")  # lines before the test's own text

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "pineapple.daemon.main", "--config", str(self.config_path),
                "--opkg-binary", self.opkg_binary, "--opkg-root", str(self.sandbox.root),
                "--opkg-conf", str(self.sandbox.conf)]

    def write(self, text: str) -> None:
        self.config_path.write_text(self.paths + text)

    def reload(self, text: str) -> None:
        self.write(text)
        self.send_signal(signal.SIGHUP)

    def wait_log(self, needle: str, start: int = 0) -> str:
        return wait_until(lambda: needle in self.log()[start:] and self.log(), what=f"{needle!r} in the log:\n"
                          + self.log()[-2000:])


@pytest.fixture
def configured(sandbox, tmp_path):
    started = []

    def start(text: str = BASE, env: dict | None = None, opkg_binary: str = "",
              on: Sandbox | None = None) -> ConfiguredDaemon:
        path = tmp_path / f"pineapple-jobd-{len(started)}"
        work = tmp_path / f"d{len(started)}"
        work.mkdir()
        daemon = ConfiguredDaemon(on or sandbox, work, env=env, config_path=path, opkg_binary=opkg_binary)
        daemon.write(text)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.close()


def test_a_reload_applies_limits_and_log_level_while_an_install_runs(configured):
    daemon = configured(env=SLOW)
    client = daemon.client(timeout=30)
    job_id = client.install(["myapp"])["job_id"]  # myapp + mylib: two slow downloads
    wait_until(lambda: client.poll(job_id)["state"] == "running", what="the install to run")
    pid = daemon.proc.pid
    daemon.reload(BASE.replace("workers '1'", "workers '3'").replace("max_queued '50'", "max_queued '7'")
                  .replace("retention '600'", "retention '300'").replace("max_connections '20'", "max_connections '9'")
                  .replace("log_level 'info'", "log_level 'debug'"))
    daemon.wait_log("reload: daemon.workers 1 -> 3")
    limits = client.stats()["limits"]
    assert (limits["workers"], limits["max_queued"], limits["retention"], limits["max_connections"]) == (3, 7, 300, 9)
    assert client.poll(job_id)["state"] == "running"  # the reload did not touch it
    final = client.wait(job_id, timeout=60)
    assert final["state"] == "succeeded", final
    assert daemon.proc.poll() is None and daemon.proc.pid == pid
    assert "DEBUG" in daemon.log().split("reload: daemon.log_level")[1]  # debug lines only after the reload


def test_the_socket_path_needs_a_restart_and_the_log_says_so(configured, tmp_path):
    daemon = configured()
    daemon.reload(BASE + f"\toption socket '{tmp_path}/elsewhere.sock'\n\toption workers '2'\n")
    log = daemon.wait_log("reload: daemon.workers 1 -> 2")  # logged once applied
    assert "reload: daemon.socket changed" in log and "takes effect after a restart" in log
    assert "/etc/init.d/pineapple-jobd restart" in log
    with daemon.client() as client:  # still on the old path, the rest applied
        assert client.stats()["limits"]["workers"] == 2
    assert not os.path.exists(tmp_path / "elsewhere.sock")


def test_a_bad_config_is_refused_and_the_daemon_goes_on(configured):
    daemon = configured()
    daemon.reload(BASE + "\toption workers '0'\n")
    log = daemon.wait_log("keeping the running configuration")
    assert f"{daemon.config_path}:{daemon.offset + 7}: daemon.workers must be at least 1, got 0" in log
    daemon.reload("config daemon 'main'\n\toption workers 'x' 'y'\n")
    daemon.wait_log(f"{daemon.config_path}:{daemon.offset + 2}: too many arguments", start=len(log))
    with daemon.client() as client:
        assert client.stats()["limits"]["workers"] == 1
        assert client.ping()["pong"] is True


def test_schedules_and_hooks_change_on_reload(configured, tmp_path):
    daemon = configured()
    marker = tmp_path / "hook-ran"
    daemon.reload(BASE + "config schedule 'nightly'\n\toption job 'update'\n\toption daily '04:00'\n"
                         "config hook 'touch'\n\tlist argv '/bin/sh'\n\tlist argv '-c'\n"
                         f"\tlist argv 'touch {marker}'\n")
    daemon.wait_log("reload: schedule and hook sections re-read")
    with daemon.client(timeout=30) as client:
        [nightly] = client.request("schedule_list")["schedules"]
        assert (nightly["schedule_id"], nightly["source"]) == ("nightly", "config")
        job_id = client.install(["tool-a"], on_success=[{"command": "touch"}])["job_id"]
        assert client.wait(job_id, timeout=30)["state"] == "succeeded"
        wait_until(marker.exists, what="the hook added by the reload to run")
    daemon.reload(BASE)
    daemon.wait_log("schedule nightly is no longer in the configuration")
    with daemon.client() as client:
        assert client.request("schedule_list")["schedules"] == []


def test_a_broken_schedule_keeps_the_old_ones(configured):
    daemon = configured(BASE + "config schedule 'nightly'\n\toption job 'update'\n\toption daily '04:00'\n")
    daemon.reload(BASE + "config schedule 'nightly'\n\toption job 'update'\n\toption daily '25:00'\n")
    daemon.wait_log("keeping the running configuration")
    with daemon.client() as client:
        [nightly] = client.request("schedule_list")["schedules"]
        assert nightly["description"] == "every day at 04:00"


def test_reloads_in_a_burst_all_land(configured):
    daemon = configured()
    for workers in range(2, 7):
        daemon.write(BASE.replace("workers '1'", f"workers '{workers}'"))
        daemon.send_signal(signal.SIGHUP)
        time.sleep(0.01)
    with daemon.client() as client:
        wait_until(lambda: client.stats()["limits"]["workers"] == 6, what="the last reload to apply")
    assert daemon.proc.poll() is None


def test_mqtt_follows_a_reload_while_an_install_runs(configured, broker):
    from tests.fixtures.mqtt import Recorder

    daemon = configured(env=SLOW)
    recorder = Recorder(broker.port, ["pineapple/dev1/#"])
    try:
        client = daemon.client(timeout=30)
        job_id = client.install(["myapp"])["job_id"]
        mqtt = (f"config mqtt 'mqtt'\n\toption enabled '1'\n\toption port '{broker.port}'\n"
                "\toption device_id 'dev1'\n\toption keepalive '5'\n")
        daemon.reload(BASE + mqtt)
        recorder.wait_for(lambda msgs: any(t == "pineapple/dev1/status" and p == b"online" for t, p, _ in msgs))
        final = client.wait(job_id, timeout=60)
        assert final["state"] == "succeeded"
        # the bridge started mid-job publishes the running job's states, then the final one
        recorder.wait_for(lambda msgs: any(t == f"pineapple/dev1/jobs/{job_id}/state" and p
                                           and b'"succeeded"' in p for t, p, _ in msgs))
        daemon.reload(BASE + mqtt.replace("enabled '1'", "enabled '0'"))
        recorder.wait_for(lambda msgs: msgs[-1][:2] == ("pineapple/dev1/status", b"offline"))
        daemon.wait_log("reload: mqtt.enabled True -> False")
        assert client.stats()["mqtt"] is None
    finally:
        recorder.close()


@pytest.mark.parametrize("binary", OPKGS)
def test_a_reload_during_a_slow_postinst_leaves_the_install_alone(configured, tmp_path, binary):
    """With the stand-in and with real opkg-lede: a package whose postinst
    takes seconds (run under -o with --force-postinstall), a reload while it
    runs, and the install still ends as it would have."""
    slow = Sandbox.create(tmp_path / "slow", packages=[
        PackageSpec("libc", "1.2.4-4"),
        PackageSpec("slowpkg", "1.0-1", depends=["libc"],
                    scripts={"postinst": "#!/bin/sh\nsleep 3\necho configured > \"$PKG_ROOT/slow-done\"\n"}),
    ], installed=["libc"])
    text = BASE + "config opkg 'opkg'\n\tlist extra_args '--force-postinstall'\n"
    daemon = configured(text, opkg_binary=binary, on=slow)
    client = daemon.client(timeout=30)
    job_id = client.install(["slowpkg"])["job_id"]
    wait_until(lambda: client.poll(job_id)["state"] == "running", what="the install to run")
    daemon.reload(text.replace("workers '1'", "workers '2'"))
    daemon.wait_log("reload: daemon.workers 1 -> 2")
    final = client.wait(job_id, timeout=60)
    assert final["state"] == "succeeded", final
    assert (slow.root / "slow-done").read_text() == "configured\n"
    assert slow.installed()["slowpkg"] == "1.0-1"


SIGNAL_ON_WORKER = """import os, signal, threading, time

def run(job, trigger, done):
    # Wait for the test's go, then take the SIGHUP on this worker thread:
    # what happens when the kernel hands a process-directed signal to any
    # thread but the main one (one creating threads, as sh does per run).
    deadline = time.monotonic() + 60
    while not os.path.exists(trigger) and time.monotonic() < deadline:
        time.sleep(0.02)
    signal.pthread_kill(threading.get_ident(), signal.SIGHUP)
    while not os.path.exists(done) and not job.stop_requested and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"ok": True}
"""


def test_a_sighup_taken_by_a_worker_thread_reloads_without_waiting_for_a_request(configured, tmp_path):
    """Signals go to whichever thread the kernel picks; the I/O loop must
    wake for one taken on another thread even while no client says a word."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "onworker.py").write_text(SIGNAL_ON_WORKER)
    trigger, done = tmp_path / "go", tmp_path / "done"
    text = BASE + f"config job_type 'onworker'\n\toption handler 'onworker:run'\n\toption path '{code}'\n"
    daemon = configured(text)
    client = daemon.client(timeout=30)
    job_id = client.submit("onworker", trigger=str(trigger), done=str(done))["job_id"]
    wait_until(lambda: client.poll(job_id)["state"] == "running", what="the job to run")
    daemon.write(text.replace("workers '1'", "workers '2'"))
    trigger.touch()  # from here on the socket stays silent until the reload is logged
    try:
        daemon.wait_log("reload: daemon.workers 1 -> 2")
    finally:
        done.touch()
    assert client.wait(job_id, timeout=30)["state"] == "succeeded"
