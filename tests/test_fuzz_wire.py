"""A bounded wire-level fuzz run (scripts/fuzz_wire.py) against a real `voice serve`.

No client message and no HTTP body may end a call or get a 5xx; every case meant to be
refused gets exactly one ``error``; the connection then answers a normal typed turn.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from scripts.fuzz_wire import FINAL_QUESTION, FINAL_SESSION, fuzz
from tests.conftest import REPO, ServerProcess, start_server

pytestmark = pytest.mark.e2e

#: Small enough for about a minute on the 2-core machine; the full run is the script's.
CASES = 120


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own, whose characters folder is a copy (uploads must never land)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    characters = tmp / "characters"
    shutil.copytree(REPO / "characters", characters)
    running = start_server(tmp, VOICE_CHARACTERS_DIR=str(characters))
    yield running
    running.stop()


async def test_no_client_message_ends_a_call(fuzz_server: ServerProcess) -> None:
    lines: list[str] = []
    tally = await fuzz(
        fuzz_server.http, cases=CASES, seed=20260101, api_key=fuzz_server.api_key,
        log=lines.append,
    )  # fmt: skip
    report = tally.summary()
    assert sum(tally.cases.values()) == CASES
    assert tally.server_closes == [], report
    assert tally.http_5xx == [], report
    assert tally.unanswered == [], report
    assert not tally.wrong_error_counts, report
    assert tally.http_accepted == [], report
    assert tally.error_codes["server_error"] == 0, report
    assert tally.errors > CASES // 2, report  # most cases are refused, each with an error
    assert tally.final_turn == "answered", report
    assert file_names(fuzz_server.log_path.parent / "characters") == file_names(
        REPO / "characters"
    )  # nothing hostile was stored


def file_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def test_a_long_text_item_does_not_silence_the_call(fuzz_server: ServerProcess) -> None:
    async with connect(
        f"{fuzz_server.ws_base}/realtime",
        additional_headers={"Authorization": f"Bearer {fuzz_server.api_key}"},
        max_size=None,
    ) as ws:
        await next_event(ws, "session.created")
        long_item = dict(FINAL_QUESTION, item={**FINAL_QUESTION["item"], "content": [
            {"type": "input_text", "text": "word " * 10_000}]})  # fmt: skip
        for event in (FINAL_SESSION, long_item, FINAL_QUESTION, {"type": "response.create"}):
            await ws.send(json.dumps(event))
        audio = 0
        async with asyncio.timeout(120):
            while (event := json.loads(await ws.recv()))["type"] != "response.done":
                if event["type"] == "response.output_audio.delta":
                    audio += len(event["delta"])
        assert event["response"]["status"] == "completed"
        assert audio > 0


async def next_event(ws: ClientConnection, event_type: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == event_type:
                return event


async def test_a_system_message_without_text_is_refused(fuzz_server: ServerProcess) -> None:
    async with connect(
        f"{fuzz_server.ws_base}/realtime",
        additional_headers={"Authorization": f"Bearer {fuzz_server.api_key}"},
    ) as ws:
        await next_event(ws, "session.created")
        item = {"type": "message", "role": "system", "content": [{"type": "input_text"}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        error = (await next_event(ws, "error"))["error"]
        assert error["code"] != "server_error", error
