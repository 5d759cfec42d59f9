"""Dependency helpers against a real pineapple-jobd and the opkg stand-in."""
from __future__ import annotations

import pytest

from pineapple.modules import DependencySet, Module
from tests.api.helpers import value_if
from tests.modules.helpers import ask, poll_until_complete, wait_for

SLOW = {"OPKG_STANDIN_DOWNLOAD_DELAY": "1.0"}  # each package download takes a second


def dependency_module(sock_dir, daemon, packages, name="deps") -> Module:
    module = Module(name, "INFO", socket_dir=str(sock_dir), jobd_socket=str(daemon.socket), dependencies=packages)
    module.enable_dependency_actions()
    return module


# ------------------------------------------------------------ DependencySet
def test_dependency_set_validates_and_dedupes(monkeypatch):
    deps = DependencySet(["tcpdump", "libpcap1", "tcpdump"])
    assert list(deps) == ["tcpdump", "libpcap1"] and len(deps) == 2 and deps[0] == "tcpdump"
    assert deps == ["tcpdump", "libpcap1"]
    for bad in (["Bad Name"], ["--force-depends"], [""], [3]):
        with pytest.raises(ValueError, match="invalid dependency"):
            DependencySet(bad)
    with pytest.raises(TypeError):
        DependencySet("tcpdump")
    monkeypatch.setenv("X_DEPS", "myapp, tool-a  tool-b")
    assert list(DependencySet.from_env("X_DEPS", ["tcpdump"])) == ["myapp", "tool-a", "tool-b"]
    monkeypatch.delenv("X_DEPS")
    assert list(DependencySet.from_env("X_DEPS", ["tcpdump"])) == ["tcpdump"]


def test_dependencies_can_be_declared_either_way(sock_dir):
    module = Module("d", socket_dir=str(sock_dir))
    assert list(module.dependencies) == []
    module.dependencies = DependencySet(["myapp"])
    assert module.dependencies == ["myapp"]
    module.dependencies = ["tool-a"]
    assert isinstance(module.dependencies, DependencySet)


def test_own_handler_wins_over_ready_made_action(sock_dir):
    module = Module("d", socket_dir=str(sock_dir), dependencies=["myapp"])
    module.register_action_handler("poll_job", lambda request: "mine")
    module.enable_dependency_actions()
    assert module.call("poll_job", job_id="x") == {"payload": "mine"}
    assert {"check_dependencies", "manage_dependencies", "rebind_last_job"} <= set(module.actions)


# ------------------------------------------------------------ real daemon
def test_install_through_the_daemon(sock_dir, serve, start_daemon, sandbox):
    daemon = start_daemon(env=SLOW)
    module = serve(dependency_module(sock_dir, daemon, ["myapp", "tool-a"]))
    path = module.socket_path
    before = ask(path, "dependency_status")["payload"]
    assert before["all_installed"] is False and before["missing"] == ["myapp", "tool-a"]
    assert before["dependencies"][0] == {"name": "myapp", "installed": False, "version": None}
    assert ask(path, "check_dependencies") == {"payload": False}  # a bare boolean, as Hak5's pages read it

    submitted = ask(path, "manage_dependencies", install=True)["payload"]
    job_id = submitted["job_id"]
    assert submitted["duplicate"] is False
    seen = []

    def complete():
        answer = ask(path, "poll_job", job_id=job_id)["payload"]
        assert {"is_complete", "result", "job_error", "state", "progress", "error_code"} <= set(answer)
        seen.append(answer["progress"]["fraction"])
        return answer if answer["is_complete"] else None

    final = wait_for(complete, timeout=30, interval=0.2, what="install")
    assert final["job_error"] is None and final["state"] == "succeeded"
    assert any(f is not None and 0 < f < 1 for f in seen), seen  # progress moved while it ran
    after = ask(path, "dependency_status")["payload"]
    assert after["all_installed"] is True and after["installed"]["myapp"] == "1.2.3-1"
    assert ask(path, "check_dependencies") == {"payload": True}
    assert ask(path, "check_background_job", job_id=job_id)["payload"]["is_complete"] is True
    assert sandbox.installed()["myapp"] == "1.2.3-1"

    removed = ask(path, "manage_dependencies", install=False)["payload"]
    assert poll_until_complete(path, removed["job_id"])["state"] == "succeeded"
    assert ask(path, "dependency_status")["payload"]["missing"] == ["myapp", "tool-a"]


def test_failing_install_shows_opkgs_error_text(sock_dir, serve, daemon):
    module = serve(dependency_module(sock_dir, daemon, ["failpkg"]))
    job_id = ask(module.socket_path, "manage_dependencies", install=True)["payload"]["job_id"]
    final = poll_until_complete(module.socket_path, job_id)
    assert final["state"] == "failed" and final["error_code"] == "script_failed"
    assert 'package "failpkg" postinst script returned status 3' in final["job_error"]
    assert ask(module.socket_path, "dependency_status")["payload"]["missing"] == ["failpkg"]


def test_unknown_job_is_complete_with_an_error(sock_dir, serve, daemon):
    module = serve(dependency_module(sock_dir, daemon, ["myapp"]))
    answer = ask(module.socket_path, "poll_job", job_id="no-such-job", remove_if_complete=True)["payload"]
    assert answer["is_complete"] is True and answer["result"] is None
    assert answer["error_code"] == "unknown_job" and "does not know job no-such-job" in answer["job_error"]


def test_removed_job_is_complete_with_an_error(sock_dir, serve, daemon):
    module = serve(dependency_module(sock_dir, daemon, ["tool-b"]))
    path = module.socket_path
    job_id = ask(path, "manage_dependencies")["payload"]["job_id"]  # install defaults to true
    poll_until_complete(path, job_id)
    final = ask(path, "poll_job", job_id=job_id, remove_if_complete=True)["payload"]
    assert final["is_complete"] and final["job_error"] is None
    again = ask(path, "poll_job", job_id=job_id)["payload"]  # a second poller: the job is gone
    assert again["is_complete"] is True and again["error_code"] == "unknown_job"
    assert ask(path, "rebind_last_job") == {"payload": None}


def test_rebind_after_module_restart(start_daemon, start_module, sock_dir):
    daemon = start_daemon(env=SLOW)
    env = {"PINEAPPLE_JOBD_SOCKET": str(daemon.socket), "PACKETSNOOP_DEPENDENCIES": "myapp"}
    first = start_module("packetsnoop", env)
    assert ask(first.socket, "rebind_last_job") == {"payload": None}
    job_id = ask(first.socket, "manage_dependencies", install=True)["payload"]["job_id"]
    assert first.stop() == 0  # module restarts while the install runs
    second = start_module("packetsnoop", env)
    rebound = ask(second.socket, "rebind_last_job")["payload"]
    assert rebound["job_id"] == job_id and rebound["is_complete"] is False
    final = poll_until_complete(second.socket, job_id, timeout=30)
    assert final["state"] == "succeeded"
    assert ask(second.socket, "rebind_last_job")["payload"]["job_id"] == job_id  # finished, still known
    assert (sock_dir / "packetsnoop.last_job").exists()


def test_rebind_forgets_a_job_the_daemon_lost(sock_dir, serve, start_daemon):
    daemon = start_daemon()
    module = serve(dependency_module(sock_dir, daemon, ["tool-c"]))
    (sock_dir / "deps.last_job").write_text('{"job_id": "lost-in-a-crash"}')
    assert ask(module.socket_path, "rebind_last_job") == {"payload": None}
    assert not (sock_dir / "deps.last_job").exists()


def test_daemon_errors_become_clear_error_answers(sock_dir, serve, daemon):
    gone = Module("gone", socket_dir=str(sock_dir), jobd_socket=str(sock_dir / "nothing.sock"),
                  dependencies=["myapp"])
    gone.enable_dependency_actions()
    serve(gone)
    for action in ("check_dependencies", "manage_dependencies", "poll_job"):
        error = ask(gone.socket_path, action, job_id="x")["error"]
        assert "pineapple-jobd is not running or not reachable" in error, (action, error)
    assert ask(gone.socket_path, "rebind_last_job") == {"payload": None}  # no last job: no daemon needed

    module = serve(dependency_module(sock_dir, daemon, ["myapp"]))
    path = module.socket_path
    assert "'install' must be true" in ask(path, "manage_dependencies", install="yes")["error"]
    assert "'remove_if_complete' must be" in ask(path, "poll_job", job_id="x", remove_if_complete=1)["error"]
    assert "needs a 'job_id'" in ask(path, "poll_job")["error"]

    empty = Module("empty", socket_dir=str(sock_dir), jobd_socket=str(daemon.socket))
    empty.enable_dependency_actions()
    assert empty.call("dependency_status")["payload"]["all_installed"] is True
    assert empty.call("check_dependencies") == {"payload": True}
    assert "declares no dependencies" in empty.call("manage_dependencies")["error"]


def test_invalid_package_refused_by_the_daemon(sock_dir, daemon):
    module = Module("inv", socket_dir=str(sock_dir), jobd_socket=str(daemon.socket), dependencies=["myapp"])
    module.enable_dependency_actions()
    # Sneak a name past DependencySet (as a buggy module might): the daemon's refusal is shown.
    module.dependencies._names = ("myapp", "-rf")
    error = module.call("manage_dependencies")["error"]
    assert "pineapple-jobd refused the request" in error and "invalid package name" in error


def test_python_api(sock_dir, daemon):
    module = Module("py", socket_dir=str(sock_dir), jobd_socket=str(daemon.socket), dependencies=["otherapp"])
    manager = module.dependency_manager
    assert manager.all_installed() is False
    job_id = manager.install()["job_id"]
    assert manager.last_job_id() == job_id
    final = wait_for(lambda: value_if(manager.poll(job_id), lambda s: s["is_complete"]), timeout=30, interval=0.2,
                     what="install")
    assert final["state"] == "succeeded" and manager.all_installed() is True
    assert manager.rebind()["state"] == "succeeded"
