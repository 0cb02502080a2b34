"""End to end: the official openai SDK talks to a real server running the real models."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from faster_whisper import WhisperModel

from tests.conftest import Clip, ServerProcess
from tests.realtime_helpers import (
    WIRE_RATE,
    assert_answered,
    realtime,
    response_audio,
    say_text,
    silence,
    stream_audio,
    word_error_rate,
    words,
)
from voice.audio import resample, rms_dbfs
from voice.stt import default_whisper_path

pytestmark = pytest.mark.e2e

#: Whisper tiny.en on a clean read sentence; the measured rate is far below this bound.
TRANSCRIPT_MAX_WER = 0.25
#: Piper speech of model-written text, heard back by the same tiny.en model.
ROUND_TRIP_MAX_WER = 0.5


@pytest.fixture(scope="module")
def whisper() -> WhisperModel:
    """The same STT model as the server's, loaded in the test process to check its audio."""
    return WhisperModel(str(default_whisper_path()), device="cpu", compute_type="int8")


def transcribe(model: WhisperModel, audio_24k: np.ndarray) -> str:
    segments, _ = model.transcribe(
        resample(audio_24k, WIRE_RATE, 16000), language="en", beam_size=1
    )
    return " ".join(segment.text for segment in segments)


async def test_spoken_turn_with_server_vad(
    server: ServerProcess, speech: dict[str, Clip], whisper: WhisperModel
) -> None:
    clip = speech["librivox_sense_sensibility_0880"]
    async with realtime(server.ws_base, server.api_key) as log:
        await log.connection.session.update(
            session={"type": "realtime", "instructions": "Answer in two short sentences."}
        )
        await log.wait_for("session.updated")
        await stream_audio(log.connection, np.concatenate([silence(0.5), clip.samples]))
        await stream_audio(log.connection, silence(1.0))

        started = await log.wait_for("input_audio_buffer.speech_started")
        stopped = await log.wait_for("input_audio_buffer.speech_stopped")
        assert 0 <= started.audio_start_ms < stopped.audio_end_ms
        assert stopped.audio_end_ms / 1000 == pytest.approx(0.5 + clip.seconds, abs=0.6)

        transcription = await log.wait_for("conversation.item.input_audio_transcription.completed")
        assert transcription.item_id == started.item_id
        wer = word_error_rate(clip.transcript, transcription.transcript)
        assert wer <= TRANSCRIPT_MAX_WER, (transcription.transcript, wer)

        done = await log.wait_for("response.done", timeout=90)
        assert done.response.status == "completed"
        audio = response_audio(log, done.response.id)
        assert len(audio) / WIRE_RATE > 0.5
        assert rms_dbfs(audio) > -35.0

        spoken = (await log.wait_for("response.output_audio_transcript.done")).transcript
        assert words(spoken), "the reply has no words"
        heard = transcribe(whisper, audio)
        assert word_error_rate(spoken, heard) <= ROUND_TRIP_MAX_WER, (spoken, heard)


async def test_first_audio_leaves_before_the_reply_is_written(server: ServerProcess) -> None:
    async with realtime(server.ws_base, server.api_key) as log:
        await say_text(
            log,
            "Tell me a short story about a lighthouse keeper, in at least four sentences.",
        )
        done = await log.wait_for("response.done", timeout=120)
        assert_answered(done.response)  # a story may reach the server's token limit
        transcript_deltas = log.of_type("response.output_audio_transcript.delta")
        assert len(transcript_deltas) >= 2, "expected a reply of several clauses"
        first_audio = log.index(log.of_type("response.output_audio.delta")[0])
        # Audio of the first clause was sent before later clauses existed.
        assert first_audio < log.index(transcript_deltas[-1])


async def test_push_to_talk(server: ServerProcess, speech: dict[str, Clip]) -> None:
    clip = speech["ps_forever_input_2"]
    async with realtime(server.ws_base, server.api_key) as log:
        await log.connection.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        updated = await log.wait_for("session.updated")
        assert updated.session.audio.input.turn_detection is None
        await stream_audio(log.connection, clip.samples, realtime_pace=False)
        await asyncio.sleep(0.3)
        assert not log.of_type("input_audio_buffer.speech_started"), "VAD ran in push-to-talk"
        await log.connection.input_audio_buffer.commit()
        committed = await log.wait_for("input_audio_buffer.committed")
        transcription = await log.wait_for("conversation.item.input_audio_transcription.completed")
        assert transcription.item_id == committed.item_id
        assert word_error_rate(clip.transcript, transcription.transcript) <= TRANSCRIPT_MAX_WER
        assert not log.of_type("response.created"), "push-to-talk must wait for response.create"

        await log.connection.response.create()
        done = await log.wait_for("response.done", timeout=90)
        assert done.response.status == "completed"
        assert rms_dbfs(response_audio(log, done.response.id)) > -35.0


async def test_push_to_talk_commit_and_create_back_to_back_answer_the_words(
    server: ServerProcess, speech: dict[str, Clip]
) -> None:
    """What a phone-style app sends on release: commit and response.create at once."""
    clip = speech["ps_forever_input_2"]
    async with realtime(server.ws_base, server.api_key) as log:
        await log.connection.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        await log.wait_for("session.updated")
        await stream_audio(log.connection, clip.samples, realtime_pace=False)
        await log.connection.input_audio_buffer.commit()
        await log.connection.response.create()
        done = await log.wait_for("response.done", timeout=90)
        types = [event.type for event in log.events]
        completed = types.index("conversation.item.input_audio_transcription.completed")
        assert completed < types.index("response.created"), "the reply came before the words"
        assert done.response.status == "completed"
        usage = done.response.usage
        assert usage is not None and usage.output_tokens and usage.output_tokens > 0


async def test_barge_in_stops_audio_and_truncates_history(
    server: ServerProcess, speech: dict[str, Clip]
) -> None:
    clip = speech["ps_goforward"]
    async with realtime(server.ws_base, server.api_key) as log:
        await say_text(log, "Tell me a long story about a dragon and a baker, with many details.")
        first = await log.wait_for("response.output_audio.delta", timeout=60)
        response_id = first.response_id

        # The user talks over the reply, in real time.
        await stream_audio(log.connection, np.concatenate([clip.samples, silence(1.0)]))
        started = await log.wait_for("input_audio_buffer.speech_started")
        done = await log.wait_for("response.done", lambda e: e.response.id == response_id)
        assert log.index(started) < log.index(done)
        assert done.response.status == "cancelled"
        assert done.response.status_details.reason == "turn_detected"

        # Nothing of the interrupted response is sent after it was cancelled.
        later = log.events[log.index(done) :]
        assert not [
            e for e in later if e.type.startswith("response.output_audio") and
            getattr(e, "response_id", None) == response_id
        ]  # fmt: skip

        # The history keeps only what the user can have heard: less than what was sent.
        sent_text = "".join(
            e.delta
            for e in log.of_type("response.output_audio_transcript.delta")
            if e.response_id == response_id
        )
        kept = (
            await log.wait_for(
                "response.output_audio_transcript.done", lambda e: e.response_id == response_id
            )
        ).transcript
        assert len(words(kept)) < len(words(sent_text))
        assert words(sent_text)[: len(words(kept))] == words(kept)
        truncated = await log.wait_for("conversation.item.truncated")
        assert truncated.item_id == first.item_id

        await log.connection.conversation.item.retrieve(item_id=first.item_id)
        retrieved = await log.wait_for("conversation.item.retrieved")
        assert retrieved.item.content[0].transcript == kept
        assert retrieved.item.status == "incomplete"

        # The user's turn is answered next.
        transcription = await log.wait_for("conversation.item.input_audio_transcription.completed")
        assert word_error_rate(clip.transcript, transcription.transcript) <= 0.5
        answer = await log.wait_for(
            "response.done", lambda e: e.response.id != response_id, timeout=90
        )
        assert_answered(answer.response)  # after a story, the answer may reach the token limit
