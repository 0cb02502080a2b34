"""Whisper on short windows: which window an utterance gets, and that long turns stay right."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.conftest import Clip
from voice.bench.wer import word_error_rate
from voice.stt import (
    STT_SAMPLE_RATE,
    SttOptions,
    Transcript,
    WhisperSTT,
    default_whisper_path,
    repeats,
    repeats_clause,
)


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT(default_whisper_path(), window_s=8.0)


def samples(seconds: float) -> int:
    return int(seconds * STT_SAMPLE_RATE)


def test_utterances_get_the_next_multiple_of_the_window_step(stt: WhisperSTT) -> None:
    assert stt.window_for(samples(0.5)) == 8.0
    assert stt.window_for(samples(7.99)) == 8.0
    assert stt.window_for(samples(8.0)) == 8.0
    assert stt.window_for(samples(8.01)) == 16.0
    assert stt.window_for(samples(23.9)) == 24.0
    assert stt.window_for(samples(24.5)) is None  # 32 s would exceed Whisper's 30 s
    assert stt.window_for(samples(31.0)) is None


def test_window_step_zero_always_uses_whisper_segmentation() -> None:
    padded = WhisperSTT(default_whisper_path(), window_s=0)
    assert padded.window_for(samples(3.0)) is None
    padded.close()


async def test_a_ten_second_turn_in_a_sixteen_second_window(
    stt: WhisperSTT, speech: dict[str, Clip]
) -> None:
    clip = speech["ljspeech_LJ001-0003"]
    audio = np.concatenate([np.zeros(samples(0.3)), clip.samples]).astype(np.float32)
    assert stt.window_for(len(audio)) == 16.0
    transcript = await stt.transcribe(audio)
    assert word_error_rate(clip.transcript, transcript.text) <= 0.2, transcript.text
    assert transcript.confident()


def test_token_loops_are_recognised() -> None:
    y, dash, he, was = 88, 12, 679, 373
    assert repeats([he, was, *[y, dash] * 4])  # "He was y-y-y-y-"
    assert repeats([he, y, y, y, y])
    assert not repeats([he, was, y, dash, y, dash, y, dash])  # three times is not a loop
    assert not repeats([he, was, y, dash, he, was])


def test_a_clause_said_twice_is_a_loop() -> None:
    fox = [383, 1310, 21831, 4499, 284, 14936]  # "The little fox learned to sail"
    middle = [13, 1375, 12606, 262, 13546]
    assert repeats_clause([*fox, *middle, *fox])
    assert repeats_clause([*fox, *fox])
    assert not repeats_clause([*fox, *middle, *fox[:5]])  # five tokens again is not
    assert not repeats_clause([7] * 11)  # overlapping runs are the other rule's job


def test_a_looping_window_decode_is_transcribed_again_by_faster_whisper(
    stt: WhisperSTT, speech: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = speech["librivox_sense_sensibility_0880"]
    calls: list[str] = []
    window, segments = stt._transcribe_window, stt._transcribe_segments

    def looping_window(*args: Any) -> tuple[Transcript, bool]:
        calls.append("window")
        transcript, _ = window(*args)
        return transcript, True  # as if it had looped

    def counted_segments(*args: Any) -> Transcript:
        calls.append("segments")
        return segments(*args)

    monkeypatch.setattr(stt, "_transcribe_window", looping_window)
    monkeypatch.setattr(stt, "_transcribe_segments", counted_segments)
    transcript = stt._transcribe_sync(clip.samples, SttOptions())
    assert calls == ["window", "segments"]
    assert word_error_rate(clip.transcript, transcript.text) <= 0.3, transcript.text
