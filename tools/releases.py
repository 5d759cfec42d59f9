"""What OpenWrt's release feeds offer to this feed's packages (facts).

Read from openwrt/packages' release branches (lang/python/python3-version.mk,
lang/python/python3/Makefile and files/python3-package-*.mk,
lang/python/python-paho-mqtt/Makefile): the Python each release ships, which
standard-library sub-packages exist beside python3-light, what they declare
as dependencies, and the release's own python3-paho-mqtt. Keyed by the
target Python X.Y that ``make ipk --python-version`` takes.
"""
from __future__ import annotations

from typing import NamedTuple


class Release(NamedTuple):
    name: str                                   # "OpenWrt 19.07"
    python: str                                 # the python3 packages' version, e.g. "3.7.17-1"
    paho: str                                   # python3-paho-mqtt's Version field
    depends: dict[str, tuple[str, ...]]         # package -> declared DEPENDS (python3 packages only)


_COMMON = {
    "python3-logging": ("python3-light",),
    "python3-email": ("python3-light",),
    "python3-urllib": ("python3-light", "python3-email"),
    "python3-asyncio": ("python3-light",),
}
_WITH_UUID = dict(_COMMON, **{"python3-uuid": ("python3-light",)})  # split out of python3-light in 22.03

RELEASES: dict[str, Release] = {
    "3.7": Release("OpenWrt 19.07", "3.7.17-1", "1.5.1-1",
                   dict(_COMMON, **{"python3-paho-mqtt": ("python3-light",)})),
    "3.9": Release("OpenWrt 21.02", "3.9.18-1", "1.5.1-1",
                   dict(_COMMON, **{"python3-paho-mqtt": ("python3-light",)})),
    "3.10": Release("OpenWrt 22.03", "3.10.13-2", "1.6.1-2",
                    dict(_WITH_UUID, **{"python3-paho-mqtt": ("python3-light", "python3-uuid")})),
    "3.11": Release("OpenWrt 23.05/24.10", "3.11.7-1", "1.6.1-2",
                    dict(_WITH_UUID, **{"python3-paho-mqtt": ("python3-light", "python3-uuid")})),
}

# Standard-library sub-package -> what it holds under lib/pythonX.Y/.
SUBPACKAGE_FILES: dict[str, tuple[str, ...]] = {
    "python3-logging": ("logging",),
    "python3-email": ("email",),
    "python3-urllib": ("urllib",),
    "python3-asyncio": ("asyncio",),
    "python3-uuid": ("uuid.py",),  # and lib-dynload/_uuid*.so (native, not estimated)
}
# Packages every device with Python 3 has; not part of the footprint of ours.
BASE = ("libc", "python3-light")


def release_for(python_version: str) -> Release:
    """The release shipping Python ``python_version`` (ValueError otherwise)."""
    try:
        return RELEASES[python_version]
    except KeyError:
        known = ", ".join(f"{version} ({release.name})" for version, release in RELEASES.items())
        raise ValueError(f"no OpenWrt release with opkg ships Python {python_version} (known: {known})") from None
