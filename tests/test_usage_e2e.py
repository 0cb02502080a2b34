"""Fair use on a real server with the real models: a user's daily allowance of responses
is reported as it goes, the call that reaches it hears the goodbye and ends politely, a new
call is refused with 429, and ``GET /v1/users/me/usage`` and ``/metrics`` tell the same."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerProcess, start_server
from tests.realtime_helpers import realtime, say_text
from tests.test_load_limits import refused_handshake

pytestmark = pytest.mark.e2e

KEY = "vk_usage_test_carol"
GOODBYE = "We have talked a lot today. Let us continue tomorrow."


@pytest.fixture(scope="module")
def limited(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    llm = server.health()["models"]["llm"]
    running = start_server(
        tmp_path_factory.mktemp("usage"),
        VOICE_API_KEYS=json.dumps({KEY: "carol", "vk_usage_test_dave": "dave"}),
        VOICE_DAILY_RESPONSES="5",
        VOICE_USAGE_LIMITS=json.dumps({"carol": {"responses": 2}}),
        VOICE_USAGE_LIMIT_MESSAGE=GOODBYE,
        VOICE_LLM_BASE_URL=llm["base_url"],
        VOICE_LLM_MODEL=llm["model"],
    )
    yield running
    running.stop()


def get(server: ServerProcess, path: str, key: str = KEY) -> Any:
    request = urllib.request.Request(f"{server.http}{path}",
                                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    return body if path == "/metrics" else json.loads(body)


async def test_the_call_that_reaches_the_limit_ends_politely(limited: ServerProcess) -> None:
    async with realtime(limited.ws_base, KEY) as log:
        await say_text(log, "Say hi.", max_output_tokens=12)
        await log.wait_for("response.done", timeout=90)
        first = await log.wait_for("rate_limits.updated")
        assert first.rate_limits[0].name == "requests"
        assert first.rate_limits[0].limit == 2 and first.rate_limits[0].remaining == 1
        await say_text(log, "Say bye.", max_output_tokens=12)
        error = await log.wait_for("error", timeout=90)
        assert error.error.code == "usage_limit_reached"
        assert "2 responses" in error.error.message
        goodbye = await log.wait_for(
            "response.done",
            lambda e: e.response.output[0].content[0].transcript == GOODBYE,
            timeout=90,
        )
        assert log.of_type("response.output_audio.delta")[-1].response_id == goodbye.response.id
        socket = log.connection._connection  # the SDK's websocket, to read how it closed
        await asyncio.wait_for(socket.wait_closed(), 30)
        assert socket.close_code == 1000
        assert socket.close_reason == "daily usage limit reached"

    status, body = await refused_handshake(limited, KEY)
    assert status == 429 and body["error"]["code"] == "usage_limit_reached"
    assert "00:00 UTC" in body["error"]["message"]

    usage = get(limited, "/v1/users/me/usage")
    assert usage["used"]["responses"] == 3  # the goodbye was spoken too
    assert usage["limits"]["responses"] == 2 and usage["limit_reached"]
    assert usage["used"]["audio_out_seconds"] > 1.0
    other = get(limited, "/v1/users/me/usage", key="vk_usage_test_dave")
    assert other["used"]["responses"] == 0 and other["limits"]["responses"] == 5

    metrics = get(limited, "/metrics")
    assert re.search(r'^voice_usage_limit_reached_total\{when="connect"\} 1\.0$', metrics, re.M)
    assert re.search(r'^voice_usage_limit_reached_total\{when="call"\} 1\.0$', metrics, re.M)
    assert re.search(r"^voice_usage_responses_total 3\.0$", metrics, re.M)
    assert "carol" not in metrics  # totals only, never a label per user
