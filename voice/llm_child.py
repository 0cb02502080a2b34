"""The embedded llama.cpp child: ``python -m llama_cpp.server`` with the same arguments,
whose writing threads follow the file named by ``VOICE_LLM_THREADS_FILE``
(:mod:`voice.llm_threads`).

Each completion (chat completions go through ``Llama.create_completion``) reads the file
before it starts, under the server's one-request-at-a-time lock, and sets the count on the
model's context (``llama_set_n_threads``); reading a prompt keeps its own thread count.
Run by :class:`voice.llm_server.EmbeddedLlamaServer`, never imported by the server itself.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp.server.__main__ import main

from voice.llm_threads import THREADS_FILE_ENV, read_threads


def follow_threads(path: Path) -> None:
    """Make every ``Llama`` completion start with the writing threads ``path`` holds."""
    original = llama_cpp.Llama.create_completion

    @functools.wraps(original)
    def create_completion(self: llama_cpp.Llama, *args: Any, **kwargs: Any) -> Any:
        threads = read_threads(path)
        params = self.context_params
        if threads is not None and threads != params.n_threads:
            params.n_threads = threads
            llama_cpp.llama_set_n_threads(self.ctx, threads, params.n_threads_batch)
            print(f"voice.llm_child: writing threads now {threads}", file=sys.stderr, flush=True)
        return original(self, *args, **kwargs)

    llama_cpp.Llama.create_completion = create_completion  # type: ignore[method-assign]


if __name__ == "__main__":
    if threads_file := os.environ.get(THREADS_FILE_ENV):
        follow_threads(Path(threads_file))
    main()  # type: ignore[no-untyped-call]
