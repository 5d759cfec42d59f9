"""SIGHUP: re-read the configuration and apply it while jobs keep running.

What changes live (every change is logged, ``reload: daemon.workers 2 -> 4``):

- ``daemon``: ``workers`` (a smaller pool lets running jobs finish),
  ``retention``/``max_finished`` (prune at once), ``max_queued``,
  ``max_connections``, ``idle_timeout``, ``socket_group``/``allowed_uids``/
  ``allowed_gids`` (the socket file's group changes; open connections stay),
  ``log_level``, ``shutdown_grace``, ``job_timeout`` and
  ``journal_max_bytes`` (for jobs submitted from now on where it matters);
- ``opkg``: every option, for jobs submitted from now on (running jobs keep
  the settings they started with);
- ``mqtt``: any change reconnects (the bridge stops and a new one starts,
  or none when ``enabled`` is now off);
- ``config schedule`` and ``config hook`` sections; schedules without a
  ``timezone`` follow a changed device zone (``/etc/TZ``).

What needs a restart: ``daemon.socket`` and ``daemon.state_dir``. A reload
keeps the running value and logs a warning naming the option; a bad value
anywhere (the same checks as at start) keeps the whole running configuration
and logs the error. A reload never stops a job.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .config import SECTIONS, Config, ConfigError

log = logging.getLogger("pineapple.daemon")

RESTART_ONLY = ("daemon.socket", "daemon.state_dir")
_ACCESS = ("socket_group", "allowed_uids", "allowed_gids", "max_connections", "idle_timeout")
_JOB_TYPES = ("job_timeout",)  # daemon options the job types are built with


def changed_options(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """``"section.option"`` -> (old value, new value) for every option that differs."""
    changes = {}
    for section, (attribute, _cls) in SECTIONS.items():
        before, after = getattr(old, attribute).to_dict(), getattr(new, attribute).to_dict()
        for name, value in after.items():
            if before.get(name) != value:
                changes[f"{section}.{name}"] = (before.get(name), value)
    return changes


def _sections(config: Config) -> list[tuple]:
    return [(s.type, s.name, s.options) for s in config.extra_sections]


def reload_daemon(daemon: Any, load: Callable[[], Config]) -> bool:
    """Read the configuration with ``load`` and apply it to ``daemon``;
    False (and the running configuration kept) when it is refused."""
    try:
        new = load()
    except ConfigError as exc:
        log.error("reload: configuration error: %s; keeping the running configuration", exc)
        return False
    old = daemon.config
    changes = changed_options(old, new)
    for key in RESTART_ONLY:
        if key in changes:
            before, after = changes.pop(key)
            log.warning("reload: %s changed (%r -> %r): takes effect after a restart "
                        "(/etc/init.d/pineapple-jobd restart); still using %r", key, before, after, before)
            section, option = key.split(".")
            setattr(getattr(new, section), option, before)
    sections_changed = _sections(old) != _sections(new)
    try:
        _apply(daemon, old, new, changes, sections_changed)
    except (ValueError, OSError) as exc:  # ScheduleConfigError, a bad hook, an unknown socket group
        daemon.config = old
        log.error("reload: %s; keeping the running configuration", exc)
        return False
    for key, (before, after) in changes.items():
        shown = ("***", "***") if key == "mqtt.password" else (before, after)
        log.info("reload: %s %r -> %r", key, *shown)
    if sections_changed:
        log.info("reload: schedule and hook sections re-read")
    if not changes and not sections_changed:
        log.info("reload: configuration unchanged")
    return True


def _apply(daemon: Any, old: Config, new: Config, changes: dict, sections_changed: bool) -> None:
    """Check what can fail first (hooks, the socket group, schedules), then
    switch everything else over."""
    from .hooks import HookFactory, commands_from_config

    touched = {key.split(".")[0] for key in changes}
    hooks = HookFactory(commands_from_config(new.extra_sections), lambda: daemon.mqtt) if sections_changed else None
    access = any(f"daemon.{name}" in changes for name in _ACCESS)
    if access:
        _configure_server(daemon, new)
    daemon.config = new  # the registry and the scheduler build from daemon.config
    if "opkg" in touched or any(f"daemon.{name}" in changes for name in _JOB_TYPES):
        daemon.reset_job_types()
    try:
        daemon.reload_schedules()
    except ValueError:
        if access:
            _configure_server(daemon, old)
        raise
    if hooks is not None:
        daemon.set_hooks(hooks)
    d = new.daemon
    if "daemon.log_level" in changes:
        level = d.log_level.upper()
        logging.getLogger("pineapple").setLevel(level)
        daemon.manager.logger.setLevel(level)
    daemon.manager.set_limits(workers=d.workers, retention=d.retention, max_finished=d.max_finished,
                              max_queued=d.max_queued, stop_grace=min(10.0, d.shutdown_grace),
                              journal_max_bytes=d.journal_max_bytes)
    if "mqtt" in touched:
        daemon.restart_mqtt()


def _configure_server(daemon: Any, config: Config) -> None:
    from ..api.server import ServerError

    d = config.daemon
    try:
        daemon.server.configure(group=d.socket_group, allowed_uids={int(u) for u in d.allowed_uids},
                                allowed_gids={int(g) for g in d.allowed_gids},
                                max_connections=d.max_connections, idle_timeout=d.idle_timeout)
    except ServerError as exc:
        raise ValueError(f"{config.origin('daemon.socket_group')}: {exc}") from None
