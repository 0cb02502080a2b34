"""The server's own audio API, through the official ``openai`` SDK against a real server:
real clips transcribed, real speech synthesized and streamed, in every format."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import openai
import pytest

from tests.conftest import SPEECH_DIR, Clip, ServerProcess
from voice.audio import pcm16_to_float
from voice.audio_files import decode_audio
from voice.bench.wer import word_error_rate
from voice.remote_speech import wav_bytes

pytestmark = pytest.mark.e2e

SENTENCES = "The little fox learned to sail. She crossed the lake at dawn, and the wind was kind."


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http}/v1", api_key=server.api_key, max_retries=0)


def clip_path(clip: Clip) -> str:
    return str(SPEECH_DIR / clip.name)


def test_a_real_clip_is_transcribed(client: openai.OpenAI, speech: dict[str, Clip]) -> None:
    clip = speech["librivox_sense_sensibility_0870"]
    with open(clip_path(clip), "rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert word_error_rate(clip.transcript, result.text) < 0.25, result.text
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == 8  # 7.1 s, rounded up


def test_verbose_json_has_segment_and_word_times(
    client: openai.OpenAI, speech: dict[str, Clip]
) -> None:
    clip = speech["librivox_sense_sensibility_0870"]
    with open(clip_path(clip), "rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )  # fmt: skip
    assert result.language == "en"
    assert result.duration == pytest.approx(clip.seconds, abs=0.01)
    assert result.segments and result.words
    assert all(0 <= s.start < s.end <= clip.seconds + 0.5 for s in result.segments)
    starts = [word.start for word in result.words]
    assert starts == sorted(starts) and starts[-1] > clip.seconds / 2
    assert word_error_rate(clip.transcript, " ".join(w.word for w in result.words)) < 0.25


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_formats(client: openai.OpenAI, speech: dict[str, Clip], fmt: str) -> None:
    clip = speech["librivox_sense_sensibility_0880"]
    with open(clip_path(clip), "rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format=fmt
        )
    assert isinstance(result, str)
    assert "young man" in result.lower()
    if fmt == "srt":
        assert result.startswith("1\n00:00:00,000 --> 00:00:0")
    if fmt == "vtt":
        assert result.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:0")


def test_speech_streams_clause_by_clause_and_says_the_words(client: openai.OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SENTENCES, response_format="pcm"
    ) as response:
        assert response.headers["content-type"] == "audio/pcm"
        pieces = list(response.iter_bytes())
    audio = b"".join(pieces)
    # The first clause was sent on its own, before the rest was synthesized.
    assert len(pieces) > 1 and len(pieces[0]) < len(audio) / 2, [len(p) for p in pieces]
    samples = pcm16_to_float(audio)
    assert 3.0 < len(samples) / 24000 < 12.0
    heard = transcribe(client, samples)
    assert word_error_rate(SENTENCES, heard) < 0.3, heard


@pytest.mark.parametrize("fmt", ["mp3", "wav", "opus", "aac", "flac"])
def test_speech_in_every_format(client: openai.OpenAI, fmt: str) -> None:
    response = client.audio.speech.create(
        model="tts-1", voice="joe", input="Good morning, sailor.", response_format=fmt
    )
    samples = decode_audio(response.content, rate=16000, max_seconds=30)
    assert 0.5 < len(samples) / 16000 < 5.0
    assert np.abs(samples).max() > 0.05


def test_speech_without_a_format_is_mp3(client: openai.OpenAI) -> None:
    response = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.")
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert decode_audio(response.content, rate=16000, max_seconds=30).size > 8000


def test_speech_as_server_sent_events(server: ServerProcess) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": SENTENCES, "stream_format": "sse",
            "response_format": "pcm"}  # fmt: skip
    request = urllib.request.Request(
        f"{server.http}/v1/audio/speech", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {server.api_key}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        lines = response.read().decode().split("\n\n")
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line.strip()]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"]
    assert len(events) > 2


def test_bad_requests_say_what_is_wrong(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"unknown voice 'nobody'.*joe"):
        client.audio.speech.create(model="tts-1", voice="nobody", input="Hi.")
    with pytest.raises(openai.BadRequestError, match="speed"):
        client.audio.speech.create(model="tts-1", voice="joe", input="Hi.", speed=9)
    with pytest.raises(openai.BadRequestError, match="not audio"):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"not a wav file"))
    with pytest.raises(openai.BadRequestError, match="English-only"):
        client.audio.transcriptions.create(model="whisper-1", file=wav_file(), language="fr")


def test_the_audio_api_needs_a_key_and_is_counted(server: ServerProcess) -> None:
    anonymous = openai.OpenAI(base_url=f"{server.http}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.audio.speech.create(model="tts-1", voice="joe", input="Hi.")
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'voice_audio_api_requests_total{route="speech"}' in metrics
    assert 'voice_audio_api_requests_total{route="transcriptions"}' in metrics


def wav_file(samples: np.ndarray | None = None, rate: int = 16000) -> tuple[str, bytes]:
    samples = np.zeros(rate, dtype=np.float32) if samples is None else samples
    return "speech.wav", wav_bytes(samples.astype(np.float32), rate)


def transcribe(client: openai.OpenAI, samples_24k: np.ndarray) -> str:
    return client.audio.transcriptions.create(
        model="whisper-1", file=wav_file(samples_24k, 24000)
    ).text


def test_a_listener_that_goes_away_stops_the_synthesis(
    client: openai.OpenAI, server: ServerProcess
) -> None:
    story = " ".join(["The fox sailed on across the wide grey lake."] * 40)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="joe", input=story, response_format="pcm"
    ) as response:
        first = next(response.iter_bytes())
    assert first
    deadline = time.monotonic() + 5
    while server.health()["model_queues"]["tts"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.health()["model_queues"]["tts"] == 0, "the synthesis went on unheard"
    # 40 sentences take about 20 s to synthesize here: the server stopped long before that.
    assert "Traceback" not in server.log()
