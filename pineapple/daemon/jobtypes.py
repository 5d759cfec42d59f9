"""Job types declared in the daemon's configuration.

    config job_type 'backup'
        option handler 'mymodule:backup'       # a function, or a Job subclass
        option description 'Back up /etc/config'
        option params '{"path": "/etc/config", "keep": 3}'
        option resource 'flash'                # one at a time with other 'flash' jobs
        option timeout '300'                   # seconds; 0: none (default: daemon.job_timeout)
        option max_retries '2'
        option retry_delay '30'
        option path '/usr/lib/pineapple-jobs'  # searched first for the module

A function is called as ``handler(job, **params)`` (see
:mod:`pineapple.jobs.function`); a :class:`~pineapple.jobs.Job` subclass is
built as ``handler(**params)``. ``params`` are the defaults: a request may
give any parameter the handler accepts (its argument names), and
``timeout``, ``max_retries``, ``retry_delay``; a parameter without a
default must be given. The resource is the config's alone.

Every declaration is imported and checked when the daemon starts: a module
that does not import, a missing attribute, a bad option stops the start
with a message naming the section. Only the configuration names code: a
request names a declared type, never a module, and nothing it sends is
ever imported.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from ..errors import INVALID_FIELD, MISSING_FIELD, JobError
from ..jobs import Job
from ..jobs.function import FunctionJob

SECTION = "job_type"
# The daemon's own job types (pineapple.opkg.jobs); a test keeps this in step.
BUILTIN_TYPES = frozenset({"install", "uninstall", "update"})
OPTIONS = frozenset({"handler", "description", "params", "resource", "timeout", "max_retries",
                     "retry_delay", "path"})
# Job's own keyword options: never parameters a request may pass to a handler.
_JOB_OPTIONS = frozenset({"timeout", "max_retries", "retry_delay", "resource", "log_lines",
                          "on_success", "on_failure"})
# A UCI section name is letters, digits and '_' (docs/config.md); lowercase here.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_MAX_NAME = 64
_VARKEYWORDS = 0x08  # code.co_flags: the function takes **kwargs


class DeclaredType:
    """One ``config job_type`` section, imported and checked."""

    def __init__(self, name: str, handler: str, target: Any, defaults: dict, options: dict,
                 description: str) -> None:
        where = f"config {SECTION} '{name}'"
        self.name = name
        self.handler = handler
        self.target = target
        self.is_class = isinstance(target, type)
        self.defaults_json = json.dumps(defaults)  # each job gets its own copy
        self.defaults = defaults
        self.options = options  # resource, timeout, max_retries, retry_delay as declared
        self.description = description
        self.accepted, self.required = _arguments(target, self.is_class, where)
        for key in defaults:
            if key in _JOB_OPTIONS:
                raise ValueError(f"{where}: '{key}' is an option of its own (option {key}), not a parameter")
            if self.accepted is not None and key not in self.accepted:
                raise ValueError(f"{where}: params names '{key}', which {handler} does not take "
                                 f"(it takes: {', '.join(self.accepted) or 'no parameters'})")

    def build(self, params: dict, default_timeout: float | None) -> Job:
        """The job for one request's ``params`` (raises :class:`JobError`)."""
        from ..jobs.registry import Params

        p = Params(params, self.name)
        run = p.run_options(*self._run_defaults(default_timeout))
        given = p.rest(self.accepted, exclude=_JOB_OPTIONS)
        p.finish()
        arguments = {**json.loads(self.defaults_json), **given}
        missing = [name for name in self.required if name not in arguments]
        if missing:
            raise JobError(f"{self.name}: missing parameter(s): {', '.join(missing)}", MISSING_FIELD)
        if not self.is_class:
            return FunctionJob(self.target, arguments, job_type=self.name,
                               resource=self.options.get("resource"), **run)
        return self._build_instance(arguments, run)

    def catalogue(self) -> dict[str, str]:
        """Parameter -> description, for ``job_types``."""
        from ..jobs.registry import RUN_OPTIONS

        params = {}
        for name in self.accepted or sorted(self.defaults):
            if name in self.defaults:
                params[name] = f"default {json.dumps(self.defaults[name])}"
            else:
                params[name] = "required" if name in self.required else "optional (the handler's default)"
        if self.accepted is None:
            params["..."] = f"any other parameter: {self.handler} takes keyword arguments"
        params.update(RUN_OPTIONS)
        return params

    # ------------------------------------------------------------ internals
    def _run_defaults(self, default_timeout: float | None) -> tuple[float | None, int, float]:
        declared = self.options
        cls = self.target if self.is_class else Job
        timeout = declared["timeout"] if "timeout" in declared else (cls.timeout or default_timeout)
        return (timeout or None, declared.get("max_retries", cls.max_retries),
                declared.get("retry_delay", cls.retry_delay))

    def _build_instance(self, arguments: dict, run: dict) -> Job:
        try:
            job = self.target(**arguments)
        except JobError:
            raise
        except Exception as exc:
            raise JobError(f"{self.name}: {self.handler}({', '.join(arguments)}) failed: "
                           f"{type(exc).__name__}: {exc}", INVALID_FIELD) from None
        if not isinstance(job, Job):
            raise JobError(f"{self.name}: {self.handler} did not build a Job", INVALID_FIELD)
        job.job_type = self.name
        job.timeout, job.max_retries, job.retry_delay = run["timeout"], run["max_retries"], run["retry_delay"]
        if "resource" in self.options:
            job.resource = self.options["resource"]
        if type(job).params is Job.params:  # restart and the record need the arguments it was built with
            job.params = lambda: dict(arguments)  # type: ignore[method-assign]
        return job


def declared_job_types(sections: list[Any]) -> list[DeclaredType]:
    """Import and check every ``config job_type`` section (ValueError naming
    the section for any problem)."""
    declared: dict[str, DeclaredType] = {}
    for section in sections:
        if section.type != SECTION:
            continue
        job_type = _declare(section)
        if job_type.name in declared:
            raise ValueError(f"config {SECTION} '{job_type.name}' is declared twice")
        declared[job_type.name] = job_type
    return list(declared.values())


def register_declared(registry: Any, declared: list[DeclaredType], default_timeout: float | None) -> None:
    """Add the declared types to a daemon's :class:`JobTypeRegistry`."""
    for job_type in declared:
        registry.register(job_type.name, _factory(job_type, default_timeout),
                          job_type.description, job_type.catalogue())


def _factory(job_type: DeclaredType, default_timeout: float | None) -> Any:
    return lambda params: job_type.build(params, default_timeout)


# ------------------------------------------------------------ one section
def _declare(section: Any) -> DeclaredType:
    name = section.name or ""
    where = f"config {SECTION} '{name}'"
    _check_name(name, where)
    options = dict(section.options)
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(OPTIONS))})")
    handler = _text(options, "handler", where)
    if not handler:
        raise ValueError(f"{where}: needs option handler 'module:attribute' (a function or a Job subclass)")
    path = _text(options, "path", where)
    if path:
        _add_search_path(path, where)
    target = _resolve(handler, where)
    return DeclaredType(name, handler, target, _defaults(options, where), _run_options(options, where),
                        _text(options, "description", where) or f"{handler} (declared in the daemon config)")


def _check_name(name: str, where: str) -> None:
    if not name:
        raise ValueError(f"config {SECTION}: a job type needs a name: config {SECTION} 'NAME'")
    if len(name) > _MAX_NAME or not set(name) <= _NAME_CHARS or name[0] == "_":
        raise ValueError(f"{where}: a job type name is 1-{_MAX_NAME} lowercase letters, digits and '_', "
                         "starting with a letter or digit")
    if name in BUILTIN_TYPES:
        raise ValueError(f"{where}: '{name}' is a built-in job type")


def _text(options: dict, key: str, where: str) -> str:
    value = options.get(key, "")
    if isinstance(value, list):
        raise ValueError(f"{where}: '{key}' is one value (option), not a list")
    return value.strip()


def _add_search_path(path: str, where: str) -> None:
    if not os.path.isabs(path) or not os.path.isdir(path):
        raise ValueError(f"{where}: path {path!r} is not an absolute path to a directory")
    if path not in sys.path:
        sys.path.insert(0, path)


def _resolve(handler: str, where: str) -> Any:
    module_name, sep, attribute = handler.partition(":")
    if not sep or not _dotted(module_name) or not _dotted(attribute):
        raise ValueError(f"{where}: handler {handler!r} is not 'module:attribute' (e.g. 'mymodule:backup')")
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # whatever the module does wrong, the start stops here
        raise ValueError(f"{where}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{where}: {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(target, type):
        if not issubclass(target, Job):
            raise ValueError(f"{where}: {handler} is a class but not a pineapple.jobs.Job subclass")
    elif not callable(target):
        raise ValueError(f"{where}: {handler} is neither a function nor a Job subclass")
    return target


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _defaults(options: dict, where: str) -> dict:
    text = _text(options, "params", where)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: params is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: params must be a JSON object of default parameters")
    return value


def _run_options(options: dict, where: str) -> dict:
    from ..jobs.registry import MAX_RETRIES, MAX_RETRY_DELAY, MAX_TIMEOUT

    declared: dict[str, Any] = {}
    resource = _text(options, "resource", where)
    if resource:
        declared["resource"] = resource
    for key, kind, high in (("timeout", float, MAX_TIMEOUT), ("max_retries", int, MAX_RETRIES),
                            ("retry_delay", float, MAX_RETRY_DELAY)):
        text = _text(options, key, where)
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if not 0 <= value <= high:
            raise ValueError(f"{where}: {key} {text!r} must be a number 0..{high:g}")
        declared[key] = value
    return declared


def _arguments(target: Any, is_class: bool, where: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """(parameter names the handler takes, or None for any; those without a
    default), read from its code object (``inspect`` would cost ~1 MB RSS)."""
    function = target.__init__ if is_class else target
    if is_class and function is Job.__init__:
        return (), ()
    code = getattr(function, "__code__", None)
    if code is None:  # a builtin or a callable object: nothing to read
        return None, ()
    positional = code.co_varnames[:code.co_argcount]
    keyword_only = code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]
    if not positional:
        raise ValueError(f"{where}: the handler must take the job as its first argument: handler(job, **params)")
    defaulted = set(positional[len(positional) - len(function.__defaults__ or ()):])
    defaulted.update(function.__kwdefaults__ or ())
    names = tuple(n for n in positional[1:] + keyword_only if n not in _JOB_OPTIONS)
    required = tuple(n for n in names if n not in defaulted)
    if code.co_flags & _VARKEYWORDS:
        return None, required
    return names, required
