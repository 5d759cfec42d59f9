"""Module-scoped sandbox and daemons for the end-to-end tests (see tests/api/helpers.py)."""
from __future__ import annotations

from tests.api.helpers import module_daemons, module_sandbox  # noqa: F401
