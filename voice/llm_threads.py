"""How many threads the embedded llama.cpp children write with, set while they run.

llama-cpp-python fixes a model's threads when it loads it, but a call alone on the machine
gets its first clause sooner with two writing threads, while with several calls two
threads spin-wait for cores the other calls' speech needs (BENCHMARKS.md, "Spare cores
for a lone call"). So the parent keeps the count it wants in a small file, and each child
(:mod:`voice.llm_child`) reads it before every completion. A missing or unreadable file
leaves the child's threads as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable naming the file, in the child's environment.
THREADS_FILE_ENV = "VOICE_LLM_THREADS_FILE"
MAX_THREADS = 256


def write_threads(path: Path, threads: int) -> None:
    """Set the count (atomically: a child never reads half a file)."""
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be 1 to {MAX_THREADS}, not {threads}")
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{threads}\n")
    os.replace(partial, path)


def read_threads(path: Path) -> int | None:
    """The count in ``path``; None if it is missing or not a count."""
    try:
        threads = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return threads if 1 <= threads <= MAX_THREADS else None
