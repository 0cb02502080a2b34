"""What this server process holds right now: memory, open files, threads, asyncio tasks.

For ``/health`` and the reliability script (``scripts/reliability.py``), which compare
them before and after many calls to find leaks. Cheap: two small reads under
``/proc/self`` and a count of the loop's tasks. Off Linux, the ``/proc`` figures are
``None``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

PROC = Path("/proc/self")


def _status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def parse_status(text: str) -> tuple[int | None, int | None]:
    """Resident memory in bytes and the thread count, from a ``/proc/<pid>/status`` text."""
    fields = _status_fields(text)
    rss: int | None = None
    threads: int | None = None
    if (value := fields.get("VmRSS")) is not None:
        number, _, unit = value.partition(" ")
        rss = int(number) * (1024 if unit.strip().lower() == "kb" else 1)
    if (value := fields.get("Threads")) is not None:
        threads = int(value)
    return rss, threads


def process_stats(proc: Path = PROC) -> dict[str, int | None]:
    """``rss_bytes``, ``open_fds``, ``threads`` and ``asyncio_tasks`` (of the running loop)."""
    rss: int | None = None
    threads: int | None = None
    fds: int | None = None
    try:
        rss, threads = parse_status((proc / "status").read_text())
        fds = len(os.listdir(proc / "fd"))
    except OSError:  # not Linux, or /proc not mounted
        pass
    try:
        tasks: int | None = len(asyncio.all_tasks())
    except RuntimeError:  # no running loop
        tasks = None
    return {"rss_bytes": rss, "open_fds": fds, "threads": threads, "asyncio_tasks": tasks}
