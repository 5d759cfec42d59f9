"""Acceptance (issue 13): 20 rounds of kill -9 of the real daemon at random
moments during installs, uninstalls and rollbacks, under the stand-in's
faults. After every restart each acknowledged id answers, and opkg's status
database and the root's files show no half state and no file no package
owns. Seeded: the seed is printed (and PINEAPPLE_CHAOS_SEED replays it)."""
from __future__ import annotations

import os
import random

import pytest

from devtools.sandbox import Sandbox
from tests.fixtures.chaos import CrashRounds, scripted_packages
from tests.fixtures.opkgs import OPKGS

ROUNDS = 20


def test_twenty_kills_leave_no_half_state_and_lose_no_answer(sandbox, tmp_path, capsys):
    """With the stand-in's fault knobs (slow download, hangs, failing postinst)."""
    run_rounds(CrashRounds, sandbox, tmp_path, capsys)


@pytest.mark.parametrize("binary", OPKGS[1:])  # the stand-in has the test above
def test_twenty_kills_during_real_maintainer_scripts(tmp_path, capsys, binary):
    """With real opkg-lede: slow and failing postinsts (no stand-in knob)."""
    sandbox = Sandbox.create(tmp_path / "sb", packages=scripted_packages(), installed=["libc"])
    run_rounds(lambda sb, work, seed: CrashRounds(sb, work, seed, binary=binary, scripted=True),
               sandbox, tmp_path, capsys)


def run_rounds(make, sandbox, tmp_path, capsys) -> None:
    seed = int(os.environ.get("PINEAPPLE_CHAOS_SEED") or random.randrange(1 << 32))
    with capsys.disabled():
        print(f"\nkill -9 rounds: seed {seed} (PINEAPPLE_CHAOS_SEED={seed} replays them)")
    chaos = make(sandbox, tmp_path / "chaos", seed)
    try:
        figures = chaos.run(ROUNDS)
    finally:
        chaos.close()
    assert figures.problems == [], f"seed {seed}: {figures.problems}\n{chaos.daemon.log()[-4000:]}"
    assert (figures.rounds, figures.kills, figures.survived) == (ROUNDS, ROUNDS, ROUNDS)
    assert figures.half_states == 0 and figures.orphans == 0
