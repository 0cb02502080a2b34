"""Bad input gets a clear error event and the connection stays up; a vanished client frees all."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import ServerProcess

pytestmark = pytest.mark.e2e


async def next_event(ws: ClientConnection, event_type: str, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == event_type:
                return event


async def assert_still_serving(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
    await next_event(ws, "session.updated")


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        ("{oops", "invalid_json", "not valid JSON"),
        ('{"type": "input_audio_buffer.teleport"}', "unknown_event_type", "teleport"),
        (
            '{"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"}',
            "invalid_base64",
            "base64",
        ),
        (  # three bytes cannot be 16-bit PCM
            json.dumps(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}
            ),
            "invalid_audio_format",
            "even number of bytes",
        ),
        (
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {"input": {"format": {"type": "audio/flac"}}},
                    },
                }
            ),
            "invalid_value",
            "format",
        ),
        (
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"output": {"voice": "nobody"}}},
                }
            ),
            "invalid_request_error",
            "unknown voice",
        ),
        ('{"type": "response.cancel"}', "response_cancel_not_active", "no active response"),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty", "100 ms"),
        (
            '{"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0,'
            ' "audio_end_ms": 10}',
            "invalid_request_error",
            "item_x",
        ),
    ],
)
async def test_bad_input_gets_error_and_connection_stays_up(
    server: ServerProcess, message: str, code: str, fragment: str
) -> None:
    async with connect(f"{server.ws_base}/realtime", max_size=None) as ws:
        await next_event(ws, "session.created")
        await ws.send(message)
        error = (await next_event(ws, "error"))["error"]
        assert error["code"] == code
        assert fragment in error["message"]
        await assert_still_serving(ws)


async def test_over_long_message_is_refused_with_the_limit(server: ServerProcess) -> None:
    limit = 4 * 1024 * 1024  # the default max_message_bytes
    audio = base64.b64encode(b"\0" * (limit // 4 * 3 + 30)).decode()
    async with connect(f"{server.ws_base}/realtime", max_size=None) as ws:
        await next_event(ws, "session.created")
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        error = (await next_event(ws, "error"))["error"]
        assert error["code"] == "message_too_large"
        assert f"limit of {limit} bytes" in error["message"]
        await assert_still_serving(ws)


async def test_client_vanishing_mid_response_frees_everything(server: ServerProcess) -> None:
    async with connect(f"{server.ws_base}/realtime") as ws:
        await next_event(ws, "session.created")
        await ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "Tell me a long story."}],
                    },
                }
            )
        )
        await ws.send(json.dumps({"type": "response.create"}))
        await next_event(ws, "response.output_audio.delta", timeout=60)
        busy = server.health()
        assert busy["active_sessions"] >= 1
        assert busy["session_tasks"] >= 1
    # The socket is closed with the response still streaming.
    async with asyncio.timeout(15):
        while True:
            health = server.health()
            if (
                health["active_sessions"] == 0
                and health["session_tasks"] == 0
                and not any(health["model_queues"].values())
            ):
                break
            await asyncio.sleep(0.1)
