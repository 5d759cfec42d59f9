"""Daemon configuration: defaults < UCI file < environment < command line.

Every option lives in one of the dataclasses below with its default and a
one-line description; docs/config.md and openwrt/files/pineapple-jobd.config
list the same options (a test keeps them in step).

UCI layout (``/etc/config/pineapple-jobd``)::

    config daemon 'main'    -> DaemonSettings
    config opkg 'opkg'      -> OpkgSettings
    config mqtt 'mqtt'      -> MqttSettings

Environment: ``PINEAPPLE_JOBD_<OPTION>`` for the daemon section and
``PINEAPPLE_JOBD_<SECTION>_<OPTION>`` for the others (e.g.
``PINEAPPLE_JOBD_SOCKET``, ``PINEAPPLE_JOBD_OPKG_BINARY``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .uci import Section, UciError, load_uci

DEFAULT_CONFIG_PATH = "/etc/config/pineapple-jobd"
ENV_PREFIX = "PINEAPPLE_JOBD_"


class ConfigError(ValueError):
    """A bad configuration value; the message names the option and source."""


def _opt(default: Any, doc: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class DaemonSettings:
    socket: str = _opt("/var/run/pineapple-jobd.sock", "Unix socket path of the API")
    socket_group: str = _opt("", "group owning the socket (mode 0660); empty: the daemon's group")
    allowed_uids: list = _opt([], "extra uids allowed to connect (root and the daemon's own uid always are)")
    allowed_gids: list = _opt([], "extra gids allowed to connect (the socket group always is)")
    state_dir: str = _opt("/var/run/pineapple-jobd", "journal and schedules; keep it on RAM (tmpfs) on devices")
    workers: int = _opt(2, "worker threads running jobs")
    log_level: str = _opt("info", "debug, info, warning or error (logs go to stderr)")
    retention: float = _opt(600.0, "seconds a finished job is kept")
    max_finished: int = _opt(50, "finished jobs kept at most (oldest dropped first)")
    max_queued: int = _opt(200, "jobs waiting to start at most (then queue_full)")
    max_connections: int = _opt(64, "simultaneous API connections")
    idle_timeout: float = _opt(120.0, "seconds before an idle API connection is closed")
    shutdown_grace: float = _opt(30.0, "seconds running jobs get to finish on SIGTERM before they are cancelled")
    job_timeout: float = _opt(1800.0, "default per-job timeout in seconds (0: none)")
    journal_max_bytes: int = _opt(262144, "journal size that triggers compaction")


@dataclass
class OpkgSettings:
    binary: str = _opt("opkg", "opkg executable (name on PATH or absolute path)")
    offline_root: str = _opt("", "opkg -o: operate on this root instead of / (empty: live system)")
    conf: str = _opt("", "opkg -f: configuration file (empty: opkg's default)")
    dest: str = _opt("", "default destination (-d), e.g. sd; empty: opkg's default")
    extra_args: list = _opt([], "extra arguments always passed to opkg (list)")
    lists_max_age: float = _opt(86400.0, "package lists older than this (seconds) are updated before an install")
    lock_wait: float = _opt(120.0, "seconds to keep retrying while another process holds opkg's lock")
    timeout: float = _opt(900.0, "seconds one opkg run may take before it is stopped")
    env_path: str = _opt("", "PATH for opkg runs (empty: the daemon's PATH)")


@dataclass
class MqttSettings:
    enabled: bool = _opt(False, "publish job events to an MQTT broker")
    host: str = _opt("127.0.0.1", "broker host")
    port: int = _opt(1883, "broker port")
    device_id: str = _opt("", "this device's id in topics (empty: the hostname)")
    client_id: str = _opt("", "MQTT client id (empty: pineapple-jobd-<device_id>)")
    username: str = _opt("", "broker user name (empty: anonymous)")
    password: str = _opt("", "broker password")
    ca_file: str = _opt("", "CA certificate file; set to use TLS")
    keepalive: int = _opt(60, "MQTT keepalive in seconds")
    topic_prefix: str = _opt("", "topic prefix (empty: pineapple/<device_id>)")
    commands: bool = _opt(False, "accept submit/cancel commands from the broker")
    buffer: int = _opt(1000, "messages kept while the broker is unreachable (latest job states are always kept)")


SECTIONS: dict[str, tuple[str, type]] = {
    # UCI section type -> (attribute on Config, settings class)
    "daemon": ("daemon", DaemonSettings),
    "opkg": ("opkg", OpkgSettings),
    "mqtt": ("mqtt", MqttSettings),
}


@dataclass
class Config:
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    opkg: OpkgSettings = field(default_factory=OpkgSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    extra_sections: list[Section] = field(default_factory=list)  # e.g. schedules, hooks
    source: str = "defaults"

    def set(self, section: str, option: str, value: Any, source: str) -> None:
        """Set one option from a string (or list) value, converting its type."""
        settings = self._settings(section, source)
        spec = {f.name: f for f in fields(settings)}.get(option)
        if spec is None:
            raise ConfigError(f"{source}: unknown option {section}.{option}")
        setattr(settings, option, _convert(value, spec.type, f"{source}: {section}.{option}"))

    def _settings(self, section: str, source: str) -> Any:
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
        return getattr(self, SECTIONS[section][0])


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the configuration. ``path`` None means the default path if it
    exists; ``overrides`` maps ``"section.option"`` to values (command line)."""
    config = Config()
    _apply_file(config, path)
    _apply_env(config, os.environ if env is None else env)
    for key, value in (overrides or {}).items():
        section, _, option = key.partition(".")
        config.set(section, option, value, "command line")
    _validate(config)
    return config


def _apply_file(config: Config, path: str | None) -> None:
    if path is None:
        if not os.path.exists(DEFAULT_CONFIG_PATH):
            return
        path = DEFAULT_CONFIG_PATH
    try:
        sections = load_uci(path)
    except (OSError, UciError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    config.source = path
    for section in sections:
        if section.type in SECTIONS:
            for option, value in section.options.items():
                config.set(section.type, option, value, path)
        else:
            config.extra_sections.append(section)


def _apply_env(config: Config, env: Mapping[str, str]) -> None:
    for section, (_attr, cls) in SECTIONS.items():
        prefix = ENV_PREFIX if section == "daemon" else f"{ENV_PREFIX}{section.upper()}_"
        for spec in fields(cls):
            name = prefix + spec.name.upper()
            if name in env:
                config.set(section, spec.name, env[name], f"environment {name}")


def _convert(value: Any, kind: Any, where: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    if kind == "list":
        return _as_list(value)
    if isinstance(value, list):
        raise ConfigError(f"{where}: expected one value, got a list")
    if kind == "str":
        return str(value)
    try:
        return {"int": int, "float": float, "bool": _as_bool}[kind](str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a valid {kind}") from None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part for part in str(value).replace(",", " ").split() if part]


def _as_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "on", "true", "yes", "enabled"):
        return True
    if lowered in ("0", "off", "false", "no", "disabled", ""):
        return False
    raise ValueError(text)


def _validate(config: Config) -> None:
    d = config.daemon
    for name in ("workers", "max_finished", "max_queued", "max_connections"):
        if getattr(d, name) < 1:
            raise ConfigError(f"daemon.{name} must be at least 1, got {getattr(d, name)}")
    if d.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"daemon.log_level: {d.log_level!r} is not debug, info, warning or error")
    if not d.socket:
        raise ConfigError("daemon.socket must not be empty")
    for name in ("allowed_uids", "allowed_gids"):
        for value in getattr(d, name):
            if not value.isdigit():
                raise ConfigError(f"daemon.{name}: {value!r} is not a number")
