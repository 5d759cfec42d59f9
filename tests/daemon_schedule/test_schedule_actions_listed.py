"""The socket API's lazy schedule handlers cover exactly the schedule actions."""
from __future__ import annotations

from pineapple.api import actions, schedule_actions


def test_every_schedule_action_is_served():
    assert set(actions.SCHEDULE_ACTIONS) == set(schedule_actions.HANDLERS)
    assert all(name in actions.HANDLERS for name in schedule_actions.HANDLERS)
