"""End to end: a failing chat model fails one reply, says why, and the call goes on.

A real ``voice serve`` talks to a real model through :class:`FaultyChatEndpoint`, or runs
its embedded llama.cpp child, which is killed mid-reply; the client is the official
``openai`` SDK.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Clip, ServerProcess, start_server
from tests.faulty_chat_endpoint import Fault, FaultyChatEndpoint
from tests.realtime_helpers import (
    EventLog,
    assert_answered,
    realtime,
    response_audio,
    say_text,
    silence,
    stream_audio,
)
from tests.test_llm_endpoints import alive

pytestmark = pytest.mark.e2e

#: The faulty server's timeouts: short, yet long enough for a busy 2-core machine, where
#: SmolLM2 may take seconds for its first token and one between the next ones.
FIRST_TOKEN_TIMEOUT_S = 20
STALL_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def faulty_server(
    endpoint: FaultyChatEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    running = start_server(
        tmp_path_factory.mktemp("faulty"),
        VOICE_LLM_BASE_URL=endpoint.base_url,
        VOICE_LLM_MODEL="smollm2",
        VOICE_LLM_FIRST_TOKEN_TIMEOUT_S=str(FIRST_TOKEN_TIMEOUT_S),
        VOICE_LLM_STALL_TIMEOUT_S=str(STALL_TIMEOUT_S),
        VOICE_LLM_MAX_TOKENS="16",  # short replies: the model may be slow on a busy machine
    )
    yield running
    assert running.stop() == 0


async def reply_done(log: EventLog, after: int, timeout: float = 90) -> Any:
    return (await log.wait_for("response.done", after=after, timeout=timeout)).response


def failure_reason(response: Any) -> str:
    assert response.status == "failed", response
    assert response.status_details.type == "failed"
    error = response.status_details.error
    assert error.type == "server_error"
    return str(error.code)


async def text_turn(log: EventLog, text: str = "Tell me about dragons.") -> Any:
    mark = len(log.events)
    await say_text(log, text, output_modalities=["text"])
    return await reply_done(log, mark)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (
            "http_500",
            "the chat model endpoint answered HTTP 500: injected fault: the model crashed",
        ),
        ("reset_mid_stream", "the connection to the chat model broke in the middle of its reply"),
        ("close_mid_stream", "the chat model's stream ended before its reply was finished"),
        ("garbage_json", "the chat model sent a malformed stream chunk (not valid JSON)"),
        ("silent", f"no first token from the chat model within {FIRST_TOKEN_TIMEOUT_S} s"),
        ("stall_mid_stream", f"the chat model sent nothing for {STALL_TIMEOUT_S} s in the middle"),
    ],
)
async def test_faulty_model_fails_the_reply_and_the_call_goes_on(
    faulty_server: ServerProcess, endpoint: FaultyChatEndpoint, fault: Fault, reason: str
) -> None:
    async with realtime(faulty_server.ws_base, faulty_server.api_key) as log:
        endpoint.arm(fault)
        try:
            failed = await text_turn(log)
        finally:
            endpoint.disarm()
        assert f"LLMError: {reason}" in failure_reason(failed)
        assert endpoint.streams(fault), "the fault was not hit"
        assert not log.of_type("error"), "a model fault is not a protocol error"

        answered = await text_turn(log, "Say hello.")
        assert_answered(answered)
        assert answered.output[0].content[0].text.strip()
    assert faulty_server.process.poll() is None


async def test_spoken_turn_over_a_broken_stream_fails_then_the_next_is_answered(
    faulty_server: ServerProcess, endpoint: FaultyChatEndpoint, speech: dict[str, Clip]
) -> None:
    clip = speech["librivox_sense_sensibility_0880"]
    turn = np.concatenate([silence(0.5), clip.samples, silence(1.2)])
    async with realtime(faulty_server.ws_base, faulty_server.api_key) as log:
        endpoint.arm("reset_mid_stream")
        try:
            await stream_audio(log.connection, turn)
            failed = await reply_done(log, 0)
        finally:
            endpoint.disarm()
        assert "broke in the middle of its reply" in failure_reason(failed)

        mark = len(log.events)
        await stream_audio(log.connection, turn)
        answered = await reply_done(log, mark)
        assert_answered(answered)
        assert len(response_audio(log, answered.id)) > 0


# --- the embedded child, killed mid-reply ----------------------------------------------


def wait_for_health(
    server: ServerProcess, condition: Any, timeout: float = 120.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        health = server.health()
        if condition(health):
            return health
        assert time.monotonic() < deadline, f"health never matched: {health}"
        time.sleep(0.1)


async def test_killed_llama_child_is_restarted_and_the_call_goes_on(tmp_path: Path) -> None:
    own = start_server(tmp_path)
    second = None
    try:
        health = own.health()
        assert health["status"] == "ok"
        assert health["llm_server"]["state"] == "running"
        assert health["llm_server"]["restarts"] == 0
        first = health["llm_server"]["pid"]
        assert first == health["llm_server_pid"] and alive(first)

        async with realtime(own.ws_base, own.api_key) as log:
            await limit_reply(log, 1000)  # far more than is written before the kill
            await say_text(
                log,
                "Tell me a very long story about a dragon, with many chapters.",
                output_modalities=["text"],
            )
            await log.wait_for("response.output_text.delta")
            os.kill(first, signal.SIGKILL)  # mid-reply
            failed = await reply_done(log, 0)
            assert "the connection to the chat model broke" in failure_reason(failed)

            health = await asyncio.to_thread(
                wait_for_health,
                own,
                lambda h: (
                    h["llm_server"]["state"] == "running" and h["llm_server"]["restarts"] >= 1
                ),
            )
            assert health["status"] == "ok"
            second = health["llm_server"]["pid"]
            assert second != first and alive(second) and not alive(first)
            assert health["llm_server"]["last_exit"] == "killed by SIGKILL"
            metrics = await asyncio.to_thread(_metrics, own)
            assert "voice_llm_server_restarts_total 1.0" in metrics

            await limit_reply(log, 16)
            answered = await text_turn(log, "Say hello.")
            assert_answered(answered)
            assert answered.output[0].content[0].text.strip()
    finally:
        returncode = own.stop()
    assert returncode == 0
    assert second is not None and not alive(second), "the new LLM server outlived voice serve"
    log_text = own.log()
    assert "killed by SIGKILL" in log_text and "restarted" in log_text


async def limit_reply(log: EventLog, tokens: int) -> None:
    mark = len(log.events)
    await log.connection.session.update(session={"type": "realtime", "max_output_tokens": tokens})
    await log.wait_for("session.updated", after=mark)


def _metrics(server: ServerProcess) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as response:
        return str(response.read().decode())
