"""``make run``: start pineapple-jobd on a development machine, against the
opkg stand-in and a demo feed in a sandbox root under ``./run``.

    python -m devtools.devrun [--dir run] [--fresh] [--download-delay S] [-- pineapple-jobd flags]

The sandbox is kept between runs (what you installed stays installed);
``--fresh`` (``make run FRESH=1``) builds it again. Downloads in the demo
take ``--download-delay`` seconds per package (default 1.5, like a slow
router link) so the progress bar can be seen; 0 makes them instant.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from devtools.sandbox import KNOBS, Sandbox, create_demo

DEFAULT_DOWNLOAD_DELAY = 1.5  # seconds per package download in the demo


def prepare(run_dir: Path, fresh: bool) -> tuple[Sandbox, bool]:
    """The demo sandbox in ``run_dir/sandbox`` (built on first use or when
    ``fresh``) and whether it was built just now."""
    sandbox_dir = run_dir / "sandbox"
    if fresh and sandbox_dir.exists():
        shutil.rmtree(sandbox_dir)
    if not (sandbox_dir / "opkg.conf").exists():
        print(f"creating the demo opkg sandbox in {sandbox_dir} ...", flush=True)
        return create_demo(sandbox_dir), True
    return Sandbox(base=sandbox_dir, feeds={}, dests={}), False  # only its paths are needed


def daemon_argv(run_dir: Path, sandbox: Sandbox, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pineapple.daemon.main",
            "--socket", str(run_dir / "jobd.sock"), "--state-dir", str(run_dir / "state"),
            "--opkg-binary", str(sandbox.opkg_path), "--opkg-root", str(sandbox.root),
            "--opkg-conf", str(sandbox.conf), "--log-level", "info", *extra]


def running_pid(socket_path: Path) -> int | None:
    """The pid of a pineapple-jobd already answering on ``socket_path``, if any."""
    from pineapple.api.client import JobClient
    from pineapple.api.protocol import ApiError

    if not socket_path.exists():
        return None
    try:
        with JobClient(str(socket_path), timeout=2.0) as client:
            return int(client.stats()["pid"])
    except (ApiError, KeyError, TypeError, ValueError):
        return None


def banner(socket_path: Path, sandbox: Sandbox, built: bool, delay: float) -> str:
    """What to try, in the README's words (the README's demo block says the same)."""
    cli = Path(sys.executable).parent / "pineapple-jobs"
    kept = "" if built else (
        f"\nThe sandbox in {sandbox.base} is the one from last time: what you installed is still installed.\n"
        "Start afresh with `make run FRESH=1` (or python -m devtools.devrun --fresh).\n")
    pace = f"each package download takes {delay:g}s (--download-delay)" if delay else "downloads are instant"
    return f"""
pineapple-jobd (dev) on {socket_path}
  opkg stand-in: {sandbox.opkg_path} -o {sandbox.root} -f {sandbox.conf}
  demo feed: tcpdump, nmap, mdk4 (its postinst fails), ...; {pace}
{kept}
Try, in another terminal:
  export PINEAPPLE_JOBD_SOCKET={socket_path}
  {cli} install tcpdump --wait     # a live progress bar
  {cli} install mdk4 --wait        # fails: its postinst exits 3; rolled back
  {cli} list
Stop with Ctrl-C.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.devrun", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start pineapple-jobd against the opkg stand-in and a demo feed "
                    "in a sandbox root (what `make run` does).",
        epilog="The sandbox is kept between runs; --fresh (make run FRESH=1) builds it again.")
    parser.add_argument("--dir", default="run", help="working directory (default ./run)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the demo sandbox (installed packages go)")
    parser.add_argument("--download-delay", type=float, metavar="SECONDS", default=None,
                        help=f"seconds each package download takes (default {DEFAULT_DOWNLOAD_DELAY:g}, "
                             f"or ${KNOBS['download_delay']}; 0: instant)")
    parser.add_argument("extra", nargs="*", help="more pineapple-jobd flags (after --)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir = Path(args.dir).resolve()
    socket_path = run_dir / "jobd.sock"
    pid = running_pid(socket_path)
    if pid is not None:
        print(f"pineapple-jobd is already running on {socket_path} (pid {pid}), from another `make run`.\n"
              f"Use that one (export PINEAPPLE_JOBD_SOCKET={socket_path}), or stop it first "
              f"(Ctrl-C in its terminal, or kill {pid}).", file=sys.stderr)
        return 1
    run_dir.mkdir(parents=True, exist_ok=True)
    sandbox, built = prepare(run_dir, args.fresh)
    delay = _download_delay(args.download_delay)
    print(banner(socket_path, sandbox, built, delay), flush=True)
    command = daemon_argv(run_dir, sandbox, args.extra)
    # The stand-in starts with `env python3`: find this interpreter first, not a slow shim.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ[KNOBS["download_delay"]] = f"{delay:g}"
    os.execv(command[0], command)
    return 0


def _download_delay(flag: float | None) -> float:
    if flag is not None:
        return max(0.0, flag)
    try:
        return max(0.0, float(os.environ.get(KNOBS["download_delay"], DEFAULT_DOWNLOAD_DELAY)))
    except ValueError:
        return DEFAULT_DOWNLOAD_DELAY


if __name__ == "__main__":
    sys.exit(main())
