"""A front end whose Whisper and voices are another ``voice serve``'s, through the OpenAI audio
API: real models on the speech box, a real spoken turn through the front end, and the errors
when the speech box is away."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Clip, ServerProcess, start_server
from tests.realtime_helpers import (
    EventLog,
    realtime,
    response_audio,
    say_text,
    silence,
    stream_audio,
    word_error_rate,
)
from voice.audio import rms_dbfs
from voice.remote_speech import RemoteVoices

pytestmark = pytest.mark.e2e


def front_end_env(box: ServerProcess, tmp: Path, **extra: str) -> dict[str, str]:
    """A front end with no local speech model it could load: the Whisper folder does not
    exist and its only voice preset names a package that is not installed."""
    voices = tmp / "voices"
    voices.mkdir(exist_ok=True)
    (voices / "joe.toml").write_text('package = "no_such_voice_package"\n')
    llm = box.health()["models"]["llm"]
    return {
        "VOICE_STT_MODEL_PATH": str(tmp / "no-whisper-here"),
        "VOICE_VOICES_DIR": str(voices),
        "VOICE_LLM_BASE_URL": llm["base_url"],
        "VOICE_LLM_MODEL": llm["model"],
        **extra,
    }


@pytest.fixture(scope="module")
def front_end(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("front")
    remote = f"{server.http}/v1"
    running = start_server(
        tmp,
        **front_end_env(server, tmp),
        VOICE_STT_BASE_URL=remote, VOICE_STT_API_KEY=server.api_key,
        VOICE_TTS_BASE_URL=remote, VOICE_TTS_API_KEY=server.api_key,
    )  # fmt: skip
    yield running
    running.stop()


def metrics(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as response:
        return response.read().decode()


def counted(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(selector)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_spoken_turn_through_a_front_end_with_remote_speech(
    server: ServerProcess, front_end: ServerProcess, speech: dict[str, Clip]
) -> None:
    assert "no local Whisper" in front_end.log()
    before = metrics(server)
    clip = speech["librivox_sense_sensibility_0880"]
    async with realtime(front_end.ws_base, front_end.api_key) as log:
        await log.connection.session.update(
            session={"type": "realtime", "instructions": "Answer in two short sentences."}
        )
        await log.wait_for("session.updated")
        await stream_audio(log.connection, np.concatenate([silence(0.5), clip.samples]))
        await stream_audio(log.connection, silence(1.0))
        transcription = await log.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=60
        )
        assert word_error_rate(clip.transcript, transcription.transcript) <= 0.25
        done = await log.wait_for("response.done", timeout=90)
        assert done.response.status == "completed", done.response
        audio = response_audio(log, done.response.id)
        assert len(audio) / 24000 > 0.5 and rms_dbfs(audio) > -35.0
    after = metrics(server)
    route = "voice_audio_api_requests_total"
    assert counted(after, route, route="transcriptions") > counted(
        before, route, route="transcriptions"
    )
    assert counted(after, route, route="speech") > counted(before, route, route="speech")


async def test_a_remote_voice_is_played_as_it_streams(server: ServerProcess) -> None:
    """Against the real speech box: the audio of a text of three sentences arrives in
    pieces, the first long before the last (the speaker sends each piece on as it comes)."""
    remote = RemoteVoices(
        f"{server.http}/v1", server.api_key, "tts-1", sample_rate=24000, timeout_s=30,
        max_concurrent=2,
    )  # fmt: skip
    try:
        tts = remote.engine("joe")
        arrivals: list[tuple[float, int]] = []
        started = time.monotonic()
        text = "The fox woke early. She packed her sail and rope. Then she ran to the lake."
        async for piece in tts.stream(text):
            arrivals.append((time.monotonic() - started, piece.size))
        total = sum(size for _, size in arrivals)
        assert 3.0 < total / 24000 < 10.0
        assert len(arrivals) > 1
        first_s, first_size = arrivals[0]
        assert first_size < total / 2
        assert first_s < arrivals[-1][0]
    finally:
        await remote.aclose()


async def failed_turn(log: EventLog, speech: dict[str, Clip]) -> Any:
    """Say a clip; the ``transcription.failed`` event its turn gets."""
    clip = speech["librivox_sense_sensibility_0880"]
    await stream_audio(log.connection, np.concatenate([silence(0.5), clip.samples]))
    await stream_audio(log.connection, silence(1.0))
    return await log.wait_for("conversation.item.input_audio_transcription.failed", timeout=30)


async def test_a_missing_speech_box_is_an_evented_error_and_counted(
    server: ServerProcess, tmp_path: Path, speech: dict[str, Clip]
) -> None:
    away = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    front = start_server(
        tmp_path, **front_end_env(server, tmp_path),
        VOICE_STT_BASE_URL=away, VOICE_TTS_BASE_URL=away, VOICE_STT_TIMEOUT_S="2",
        VOICE_TTS_TIMEOUT_S="2",
    )  # fmt: skip
    try:
        async with realtime(front.ws_base, front.api_key) as log:
            failed = await failed_turn(log, speech)
            assert "127.0.0.1:9" in failed.error.message and "unreachable" in failed.error.message
            await say_text(log, "Say hello.")
            done = await log.wait_for("response.done", timeout=60)
            assert done.response.status == "failed"
            reason = done.response.status_details.error.code
            assert "speech synthesis at http://127.0.0.1:9/v1 is unreachable" in reason
        text = metrics(front)
        name = "voice_remote_speech_errors_total"
        assert counted(text, name, engine="stt", reason="unreachable") >= 1
        assert counted(text, name, engine="tts", reason="unreachable") >= 1
    finally:
        front.stop()


async def test_a_silent_speech_box_times_out_with_a_counted_error(
    server: ServerProcess, tmp_path: Path, speech: dict[str, Clip]
) -> None:
    """A speech box that takes the connection and never answers: the turn fails after
    VOICE_STT_TIMEOUT_S, saying so, and the timeout is counted."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepted by the kernel, never answered
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
    front = start_server(
        tmp_path, **front_end_env(server, tmp_path), VOICE_STT_BASE_URL=url,
        VOICE_STT_TIMEOUT_S="1.5", VOICE_TTS_BASE_URL=f"{server.http}/v1",
        VOICE_TTS_API_KEY=server.api_key,
    )  # fmt: skip
    try:
        async with realtime(front.ws_base, front.api_key) as log:
            failed = await failed_turn(log, speech)
            assert failed.error.code == "remote_timeout"
            assert "did not answer within 1.5 s" in failed.error.message
        name = "voice_remote_speech_errors_total"
        assert counted(metrics(front), name, engine="stt", reason="timeout") >= 1
    finally:
        front.stop()
        silent.close()
