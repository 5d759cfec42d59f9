"""Job hooks requested over the socket: ``on_success`` / ``on_failure``.

Over the socket a hook can only be something safe:

- ``{"notify": "mqtt", "message": "text"}``: a notification published on
  ``<prefix>/notifications`` (MQTT must be enabled);
- ``{"command": "NAME"}``: a command from the allow-list in the daemon
  config, never a command line sent by a client::

      config hook 'restart_snoop'
          list argv '/etc/init.d/packetsnoop'
          list argv 'restart'
          option timeout '30'

  It runs without a shell, with ``PINEAPPLE_JOB_ID``, ``PINEAPPLE_JOB_TYPE``,
  ``PINEAPPLE_JOB_STATE``, ``PINEAPPLE_JOB_ERROR_CODE`` and
  ``PINEAPPLE_JOB_PACKAGES`` in its environment.

A failing hook is written to the job's log and never changes its outcome.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

from ..errors import UNKNOWN_HOOK, JobError

DEFAULT_TIMEOUT = 30.0
_OUTPUT_LINES = 5


class HookCommand:
    """An allow-listed command (a ``config hook`` section)."""

    def __init__(self, name: str, argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        if not name or not argv:
            raise ValueError(f"config hook '{name}': needs a name and at least one 'list argv'")
        self.name, self.argv, self.timeout = name, argv, timeout


def commands_from_config(sections: list[Any]) -> dict[str, HookCommand]:
    """The ``config hook 'NAME'`` sections of the daemon config."""
    commands = {}
    for section in sections:
        if section.type != "hook":
            continue
        argv = section.options.get("argv") or []
        argv = argv if isinstance(argv, list) else [argv]
        commands[section.name] = HookCommand(section.name or "", list(argv), _timeout(section))
    return commands


def _timeout(section: Any) -> float:
    value = section.options.get("timeout") or DEFAULT_TIMEOUT
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        timeout = -1.0
    if timeout <= 0:
        raise ValueError(f"config hook '{section.name}': timeout {value!r} is not a positive number of seconds")
    return timeout


class HookFactory:
    """Turns hook specs into callables for one daemon."""

    def __init__(self, commands: dict[str, HookCommand], notifier: Callable[[], Any]) -> None:
        self.commands = commands
        self._notifier = notifier  # the MQTT bridge, or None when MQTT is off

    def check(self, hooks: dict[str, list[dict]]) -> None:
        """Refuse commands that are not on the allow-list (before the job runs)."""
        for specs in hooks.values():
            for spec in specs:
                if "command" in spec and spec["command"] not in self.commands:
                    known = ", ".join(sorted(self.commands)) or "none configured"
                    raise JobError(f"no hook command {spec['command']!r} (allowed: {known})", UNKNOWN_HOOK)

    def attach(self, job: Any, hooks: dict[str, list[dict]]) -> None:
        """Give ``job`` its hooks (and remember the specs in its record)."""
        self.check(hooks)
        job.hook_specs = hooks or None
        job.on_success = [self._build(spec) for spec in hooks.get("on_success", ())]
        job.on_failure = [self._build(spec) for spec in hooks.get("on_failure", ())]

    def _build(self, spec: dict) -> Callable[[Any], None]:
        if "command" in spec:
            command = self.commands[spec["command"]]
            return _named(lambda job: _run_command(command, job), f"command {command.name}")
        message = spec.get("message", "")
        return _named(lambda job: self._notify(job, message), "notify mqtt")

    def _notify(self, job: Any, message: str) -> None:
        bridge = self._notifier()
        if bridge is None:
            raise RuntimeError("MQTT is not enabled (mqtt.enabled)")
        bridge.notify(final_summary(job), message)
        job.add_log_line(f"hook: MQTT notification sent: {message}")


def final_summary(job: Any) -> dict:
    """The summary the job will have once complete: hooks run after its
    outcome is decided but before it is marked complete (docs/protocol.md)."""
    summary = job.summary()
    if job.outcome is not None:
        summary.update(state=job.outcome, is_complete=True)
    return summary


def _named(fn: Callable[[Any], None], name: str) -> Callable[[Any], None]:
    fn.__name__ = name
    return fn


def _run_command(command: HookCommand, job: Any) -> None:
    env = {**os.environ, "PINEAPPLE_JOB_ID": job.id or "", "PINEAPPLE_JOB_TYPE": job.type,
           "PINEAPPLE_JOB_STATE": job.outcome or job.state, "PINEAPPLE_JOB_ERROR_CODE": job.error_code or "",
           "PINEAPPLE_JOB_PACKAGES": " ".join(job.params().get("packages") or ())}
    try:
        done = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=command.timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{command.argv[0]}: {exc}") from None
    for line in (done.stdout + done.stderr).splitlines()[-_OUTPUT_LINES:]:
        job.add_log_line(f"hook {command.name}: {line}")
    if done.returncode != 0:
        raise RuntimeError(f"exited with status {done.returncode}")
    job.add_log_line(f"hook {command.name}: done")
