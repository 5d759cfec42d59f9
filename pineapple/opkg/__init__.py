"""opkg jobs for pineapple-jobd: install, uninstall, update (see docs/opkg.md).

The public names are imported on first use (PEP 562), so importing
``pineapple.opkg`` or one of its small modules (``pineapple.opkg.names``)
stays light: neither ``sh`` nor the job machinery is loaded until asked for.

    from pineapple.opkg import InstallDependenciesJob, OpkgSystem
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OpkgJob": "jobs",
    "InstallDependenciesJob": "jobs",
    "UninstallDependenciesJob": "jobs",
    "UpdatePackageListsJob": "jobs",
    "register_opkg_jobs": "jobs",
    "OpkgSystem": "system",
    "OpkgRunner": "runner",
    "HelperRunner": "helper",
    "OpkgRun": "runner",
    "RunControl": "runner",
    "RunnerSettings": "runner",
    "stop_process_group": "runner",
    "OpkgOutcome": "output",
    "validate_package_name": "names",
    "validate_package_names": "names",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
