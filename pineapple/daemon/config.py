"""Daemon configuration: defaults < UCI file < environment < command line.

Every option is declared once below (name, type, default, one-line
description) in its settings class's ``OPTIONS``; docs/config.md and
openwrt/files/pineapple-jobd.config list the same options (a test keeps them
in step). The classes are plain classes, not dataclasses: ``dataclasses``
pulls in ``inspect`` and costs the daemon ~1 MB of RSS for nothing.

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
from typing import Any, NamedTuple

from ..uci import JOBD_CONFIG_PATH, Section, UciError, load_uci

DEFAULT_CONFIG_PATH = JOBD_CONFIG_PATH
ENV_PREFIX = "PINEAPPLE_JOBD_"


class ConfigError(ValueError):
    """A bad configuration value; the message names the option and source."""


class Option(NamedTuple):
    """One option: ``kind`` is ``str``, ``int``, ``float``, ``bool`` or ``list``;
    ``minimum``/``maximum`` bound a number (checked after every source)."""

    name: str
    kind: type
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None


class Settings:
    """Base of the settings classes: one attribute per entry of ``OPTIONS``."""

    OPTIONS: tuple[Option, ...] = ()

    def __init__(self, **values: Any) -> None:
        for option in self.OPTIONS:
            setattr(self, option.name, list(option.default) if option.kind is list else option.default)
        names = self.option_names()
        for name, value in values.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__} has no option {name!r}")
            setattr(self, name, value)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(option.name for option in cls.OPTIONS)

    @classmethod
    def option(cls, name: str) -> Option | None:
        for option in cls.OPTIONS:
            if option.name == name:
                return option
        return None

    def to_dict(self) -> dict[str, Any]:
        """Option name -> current value, in declaration order."""
        return {option.name: getattr(self, option.name) for option in self.OPTIONS}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value!r}" for name, value in self.to_dict().items())
        return f"{type(self).__name__}({values})"


class DaemonSettings(Settings):
    OPTIONS = (
        Option("socket", str, "/var/run/pineapple-jobd.sock", "Unix socket path of the API"),
        Option("socket_group", str, "", "group owning the socket (mode 0660); empty: the daemon's group"),
        Option("allowed_uids", list, [], "extra uids allowed to connect (root and the daemon's own uid always are)"),
        Option("allowed_gids", list, [], "extra gids allowed to connect (the socket group always is)"),
        Option("state_dir", str, "/var/run/pineapple-jobd", "journal and schedules; keep it on RAM (tmpfs) on devices"),
        Option("workers", int, 2, "threads for jobs without a resource (opkg jobs get their own)", 1),
        Option("log_level", str, "info", "debug, info, warning or error (logs go to stderr)"),
        Option("retention", float, 600.0, "seconds a finished job is kept", 0),
        Option("max_finished", int, 50, "finished jobs kept at most (oldest dropped first)", 1),
        Option("max_queued", int, 200, "jobs waiting to start at most (then queue_full)", 1),
        Option("max_connections", int, 64, "simultaneous API connections", 1),
        Option("idle_timeout", float, 120.0, "seconds before an idle API connection is closed", 0.1),
        Option("shutdown_grace", float, 30.0,
               "seconds running jobs get to finish on SIGTERM before they are cancelled", 0),
        Option("job_timeout", float, 1800.0, "default per-job timeout in seconds (0: none)", 0),
        Option("journal_max_bytes", int, 262144, "journal size that triggers compaction", 4096),
    )


class OpkgSettings(Settings):
    OPTIONS = (
        Option("binary", str, "opkg", "opkg executable (name on PATH or absolute path)"),
        Option("offline_root", str, "", "opkg -o: operate on this root instead of / (empty: live system)"),
        Option("conf", str, "", "opkg -f: configuration file (empty: opkg's default)"),
        Option("dest", str, "", "default destination (-d), e.g. sd; empty: opkg's default"),
        Option("extra_args", list, [], "extra arguments always passed to opkg (list)"),
        Option("lists_max_age", float, 86400.0,
               "package lists older than this (seconds) are updated before an install", 0),
        Option("lock_wait", float, 120.0, "seconds to keep retrying while another process holds opkg's lock", 0),
        Option("timeout", float, 900.0, "seconds one opkg run may take before it is stopped", 1),
        Option("env_path", str, "", "PATH for opkg runs (empty: the daemon's PATH)"),
    )


class MqttSettings(Settings):
    OPTIONS = (
        Option("enabled", bool, False, "publish job events to an MQTT broker"),
        Option("host", str, "127.0.0.1", "broker host"),
        Option("port", int, 1883, "broker port", 1, 65535),
        Option("device_id", str, "", "this device's id in topics (empty: the hostname)"),
        Option("client_id", str, "", "MQTT client id (empty: pineapple-jobd-<device_id>)"),
        Option("username", str, "", "broker user name (empty: anonymous)"),
        Option("password", str, "", "broker password"),
        Option("ca_file", str, "", "CA certificate file; set to use TLS"),
        Option("cert_file", str, "", "client certificate (PEM) presented to the broker; set to use TLS"),
        Option("key_file", str, "", "private key of cert_file (empty: in cert_file)"),
        Option("keepalive", int, 60, "MQTT keepalive in seconds", 1, 65535),
        Option("topic_prefix", str, "", "topic prefix (empty: pineapple/<device_id>)"),
        Option("commands", bool, False, "accept submit/cancel commands and roll-outs from the broker"),
        Option("command_key", str, "",
               "shared secret (16+ characters): only HMAC-SHA256 signed commands and roll-outs are taken"),
        Option("command_max_age", float, 300.0,
               "seconds a signed command stays valid either side of its timestamp (clock skew)", 1, 86400),
        Option("buffer", int, 1000,
               "messages kept while the broker is unreachable (latest job states are always kept)", 0),
    )


SECTIONS: dict[str, tuple[str, type[Settings]]] = {
    # UCI section type -> (attribute on Config, settings class)
    "daemon": ("daemon", DaemonSettings),
    "opkg": ("opkg", OpkgSettings),
    "mqtt": ("mqtt", MqttSettings),
}


class Config:
    """The whole configuration: one settings object per section."""

    def __init__(self, daemon: DaemonSettings | None = None, opkg: OpkgSettings | None = None,
                 mqtt: MqttSettings | None = None, extra_sections: list[Section] | None = None,
                 source: str = "defaults") -> None:
        self.daemon = daemon if daemon is not None else DaemonSettings()
        self.opkg = opkg if opkg is not None else OpkgSettings()
        self.mqtt = mqtt if mqtt is not None else MqttSettings()
        self.extra_sections: list[Section] = list(extra_sections or [])  # e.g. schedules, hooks
        self.source = source
        self._origins: dict[str, tuple[str, list[str] | None]] = {}

    def set(self, section: str, option: str, value: Any, source: str,
            item_sources: list[str] | None = None) -> None:
        """Set one option from a string (or list) value, converting its type.
        ``source`` says where the value came from (``/etc/config/x:12``,
        ``environment VAR``, ``command line``); ``item_sources`` the same for
        each item of a list."""
        settings = self._settings(section, source)
        spec = settings.option(option)
        if spec is None:
            raise ConfigError(f"{source}: unknown option {section}.{option}")
        setattr(settings, option, _convert(value, spec.kind, f"{source}: {section}.{option}"))
        self._origins[f"{section}.{option}"] = (source, item_sources)

    def origin(self, key: str, index: int | None = None) -> str:
        """Where ``"section.option"`` (list item ``index``) was set: a file
        and line, an environment variable, ``command line`` or ``default``."""
        source, items = self._origins.get(key, ("default", None))
        if index is not None and items and 0 <= index < len(items):
            return items[index]
        return source

    def _settings(self, section: str, source: str) -> Settings:
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
        return getattr(self, SECTIONS[section][0])

    def __repr__(self) -> str:
        return (f"Config(daemon={self.daemon!r}, opkg={self.opkg!r}, mqtt={self.mqtt!r}, "
                f"extra_sections={self.extra_sections!r}, source={self.source!r})")


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
                items = ([_where(path, section.where(option, index)) for index in range(len(value))]
                         if isinstance(value, list) else None)
                config.set(section.type, option, value, _where(path, section.where(option)), items)
        else:
            config.extra_sections.append(section)


def _where(path: str, line: int | None) -> str:
    return path if line is None else f"{path}:{line}"


def _apply_env(config: Config, env: Mapping[str, str]) -> None:
    for section, (_attr, cls) in SECTIONS.items():
        prefix = ENV_PREFIX if section == "daemon" else f"{ENV_PREFIX}{section.upper()}_"
        for name in cls.option_names():
            variable = prefix + name.upper()
            if variable in env:
                config.set(section, name, env[variable], f"environment {variable}")


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
    """Ranges and allowed values; every message starts with where the value
    came from (``/etc/config/pineapple-jobd:14: daemon.workers ...``)."""
    for section, (attribute, cls) in SECTIONS.items():
        settings = getattr(config, attribute)
        for option in cls.OPTIONS:
            _check_range(config, section, option, getattr(settings, option.name))
    d = config.daemon
    if d.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{config.origin('daemon.log_level')}: daemon.log_level: {d.log_level!r} "
                          "is not debug, info, warning or error")
    if not d.socket:
        raise ConfigError(f"{config.origin('daemon.socket')}: daemon.socket must not be empty")
    for name in ("allowed_uids", "allowed_gids"):
        for index, value in enumerate(getattr(d, name)):
            if not value.isdigit():
                raise ConfigError(f"{config.origin(f'daemon.{name}', index)}: daemon.{name}: "
                                  f"{value!r} is not a number")
    _validate_mqtt(config)


def _validate_mqtt(config: Config) -> None:
    m = config.mqtt
    if m.key_file and not m.cert_file:
        raise ConfigError(f"{config.origin('mqtt.key_file')}: mqtt.key_file needs mqtt.cert_file")
    if m.command_key and len(m.command_key) < 16:
        raise ConfigError(f"{config.origin('mqtt.command_key')}: mqtt.command_key must be at least 16 "
                          "characters (a long random secret, shared with the fleet operator)")


def _check_range(config: Config, section: str, option: Option, value: Any) -> None:
    if option.kind not in (int, float) or isinstance(value, bool):
        return
    key = f"{section}.{option.name}"
    if value != value:  # NaN: float("nan") converts without complaint
        raise ConfigError(f"{config.origin(key)}: {key}: {value!r} is not a number")
    if option.minimum is not None and value < option.minimum:
        raise ConfigError(f"{config.origin(key)}: {key} must be at least {option.minimum:g}, got {value:g}")
    if option.maximum is not None and value > option.maximum:
        raise ConfigError(f"{config.origin(key)}: {key} must be at most {option.maximum:g}, got {value:g}")
