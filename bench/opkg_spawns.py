#!/usr/bin/env python3
"""opkg spawns benchmark: installing N missing packages with fresh lists.

For each N (default 1, 3, 10) two fresh sandboxes are built with the same
feed (libc installed, N small packages in the feed, lists just fetched) and
the same opkg stand-in (devtools/opkg). Measured in the same run:

- ours: an InstallDependenciesJob through a JobManager;
- baseline: what the Pineapple library's opkg job does today (see
  shared/reference/hak5-pineapple.md): one ``opkg update``, then per package
  ``opkg status``, ``opkg install``, ``opkg status`` (1 + 3N opkg runs),
  written here from that description.

Spawns are counted by the stand-in itself (OPKG_STANDIN_CALL_LOG); wall time
is the median of ``--repeat`` runs, each on its own fresh sandbox.

    python bench/opkg_spawns.py [--sizes 1,3,10] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from devtools.sandbox import PackageSpec, Sandbox  # noqa: E402
from pineapple.jobs import JobManager  # noqa: E402
from pineapple.opkg.jobs import InstallDependenciesJob  # noqa: E402
from pineapple.opkg.runner import RunnerSettings  # noqa: E402
from pineapple.opkg.system import OpkgSystem  # noqa: E402

# The stand-in starts with "#!/usr/bin/env python3": let it find this interpreter.
STANDIN_PATH = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", os.defpath)
JOB_WAIT = 300.0


def package_names(n: int) -> list[str]:
    return [f"pkg-{i:02d}" for i in range(1, n + 1)]


def fresh_sandbox(base: pathlib.Path, n: int) -> Sandbox:
    """libc installed; pkg-01..pkg-N (each needing libc) only in the feed."""
    specs = [PackageSpec("libc", "1.2.4-4")]
    specs += [PackageSpec(name, "1.0-1", depends=["libc"]) for name in package_names(n)]
    return Sandbox.create(base, packages=specs, installed=["libc"])


def count_calls(path: pathlib.Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


# ------------------------------------------------------------------- ours
def measure_ours(base: pathlib.Path, n: int) -> tuple[int, float]:
    sb = fresh_sandbox(base / "ours", n)
    log = base / "ours-calls.jsonl"
    saved = {key: os.environ.get(key) for key in ("OPKG_STANDIN_CALL_LOG", "TMPDIR")}
    os.environ["OPKG_STANDIN_CALL_LOG"] = str(log)  # the runner passes the stand-in's knobs on
    os.environ["TMPDIR"] = str(sb.tmp_dir)
    manager = JobManager("bench-opkg", workers=1)
    try:
        system = OpkgSystem(RunnerSettings(binary=str(sb.opkg_path), offline_root=str(sb.root),
                                           conf=str(sb.conf), env_path=STANDIN_PATH))
        started = time.perf_counter()
        job = manager.wait(manager.execute_job(InstallDependenciesJob(system, package_names(n))), JOB_WAIT)
        seconds = time.perf_counter() - started
    finally:
        manager.shutdown(wait=True, timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if job.state != "succeeded":
        raise SystemExit(f"ours: install of {n} packages failed: {job.error}")
    _check_installed(sb, n, "ours")
    return count_calls(log), seconds


# --------------------------------------------------------------- baseline
def legacy_install(sb: Sandbox, names: list[str], env: dict[str, str]) -> dict[str, bool]:
    """The old library's sequence: update once, then status/install/status
    per package, one opkg process each, output only checked for "installed"."""

    def opkg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(sb.argv(*args), env=env, capture_output=True, text=True, timeout=JOB_WAIT)

    def is_installed(name: str) -> bool:
        lines = opkg("status", name).stdout.splitlines()
        return any(line.startswith("Status:") and line.split()[-1] == "installed" for line in lines)

    opkg("update")
    results = {}
    for name in names:
        if is_installed(name):
            results[name] = True
            continue
        opkg("install", name)
        results[name] = is_installed(name)
    return results


def measure_baseline(base: pathlib.Path, n: int) -> tuple[int, float]:
    sb = fresh_sandbox(base / "baseline", n)
    log = base / "baseline-calls.jsonl"
    env = sb.env(call_log=log)
    started = time.perf_counter()
    results = legacy_install(sb, package_names(n), env)
    seconds = time.perf_counter() - started
    if not all(results.values()):
        raise SystemExit(f"baseline: install of {n} packages failed: {results}")
    _check_installed(sb, n, "baseline")
    return count_calls(log), seconds


def _check_installed(sb: Sandbox, n: int, who: str) -> None:
    missing = [name for name in package_names(n) if name not in sb.installed()]
    if missing:
        raise SystemExit(f"{who}: not installed after the run: {missing}")


# ------------------------------------------------------------------- main
def measure(n: int, repeat: int) -> dict:
    ours, baseline = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-opkg-") as tmp:
            ours.append(measure_ours(pathlib.Path(tmp), n))
            baseline.append(measure_baseline(pathlib.Path(tmp), n))
    return {
        "n": n,
        "ours_spawns": max(spawns for spawns, _ in ours),
        "ours_seconds": statistics.median(seconds for _, seconds in ours),
        "base_spawns": max(spawns for spawns, _ in baseline),
        "base_seconds": statistics.median(seconds for _, seconds in baseline),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,10", help="comma-separated package counts (default 1,3,10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; wall time is the median (default 3)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    print("Installing N missing packages, lists fresh, same opkg stand-in "
          f"(median of {args.repeat} run(s) per N, each on a fresh sandbox)")
    print(f"{'N':>3} | {'ours spawns':>11} {'ours time':>10} | {'baseline spawns':>15} {'baseline time':>13} "
          f"| {'spawns ratio':>12} {'time ratio':>10}")
    print("-" * 89)
    for n in sizes:
        row = measure(n, max(1, args.repeat))
        spawn_ratio = row["base_spawns"] / max(1, row["ours_spawns"])
        time_ratio = row["base_seconds"] / row["ours_seconds"] if row["ours_seconds"] else float("inf")
        print(f"{n:>3} | {row['ours_spawns']:>11} {row['ours_seconds']:>9.2f}s | {row['base_spawns']:>15} "
              f"{row['base_seconds']:>12.2f}s | {spawn_ratio:>11.1f}x {time_ratio:>9.1f}x")
    print("baseline = 1 opkg update + per package status, install, status (1 + 3N spawns); "
          "ratio = baseline / ours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
