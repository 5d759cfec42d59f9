#!/usr/bin/env python3
"""Crash recovery under kill -9: rounds of kill -9 of the real daemon at
random moments during installs, uninstalls and rollbacks, with the opkg
stand-in's faults (slow download, hangs, failing postinst), the same rounds
tests/daemon/test_kill_chaos.py requires (tests/fixtures/chaos.py).

Prints: rounds run, kills survived (restarts that answered every
acknowledged id), half-installed states found, orphans left (files no
package owns + our opkg processes still running), jobs recovered, and the
start time after a kill (which includes the recovery) against a clean
start of the same daemon on the same journal, measured in the same run
(medians; the ratio is the figure).

    python bench/crash_recovery.py [--rounds 20] [--seed N] [--opkg /path/to/opkg-lede]

With ``--opkg``, that binary runs instead of the stand-in, and the faults
are real maintainer scripts (a slow and a failing postinst, run under -o
with --force-postinstall) instead of the stand-in's knobs.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from devtools.sandbox import Sandbox  # noqa: E402
from tests.conftest import feed_packages  # noqa: E402
from tests.fixtures.chaos import CrashRounds, scripted_packages  # noqa: E402


def clean_starts(chaos: CrashRounds, count: int) -> list[float]:
    """Start and stop cleanly: nothing to recover, the same journal."""
    times = []
    for _ in range(count):
        started = time.monotonic()
        chaos.daemon.start()
        times.append(time.monotonic() - started)
        chaos.daemon.stop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--clean-starts", type=int, default=10)
    parser.add_argument("--opkg", default="", help="an opkg binary (e.g. real opkg-lede) instead of the stand-in")
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.randrange(1 << 32)
    with tempfile.TemporaryDirectory(prefix="crash-bench-") as base:
        scripted = bool(options.opkg)
        packages = scripted_packages() if scripted else feed_packages()
        sandbox = Sandbox.create(Path(base) / "sb", packages=packages, installed=["libc"])
        chaos = CrashRounds(sandbox, Path(base) / "daemon", seed, binary=options.opkg, scripted=scripted)
        try:
            began = time.monotonic()
            figures = chaos.run(options.rounds)
            elapsed = time.monotonic() - began
            clean = clean_starts(chaos, options.clean_starts)
        finally:
            chaos.close()
    after_kill = statistics.median(figures.start_after_kill)
    baseline = statistics.median(clean)
    print(f"opkg: {options.opkg or 'stand-in (devtools/opkg) with its fault knobs'}")
    print(f"seed {seed}: {figures.rounds} rounds in {elapsed:.1f} s")
    print(f"  kills survived:            {figures.survived}/{figures.kills}")
    print(f"  half-installed states:     {figures.half_states}")
    print(f"  orphans left:              {figures.orphans}")
    print(f"  jobs answering a recovery: {figures.recovered}")
    print(f"  start after a kill:        {after_kill * 1000:.0f} ms median "
          f"(max {max(figures.start_after_kill) * 1000:.0f} ms, {len(figures.start_after_kill)} starts)")
    print(f"  clean start (baseline):    {baseline * 1000:.0f} ms median ({len(clean)} starts)")
    print(f"  ratio after kill / clean:  {after_kill / baseline:.2f}")
    for problem in figures.problems:
        print(f"  PROBLEM: {problem}")
    return 1 if figures.problems else 0


if __name__ == "__main__":
    sys.exit(main())
