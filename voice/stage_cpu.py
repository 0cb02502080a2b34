"""CPU time by stage of the pipeline, from the kernel's per-thread counters (Linux).

Each model's threads carry its name at the OS level: the worker thread of a
:class:`~voice.inference.ModelWorker` and the thread that loads the model (whose native
runtime makes its thread pools there, and new threads inherit their creator's name). So
``/proc/self/task/*`` tells Whisper (``voice-stt``) and the voices (``voice-tts``) apart
from the event loop's thread (VAD, resampling, echo guard, turn-taking, the protocol and
the transport; the VAD's own share is counted as it runs) and the rest. The embedded LLM
is a child process: its CPU is read from ``/proc/<pid>/stat``. Off Linux: ``None``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PR_SET_NAME = 15
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (15 bytes at most) in ``/proc``; threads it starts
    from now on inherit it. Does nothing where the call is not available."""
    with contextlib.suppress(AttributeError, OSError):
        _libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _own_name() -> str:
    try:
        return (
            (PROC / "self" / "task" / str(threading.get_native_id()) / "comm").read_text().strip()
        )
    except OSError:
        return "python"


@contextlib.contextmanager
def os_thread_named(name: str) -> Iterator[None]:
    """The calling thread named ``name`` while the block runs (a model loading, whose
    runtime makes its threads now)."""
    before = _own_name()
    name_os_thread(name)
    try:
        yield
    finally:
        name_os_thread(before)


def _cpu_s(stat: str) -> float:
    """utime + stime of a ``/proc/.../stat`` line, in seconds (the name may hold spaces)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def thread_cpu_by_name(pid: str | int = "self") -> dict[str, float] | None:
    """CPU seconds of a process's live threads, summed by thread name."""
    totals: dict[str, float] = {}
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            totals[name] = totals.get(name, 0.0) + _cpu_s((task / "stat").read_text())
        except OSError:  # the thread ended meanwhile
            continue
    return totals


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds of process ``pid`` (its threads, live and ended)."""
    try:
        return _cpu_s((PROC / str(pid) / "stat").read_text())
    except OSError:
        return None


class VadClock:
    """CPU the VAD used on its thread, over every session (a class-wide counter)."""

    seconds = 0.0


def stage_cpu(llm_pids: Sequence[int] = ()) -> dict[str, float | None]:
    """CPU seconds so far: ``stt``, ``tts``, ``vad``, ``loop`` (the event loop's thread,
    without the VAD), ``other`` threads of this process, ``process`` (all of it, ended
    threads included) and ``llm`` (the embedded LLM children, when ``llm_pids`` are given)."""
    threads = thread_cpu_by_name()
    total = process_cpu_s(os.getpid())
    if threads is None:
        return {"stt": None, "tts": None, "vad": VadClock.seconds, "loop": None,
                "other": None, "process": total, "llm": None}  # fmt: skip
    stt = sum(s for name, s in threads.items() if name.startswith("voice-stt"))
    tts = sum(s for name, s in threads.items() if name.startswith("voice-tts"))
    main = _main_thread_cpu_s()
    vad = VadClock.seconds
    loop = None if main is None else max(0.0, main - vad)
    other = None if total is None or main is None else max(0.0, total - stt - tts - main)
    return {
        "stt": round(stt, 2), "tts": round(tts, 2), "vad": round(vad, 3),
        "loop": None if loop is None else round(loop, 2),
        "other": None if other is None else round(other, 2),
        "process": total, "llm": _children_cpu_s(llm_pids),
    }  # fmt: skip


def _children_cpu_s(pids: Sequence[int]) -> float | None:
    """CPU seconds of the processes ``pids`` together; None if there are none, or one
    could not be read."""
    seconds = [process_cpu_s(pid) for pid in pids]
    if not seconds or None in seconds:
        return None
    return round(sum(s for s in seconds if s is not None), 2)


def _main_thread_cpu_s() -> float | None:
    """CPU seconds of the main thread (the event loop's)."""
    try:
        return _cpu_s((PROC / "self" / "task" / str(os.getpid()) / "stat").read_text())
    except OSError:
        return None
