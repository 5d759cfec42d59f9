"""Small measuring helpers shared by the benchmarks (Linux /proc based)."""
from __future__ import annotations

import os


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def cpu_ticks(pid: int | str = "self") -> int:
    """User + system CPU time of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def mib(kib: int) -> str:
    return f"{kib / 1024:.2f} MiB"
