"""The example modules in modules/: their own actions."""
from __future__ import annotations

import json
import os
import stat

import pytest

from tests.api.helpers import value_if
from tests.modules.helpers import ask, load_example, wait_for

FAKE_TCPDUMP = """#!/bin/sh
# A stand-in for tcpdump: writes the pcap named after -w, then waits to be stopped.
while [ $# -gt 0 ]; do
    if [ "$1" = "-w" ]; then out="$2"; fi
    if [ "$1" = "-i" ] && [ "$2" = "nosuch0" ]; then echo "tcpdump: nosuch0: No such device exists" >&2; exit 1; fi
    shift
done
printf 'PCAPDATA' > "$out"
exec sleep 30
"""


@pytest.fixture(scope="module")
def packetsnoop():
    return load_example("packetsnoop")


@pytest.fixture(scope="module")
def netinfo():
    return load_example("netinfo")


def test_packetsnoop_capture(packetsnoop, sock_dir, tmp_path, serve):
    fake = tmp_path / "tcpdump"
    fake.write_text(FAKE_TCPDUMP)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    module = serve(packetsnoop.build_module(dependencies=["myapp"], tcpdump=str(fake),
                                            capture_dir=str(tmp_path / "captures"), socket_dir=str(sock_dir)))
    path = module.socket_path
    assert "interface name" in ask(path, "start_capture", interface="wlan0; reboot")["error"]
    assert "whole number" in ask(path, "start_capture", interface="wlan0", packets=0)["error"]
    started = ask(path, "start_capture", interface="wlan1mon", packets=10)["payload"]
    assert started["running"] is True and started["interface"] == "wlan1mon"
    assert "already running" in ask(path, "start_capture", interface="wlan0")["error"]
    wait_for(lambda: ask(path, "capture_status")["payload"]["bytes"] == 8, what="capture file")
    stopped = ask(path, "stop_capture")["payload"]
    assert stopped["running"] is False and os.path.exists(stopped["file"])

    failed = ask(path, "start_capture", interface="nosuch0")["payload"]
    status = wait_for(lambda: value_if(ask(path, "capture_status")["payload"], lambda s: not s["running"]),
                      what="failed capture")
    assert failed["interface"] == "nosuch0" and status["exit_code"] == 1 and "No such device" in status["stderr"]


def test_packetsnoop_without_tcpdump(packetsnoop, sock_dir, serve):
    module = serve(packetsnoop.build_module(dependencies=["myapp"], tcpdump="no-such-tcpdump-here",
                                            socket_dir=str(sock_dir)))
    assert ask(module.socket_path, "start_capture") == \
        {"error": "no-such-tcpdump-here is not installed: install the module's dependencies first"}
    assert {"check_dependencies", "manage_dependencies", "poll_job", "rebind_last_job"} <= set(module.actions)


def test_packetsnoop_dependencies_default_and_env(packetsnoop, sock_dir, monkeypatch):
    monkeypatch.delenv("PACKETSNOOP_DEPENDENCIES", raising=False)
    assert list(packetsnoop.build_module(socket_dir=str(sock_dir)).dependencies) == ["tcpdump"]
    monkeypatch.setenv("PACKETSNOOP_DEPENDENCIES", "myapp,otherapp")
    assert list(packetsnoop.build_module(socket_dir=str(sock_dir)).dependencies) == ["myapp", "otherapp"]


def test_netinfo_as_a_process(start_module, daemon):
    process = start_module("netinfo", {"PINEAPPLE_JOBD_SOCKET": str(daemon.socket),
                                       "NETINFO_DEPENDENCIES": "tool-a", "NETINFO_IW": "no-such-iw"})
    interfaces = ask(process.socket, "interfaces")["payload"]
    lo = next(i for i in interfaces if i["name"] == "lo")
    assert lo["mac"] == "00:00:00:00:00:00" and lo["wireless"] is False
    routes = ask(process.socket, "routes")["payload"]
    assert isinstance(routes, list)
    assert all({"interface", "destination", "gateway", "netmask"} <= set(r) for r in routes)
    assert "no-such-iw is not installed" in ask(process.socket, "wireless")["error"]
    assert ask(process.socket, "dependency_status")["payload"]["missing"] == ["tool-a"]
    assert ask(process.socket, "check_dependencies") == {"payload": False}  # bare boolean, as Hak5 pages read it
    assert process.stop() == 0
    assert not process.socket.exists()


def test_jobs_backend(sock_dir, serve, daemon, tmp_path):
    from pineapple.api.client import JobClient

    jobs = load_example("jobs")
    module = serve(jobs.build_module(jobd_socket=str(daemon.socket), socket_dir=str(sock_dir)))
    path = module.socket_path
    assert ask(path, "list_jobs") == {"payload": {"jobs": [], "total": 0, "limit": 50}}
    with JobClient(str(daemon.socket)) as client:
        job_id = client.install(["tool-a"])["job_id"]
        client.wait(job_id, timeout=30)
    listed = ask(path, "list_jobs", limit=5)["payload"]["jobs"]
    assert [j["job_id"] for j in listed] == [job_id]
    job = listed[0]
    assert (job["type"], job["packages"], job["state"], job["job_error"]) == ("install", ["tool-a"], "succeeded", None)
    assert job["can_restart"] and not job["can_cancel"] and job["progress"]["fraction"] == 1.0
    assert job["log"] and len(job["log"]) <= jobs.LOG_LINES and job["log_total"] >= len(job["log"])
    assert "limit" in ask(path, "list_jobs", limit=0)["error"]
    assert "job_id" in ask(path, "cancel_job")["error"]
    assert "(unknown_job)" in ask(path, "cancel_job", job_id="nosuchjob")["error"]
    assert "(job_active)" not in str(ask(path, "cancel_job", job_id=job_id))  # finished: not cancelled, no error
    restarted = ask(path, "restart_job", job_id=job_id)["payload"]
    assert restarted["parent_id"] == job_id and restarted["job_id"] != job_id

    down = serve(jobs.build_module(jobd_socket=str(tmp_path / "none.sock"), socket_dir=str(sock_dir / "down")))
    assert ask(down.socket_path, "list_jobs")["error"].startswith("pineapple-jobd is not reachable")


def test_netinfo_parsers(netinfo, tmp_path):
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                     "br-lan\t00000000\t0101A8C0\t0003\t0\t0\t10\t00000000\t0\t0\t0\n"
                     "br-lan\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert netinfo.read_routes(str(route)) == [
        {"interface": "br-lan", "destination": "0.0.0.0", "gateway": "192.168.1.1", "netmask": "0.0.0.0",
         "metric": 10, "default": True},
        {"interface": "br-lan", "destination": "192.168.1.0", "gateway": "0.0.0.0", "netmask": "255.255.255.0",
         "metric": 0, "default": False},
    ]
    iw_dev = ("phy#1\n\tInterface wlan1mon\n\t\tifindex 9\n\t\taddr 00:13:37:a5:5e:01\n\t\ttype monitor\n"
              "\t\tchannel 6 (2437 MHz), width: 20 MHz (no HT), center1: 2437 MHz\n"
              "phy#0\n\tInterface wlan0\n\t\taddr 00:13:37:a5:5e:00\n\t\tssid Pineapple_5E00\n\t\ttype AP\n")
    assert netinfo.parse_iw_dev(iw_dev) == [
        {"interface": "wlan1mon", "addr": "00:13:37:a5:5e:01", "type": "monitor", "channel": 6},
        {"interface": "wlan0", "addr": "00:13:37:a5:5e:00", "ssid": "Pineapple_5E00", "type": "AP"},
    ]


def test_example_metadata_is_valid_json():
    from tests.modules.helpers import EXAMPLES

    for name in ("packetsnoop", "netinfo", "jobs"):
        meta = json.loads((EXAMPLES / name / "module.json").read_text())
        assert meta["name"] == name

