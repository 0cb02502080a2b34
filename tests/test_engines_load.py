"""A start-up that fails part way releases what it had already loaded."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import pytest

from voice.config import Settings
from voice.engines import load_engines


def model_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("model-")]


async def test_a_whisper_that_does_not_load_releases_the_end_of_turn_model(tmp_path: Path) -> None:
    before = model_threads()
    empty = tmp_path / "not-a-whisper"
    empty.mkdir()
    out = io.StringIO()
    settings = Settings(data_dir=tmp_path / "data", stt_model_path=empty)
    with pytest.raises(Exception):  # noqa: B017 - whatever CTranslate2 raises for it
        await load_engines(settings, out)
    assert "loading the end-of-turn model" in out.getvalue()
    assert "failed" in out.getvalue()
    deadline = time.monotonic() + 5
    while model_threads() != before and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # the worker thread ends at its stop job
    assert model_threads() == before
