#!/usr/bin/env python3
"""netinfo: network interfaces, routes and wireless devices, as JSON.

A module without a page: other modules' pages (or curl through the
gateway) call its actions. ``interfaces`` and ``routes`` read /sys and
/proc, so they work without any package; ``wireless`` needs ``iw``, which
the module declares as a dependency (installable with the ready-made
``manage_dependencies`` action).

Run it:     python3 modules/netinfo/module.py
Settings (environment): NETINFO_DEPENDENCIES (instead of "iw"), NETINFO_IW
(the iw executable), PINEAPPLE_MODULE_SOCKET_DIR, PINEAPPLE_JOBD_SOCKET.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable
from typing import Any

from pineapple.modules import DependencySet, Module, Request

NAME = "netinfo"
DEFAULT_DEPENDENCIES = ["iw"]
SYS_CLASS_NET = "/sys/class/net"
PROC_ROUTE = "/proc/net/route"
IW_TIMEOUT = 5.0


def read_interfaces(sys_class_net: str = SYS_CLASS_NET) -> list[dict[str, Any]]:
    """Every interface with its MAC address, state, MTU and byte counters."""
    interfaces = []
    for name in sorted(os.listdir(sys_class_net)):
        base = os.path.join(sys_class_net, name)
        interfaces.append({
            "name": name,
            "mac": _read(base, "address"),
            "state": _read(base, "operstate"),
            "mtu": _read_int(base, "mtu"),
            "rx_bytes": _read_int(base, "statistics/rx_bytes"),
            "tx_bytes": _read_int(base, "statistics/tx_bytes"),
            "wireless": os.path.isdir(os.path.join(base, "wireless")),
        })
    return interfaces


def read_routes(proc_route: str = PROC_ROUTE) -> list[dict[str, Any]]:
    """The IPv4 routing table (/proc/net/route: hex, little-endian addresses)."""
    with open(proc_route) as handle:
        lines = handle.read().splitlines()[1:]
    routes = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        routes.append({
            "interface": fields[0],
            "destination": _hex_ip(fields[1]),
            "gateway": _hex_ip(fields[2]),
            "netmask": _hex_ip(fields[7]),
            "metric": int(fields[6]),
            "default": fields[1] == "00000000",
        })
    return routes


def parse_iw_dev(text: str) -> list[dict[str, Any]]:
    """``iw dev`` output -> [{"interface", "type", "ssid", "channel", ...}]."""
    devices: list[dict[str, Any]] = []
    for raw in text.splitlines():
        line = raw.strip()
        key, _, value = line.partition(" ")
        if key == "Interface":
            devices.append({"interface": value})
        elif devices and key in ("type", "ssid", "addr", "txpower"):
            devices[-1][key] = value
        elif devices and key == "channel":
            devices[-1]["channel"] = int(value.split()[0]) if value.split()[0].isdigit() else value
    return devices


def build_module(dependencies: Iterable[str] | None = None, iw: str | None = None, **options: Any) -> Module:
    """The netinfo module; ``options`` go to :class:`Module` (socket_dir, ...)."""
    if dependencies is None:
        dependencies = DependencySet.from_env("NETINFO_DEPENDENCIES", DEFAULT_DEPENDENCIES)
    module = Module(NAME, logging.INFO, dependencies=dependencies, **options)
    module.enable_dependency_actions()
    iw_command = iw or os.environ.get("NETINFO_IW") or "iw"

    @module.handles_action("interfaces")
    def interfaces(request: Request) -> list[dict[str, Any]]:
        return read_interfaces()

    @module.handles_action("routes")
    def routes(request: Request) -> list[dict[str, Any]]:
        return read_routes()

    @module.handles_action("wireless")
    def wireless(request: Request) -> tuple[Any, bool]:
        executable = shutil.which(iw_command)
        if executable is None:
            return f"{iw_command} is not installed: install the module's dependencies first", False
        try:
            run = subprocess.run([executable, "dev"], capture_output=True, text=True, timeout=IW_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"iw dev did not finish within {IW_TIMEOUT:g}s", False
        if run.returncode != 0:
            return f"iw dev failed (exit {run.returncode}): {run.stderr.strip()}", False
        return parse_iw_dev(run.stdout), True

    return module


def _read(base: str, name: str) -> str | None:
    try:
        with open(os.path.join(base, name)) as handle:
            return handle.read().strip()
    except OSError:  # some attributes are unreadable for some interface types
        return None


def _read_int(base: str, name: str) -> int | None:
    value = _read(base, name)
    return int(value) if value and value.isdigit() else None


def _hex_ip(value: str) -> str:
    return socket.inet_ntoa(struct.pack("<I", int(value, 16)))


if __name__ == "__main__":
    build_module().start()
