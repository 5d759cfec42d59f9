"""Module dependencies: declare the opkg packages once, get ready-made actions.

    module = Module("packetsnoop", dependencies=["tcpdump"])
    module.enable_dependency_actions()

registers six actions a front end calls through the device's API:

``check_dependencies``
    a bare boolean: true when every declared package is installed. That is
    what Hak5's pages read (``hasDependencies = response``): a dict would
    read as "installed" in JavaScript.
``dependency_status``
    the details: ``{"dependencies": [{"name", "installed", "version"}],
    "installed": {name: version|null}, "missing": [...], "all_installed": bool}``
``manage_dependencies`` ``{"install": true|false}``
    submits an install (or uninstall) of the declared packages to
    pineapple-jobd and answers ``{"job_id", "duplicate", "state"}``. Only the
    declared packages: a page cannot make the module install anything else.
``poll_job`` ``{"job_id", "remove_if_complete"?}``
    exactly what existing Pineapple front ends read, ``{"is_complete",
    "result", "job_error"}``, plus ``state``, ``progress`` (``{"fraction",
    "message"}``) and ``error_code``. A job the daemon no longer knows
    (pruned, or lost when it crashed) answers ``is_complete: true`` with a
    ``job_error``, so a page never polls forever. ``remove_if_complete``
    defaults to false here (the finished job stays for ``rebind_last_job``
    until the daemon prunes it). While pineapple-jobd is unreachable the
    answer is an ``{"error": ...}``: the job may still be running and is
    found again once the daemon is back.
``check_background_job``
    the same as ``poll_job`` (the uninstall dialogs of Hak5's nmap, tcpdump
    and hcxdumptool pages poll this name).
``rebind_last_job``
    the last dependency job this module submitted, as ``poll_job`` would
    answer it, or ``null`` when there is none (or the daemon forgot it): a
    reloaded page, or a restarted module, finds a running install again.

The last job id is kept in ``STORAGE_DIR/NAME.last_job``. Errors from the
daemon (not running, invalid package name, ...) become ``{"error": ...}``
answers with a message a user can act on. :class:`JobClient` is imported
only when a request needs it (imports are slow on a router).
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Sequence, overload

from ..opkg.names import RULE, is_valid_package_name

if TYPE_CHECKING:
    from ..api.client import JobClient
    from .module import Module
    from .request import Request

UNKNOWN_JOB = "unknown_job"
CLIENT_TIMEOUT = 10.0


class DependencyError(Exception):
    """A dependency operation failed; the message is meant for the user."""


class DependencySet(Sequence[str]):
    """An ordered, duplicate-free list of valid opkg package names."""

    def __init__(self, packages: Iterable[str]) -> None:
        if isinstance(packages, str):
            raise TypeError("dependencies must be a list of package names, not one string")
        names: list[str] = []
        for name in packages:
            if not is_valid_package_name(name):
                raise ValueError(f"invalid dependency {name!r}: {RULE}")
            if name not in names:
                names.append(name)
        self._names = tuple(names)

    @classmethod
    def from_env(cls, variable: str, default: Iterable[str]) -> DependencySet:
        """``$VARIABLE`` (names separated by commas or spaces) if set, else
        ``default``: how the example modules let tests and developers point
        a module at other packages."""
        value = os.environ.get(variable)
        if value is None:
            return cls(default)
        return cls(name for name in re.split(r"[,\s]+", value) if name)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names[index]

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DependencySet):
            return self._names == other._names
        if isinstance(other, (list, tuple)):
            return list(self._names) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"DependencySet({list(self._names)!r})"


def lost_job(job_id: str) -> dict:
    """The poll answer for a job the daemon does not know (any more)."""
    return {
        "job_id": job_id,
        "is_complete": True,
        "result": None,
        "job_error": (f"pineapple-jobd does not know job {job_id}: it finished and was cleaned up, or was lost "
                      "when the daemon restarted. Check the dependencies again."),
        "error_code": UNKNOWN_JOB,
        "state": "unknown",
        "progress": {"fraction": None, "message": ""},
    }


class DependencyManager:
    """Check, install and follow one module's dependencies through pineapple-jobd."""

    def __init__(self, module: Module, client_factory: Callable[[], JobClient] | None = None) -> None:
        self.module = module
        self._client_factory = client_factory
        self.state_path = os.path.join(module.storage_dir, f"{module.name}.last_job")

    @property
    def packages(self) -> list[str]:
        return list(self.module.dependencies)

    # -------------------------------------------------------- Python API
    def check(self) -> dict:
        """Which declared packages are installed (raises :class:`DependencyError`)."""
        packages = self.packages
        installed = self._call(lambda c: c.installed(packages)) if packages else {}
        rows = [{"name": name, "installed": installed.get(name) is not None, "version": installed.get(name)}
                for name in packages]
        missing = [row["name"] for row in rows if not row["installed"]]
        return {"dependencies": rows, "installed": installed, "missing": missing, "all_installed": not missing}

    def all_installed(self) -> bool:
        """True when every declared package is installed."""
        return self.check()["all_installed"]

    def install(self) -> dict:
        """Submit an install of the declared packages; remembers the job id."""
        return self._submit(install=True)

    def uninstall(self) -> dict:
        """Submit a removal of the declared packages; remembers the job id."""
        return self._submit(install=False)

    def poll(self, job_id: str, remove_if_complete: bool = False) -> dict:
        """The job's poll answer; a job the daemon does not know is answered
        complete with a ``job_error`` (see :func:`lost_job`)."""
        from ..api.protocol import ApiError

        try:
            return self._call(lambda c: c.poll(job_id, remove_if_complete), passthrough=(UNKNOWN_JOB,))
        except ApiError:  # only unknown_job gets here
            if self.last_job_id() == job_id:
                self.forget_last_job()
            return lost_job(job_id)

    def last_job_id(self) -> str | None:
        """The id of the last dependency job this module submitted (kept on disk)."""
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                job_id = json.load(handle).get("job_id")
        except (OSError, ValueError, AttributeError):
            return None
        return job_id if isinstance(job_id, str) else None

    def rebind(self) -> dict | None:
        """The last job's poll answer, or None when there is none (any more)."""
        job_id = self.last_job_id()
        if job_id is None:
            return None
        answer = self.poll(job_id)
        return None if answer.get("error_code") == UNKNOWN_JOB and answer.get("state") == "unknown" else answer

    def forget_last_job(self) -> None:
        try:
            os.unlink(self.state_path)
        except OSError:
            pass

    # ---------------------------------------------------------- actions
    def actions(self) -> dict[str, Callable[[Request], Any]]:
        """The action handlers :meth:`Module.enable_dependency_actions` registers."""
        return {
            "check_dependencies": self.handle_check,
            "dependency_status": self.handle_status,
            "manage_dependencies": self.handle_manage,
            "poll_job": self.handle_poll,
            "check_background_job": self.handle_poll,  # what Hak5's uninstall dialogs poll
            "rebind_last_job": self.handle_rebind,
        }

    def handle_check(self, request: Request) -> tuple[Any, bool]:
        return self._answer(self.all_installed)

    def handle_status(self, request: Request) -> tuple[Any, bool]:
        return self._answer(self.check)

    def handle_manage(self, request: Request) -> tuple[Any, bool]:
        install = request.get("install", True)
        if not isinstance(install, bool):
            return "'install' must be true (install the dependencies) or false (remove them)", False
        return self._answer(self.install if install else self.uninstall)

    def handle_poll(self, request: Request) -> tuple[Any, bool]:
        job_id = request.get("job_id") or self.last_job_id()
        remove = request.get("remove_if_complete", False)
        if not isinstance(job_id, str):
            return "poll_job needs a 'job_id' (a string) and this module has no last job", False
        if not isinstance(remove, bool):
            return "'remove_if_complete' must be true or false", False
        return self._answer(lambda: self.poll(job_id, remove))

    def handle_rebind(self, request: Request) -> tuple[Any, bool]:
        return self._answer(self.rebind)

    # -------------------------------------------------------- internals
    def _submit(self, install: bool) -> dict:
        packages = self.packages
        if not packages:
            raise DependencyError(f"module {self.module.name} declares no dependencies")
        answer = self._call(lambda c: c.install(packages) if install else c.uninstall(packages))
        self._remember(answer["job_id"], "install" if install else "uninstall", packages)
        duplicate = " (an identical job was already queued)" if answer.get("duplicate") else ""
        self.module.logger.info("%s of %s submitted as job %s%s", "install" if install else "removal",
                                ", ".join(packages), answer["job_id"], duplicate)
        return answer

    def _remember(self, job_id: str, operation: str, packages: list[str]) -> None:
        record = {"job_id": job_id, "operation": operation, "packages": packages, "submitted_at": time.time()}
        try:
            os.makedirs(os.path.dirname(self.state_path) or ".", exist_ok=True)
            tmp = f"{self.state_path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            os.replace(tmp, self.state_path)
        except OSError as exc:  # the job runs anyway; only rebinding after a restart is lost
            self.module.logger.warning("cannot save the last job id to %s: %s", self.state_path, exc)

    def _client(self) -> JobClient:
        if self._client_factory is not None:
            return self._client_factory()
        from ..api.client import JobClient

        return JobClient(self.module.jobd_socket, timeout=CLIENT_TIMEOUT)

    def _call(self, operation: Callable[[JobClient], Any], passthrough: tuple[str, ...] = ()) -> Any:
        """Run ``operation(client)``; daemon errors become :class:`DependencyError`
        (except codes in ``passthrough``, re-raised as they are)."""
        from ..api.client import DaemonUnavailable
        from ..api.protocol import ApiError

        client = self._client()
        try:
            return operation(client)
        except DaemonUnavailable as exc:
            raise DependencyError(f"pineapple-jobd is not running or not reachable ({exc}); start it with "
                                  "'/etc/init.d/pineapple-jobd start'") from None
        except ApiError as exc:
            if exc.code in passthrough:
                raise
            raise DependencyError(f"pineapple-jobd refused the request: {exc} ({exc.code})") from None
        finally:
            client.close()

    def _answer(self, operation: Callable[[], Any]) -> tuple[Any, bool]:
        try:
            return operation(), True
        except DependencyError as exc:
            self.module.logger.warning("%s", exc)
            return str(exc), False
