"""LiveKit Agents' OpenAI plugin (PyPI ``livekit-plugins-openai``) against a real server.

``realtime.RealtimeModel()`` with its defaults (voice ``marin``, ``semantic_vad``,
``gpt-4o-mini-transcribe``), only ``base_url`` and ``api_key`` given, and its
``RealtimeSession`` used directly (no LiveKit room or server: nothing else is contacted).
"""

from __future__ import annotations

import asyncio

import pytest

from tests import client_scenarios as scenarios
from tests.client_drivers import LiveKitDriver
from tests.conftest import Clip, ServerProcess
from voice.audio import Float32Array

pytestmark = pytest.mark.e2e


async def test_default_session_accepted(server: ServerProcess) -> None:
    async with LiveKitDriver.connect(server.http + "/v1", server.api_key) as driver:
        await scenarios.default_session_accepted(driver)


async def test_spoken_turn(server: ServerProcess, speech: dict[str, Clip]) -> None:
    async with LiveKitDriver.connect(server.http + "/v1", server.api_key) as driver:
        await scenarios.spoken_turn(driver, speech["ps_goforward"])
        assert "generation_created" in driver.client_events, driver.client_events


async def test_push_to_talk(server: ServerProcess, speech: dict[str, Clip]) -> None:
    async with LiveKitDriver.connect(server.http + "/v1", server.api_key, ptt=True) as driver:
        await scenarios.push_to_talk(driver, speech["ps_forever_input_2"])


async def test_barge_in(server: ServerProcess, speech: dict[str, Clip]) -> None:
    async with LiveKitDriver.connect(server.http + "/v1", server.api_key) as driver:
        await scenarios.barge_in(driver, speech["ps_goforward"])
        assert "input_speech_started" in driver.client_events, driver.client_events


async def test_backchannel(server: ServerProcess, mm_hmm: Float32Array) -> None:
    async with LiveKitDriver.connect(server.http + "/v1", server.api_key) as driver:
        await scenarios.backchannel(driver, mm_hmm)


async def test_generate_reply_is_matched_to_its_response(server: ServerProcess) -> None:
    """What ``AgentSession.generate_reply()`` awaits: the generation of *its* request."""
    async with LiveKitDriver.connect(server.http + "/v1", server.api_key) as driver:
        await scenarios.settle(driver)
        await driver.say_text("Say hello.")
        created = await driver.server.wait_for("response.created", timeout=30)
        assert driver.generation is not None
        generation = await asyncio.wait_for(asyncio.shield(driver.generation), timeout=15)
        assert generation.user_initiated
        assert generation.response_id == created["response"]["id"]
