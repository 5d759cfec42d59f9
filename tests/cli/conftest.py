"""Module-scoped sandbox and daemons for the end-to-end tests (see tests/api/helpers.py)."""
from __future__ import annotations

import pytest

from tests.api.helpers import module_daemons, module_sandbox  # noqa: F401

HANG = "tool-c"  # its download never ends: a job that stays running until cancelled


@pytest.fixture(scope="module")
def jobd(module_daemons):  # noqa: F811 - the fixture imported above
    """A daemon of this test module whose install of HANG hangs in the download."""
    return module_daemons(env={"OPKG_STANDIN_HANG": f"download:{HANG}"})
