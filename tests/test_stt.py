"""Whisper on short windows: which window an utterance gets, and that long turns stay right."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Clip
from voice.bench.wer import word_error_rate
from voice.stt import STT_SAMPLE_RATE, WhisperSTT, default_whisper_path


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
