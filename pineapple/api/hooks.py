"""The shape of the ``on_success`` / ``on_failure`` hooks a submit may carry.

Checked here, in the API layer, before anything is registered; what a hook
*does* (an allow-listed command, an MQTT notification) is the daemon's
business (pineapple/daemon/hooks.py), handed in through ``Service.hooks``.
"""
from __future__ import annotations

from typing import Any

from ..errors import INVALID_FIELD, JobError

MAX_HOOKS = 8


def validate_hooks(request: dict) -> dict[str, list[dict]]:
    """The ``on_success`` / ``on_failure`` specs of a submit, checked for shape."""
    hooks = {}
    for when in ("on_success", "on_failure"):
        specs = request.get(when)
        if specs is None:
            continue
        if not isinstance(specs, list) or len(specs) > MAX_HOOKS:
            raise JobError(f"'{when}' must be a list of at most {MAX_HOOKS} hooks", INVALID_FIELD)
        hooks[when] = [_check_spec(spec, when) for spec in specs]
    return hooks


def _check_spec(spec: Any, when: str) -> dict:
    if isinstance(spec, dict) and any(isinstance(v, str) and not _is_text(v) for v in spec.values()):
        raise JobError(f"'{when}': a hook's text is not valid Unicode (a lone surrogate such as \\ud800)",
                       INVALID_FIELD)
    if isinstance(spec, dict) and set(spec) == {"command"} and isinstance(spec["command"], str):
        return dict(spec)
    if isinstance(spec, dict) and spec.get("notify") == "mqtt" and set(spec) <= {"notify", "message"} \
            and isinstance(spec.get("message", ""), str):
        return dict(spec)
    raise JobError(f"'{when}': a hook is {{\"command\": NAME}} (from the daemon's allow-list) or "
                   f"{{\"notify\": \"mqtt\", \"message\": TEXT}}", INVALID_FIELD)


def _is_text(value: Any) -> bool:
    """A string that UTF-8 can carry (JSON's ``"\\ud800"`` decodes to one it cannot)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
