"""``make run`` on a development machine: start pineapple-jobd against the
opkg stand-in and a demo feed in a sandbox root under ``./run``.

    python -m devtools.devrun [--dir run] [--fresh] [-- extra pineapple-jobd flags]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from devtools.sandbox import Sandbox, create_demo


def prepare(run_dir: Path, fresh: bool) -> Sandbox:
    """The demo sandbox in ``run_dir/sandbox`` (created on first use)."""
    sandbox_dir = run_dir / "sandbox"
    if fresh and sandbox_dir.exists():
        shutil.rmtree(sandbox_dir)
    if not (sandbox_dir / "opkg.conf").exists():
        print(f"creating the demo opkg sandbox in {sandbox_dir} ...", flush=True)
        return create_demo(sandbox_dir)
    return Sandbox(base=sandbox_dir, feeds={}, dests={})  # only its paths are needed


def daemon_argv(run_dir: Path, sandbox: Sandbox, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pineapple.daemon.main",
            "--socket", str(run_dir / "jobd.sock"), "--state-dir", str(run_dir / "state"),
            "--opkg-binary", str(sandbox.opkg_path), "--opkg-root", str(sandbox.root),
            "--opkg-conf", str(sandbox.conf), "--log-level", "info", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="run", help="working directory (default ./run)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the demo sandbox")
    parser.add_argument("extra", nargs="*", help="more pineapple-jobd flags (after --)")
    args = parser.parse_args(argv)
    run_dir = Path(args.dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    sandbox = prepare(run_dir, args.fresh)
    socket_path = run_dir / "jobd.sock"
    bin_dir = Path(sys.executable).parent
    print(f"""
pineapple-jobd (dev) on {socket_path}
  opkg stand-in: {sandbox.opkg_path} -o {sandbox.root} -f {sandbox.conf}
Try, in another terminal:
  export PINEAPPLE_JOBD_SOCKET={socket_path}
  {bin_dir}/pineapple-jobs install tcpdump --wait
  {bin_dir}/pineapple-jobs list
Stop with Ctrl-C.
""", flush=True)
    command = daemon_argv(run_dir, sandbox, args.extra)
    # The stand-in starts with `env python3`: find this interpreter first, not a slow shim.
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.execv(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
