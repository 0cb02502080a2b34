"""The Piper engine with prosody, speaking a delivery plan, and the shared voice library.

Real synthesis with the packaged en_US-joe-medium voice, on short texts. Where audio is
compared, noise is off (noise_scale = noise_w = 0), which makes Piper deterministic.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from voice.audio import Float32Array
from voice.delivery import DeliveryState, Pause, Prosody, Speak, plan_speech
from voice.tts import CoquiTTS, PiperTTS, default_piper_voice, synthesis_config, synthesize_plan
from voice.voices import VoiceLibrary, load_presets

REPO_VOICES = Path(__file__).resolve().parents[1] / "voices"
STILL = Prosody(length_scale=1.0, noise_scale=0.0, noise_w=0.0)
TEXT = "Hello there, how are you?"


@pytest.fixture(scope="module")
def piper() -> Iterator[PiperTTS]:
    tts = PiperTTS(*default_piper_voice())
    yield tts
    tts.close()


def rms(audio: Float32Array) -> float:
    return float(np.sqrt(np.mean(np.square(audio))))


async def test_synthesize_without_prosody_still_works(piper: PiperTTS) -> None:
    audio = await piper.synthesize(TEXT)
    assert audio.dtype == np.float32 and piper.sample_rate == 22050
    assert 0.8 < len(audio) / piper.sample_rate < 3.0
    assert await piper.synthesize("") == pytest.approx(np.zeros(0))


async def test_default_prosody_is_the_models_own(piper: PiperTTS) -> None:
    assert piper.default_prosody == Prosody(length_scale=1.0, noise_scale=0.667, noise_w=0.8)
    assert piper.speaker_count == 1


async def test_slower_prosody_gives_longer_audio(piper: PiperTTS) -> None:
    normal = await piper.synthesize(TEXT, STILL)
    slow = await piper.synthesize(TEXT, replace(STILL, length_scale=1.5))
    fast = await piper.synthesize(TEXT, replace(STILL, length_scale=0.7))
    assert len(slow) > 1.3 * len(normal)
    assert len(fast) < 0.85 * len(normal)


async def test_volume_scales_the_audio(piper: PiperTTS) -> None:
    full = await piper.synthesize(TEXT, STILL)
    half = await piper.synthesize(TEXT, replace(STILL, volume=0.5))
    assert len(half) == len(full)
    assert rms(half) == pytest.approx(0.5 * rms(full), rel=0.01)


def test_prosody_maps_to_piper_synthesis_config() -> None:
    config = synthesis_config(Prosody(1.2, 0.5, 0.6, 0.7, speaker_id=3))
    assert (config.length_scale, config.noise_scale, config.noise_w_scale) == (1.2, 0.5, 0.6)
    assert (config.volume, config.speaker_id) == (0.7, 3)


def test_speaker_on_a_single_speaker_voice_is_refused(piper: PiperTTS) -> None:
    with pytest.raises(ValueError, match="single speaker"):
        piper.resolve_speaker(1)
    with pytest.raises(ValueError, match="no speaker named 'amy'"):
        piper.resolve_speaker("amy")


async def test_plan_pauses_become_silence_of_their_length(piper: PiperTTS) -> None:
    one = await piper.synthesize("One.", STILL)
    two = await piper.synthesize("Two.", STILL)
    audio = await synthesize_plan(piper, [Speak("One.", STILL), Pause(250), Speak("Two.", STILL)])
    gap = round(0.25 * piper.sample_rate)
    assert len(audio) == len(one) + gap + len(two)
    np.testing.assert_array_equal(audio[: len(one)], one)
    assert not audio[len(one) : len(one) + gap].any()
    assert len(await synthesize_plan(piper, [])) == 0
    assert len(await synthesize_plan(piper, [Pause(100)])) == round(0.1 * piper.sample_rate)


async def test_whispered_plan_is_quieter_and_never_reads_the_direction(piper: PiperTTS) -> None:
    plain_plan = plan_speech("I have a secret.", DeliveryState(base=piper.default_prosody))
    whisper_plan = plan_speech(
        "(whispering) I have a secret.", DeliveryState(base=piper.default_prosody)
    )
    assert [s.text for s in whisper_plan if isinstance(s, Speak)] == ["I have a secret."]
    plain = await synthesize_plan(piper, plain_plan)
    whisper = await synthesize_plan(piper, whisper_plan)
    assert rms(whisper) < 0.75 * rms(plain)


async def test_library_shares_the_model_between_presets() -> None:
    library = VoiceLibrary(load_presets(REPO_VOICES), "joe")
    try:
        joe, calm = await library.get("joe"), await library.get("joe-calm")
        assert joe.tts is calm.tts and len(library.engines) == 1
        assert calm.prosody.length_scale == pytest.approx(1 / 0.9)
        assert calm.prosody.noise_scale == 0.55
        audio = await synthesize_plan(calm.tts, plan_speech("Hi. Bye.", calm.delivery_state()))
        assert len(audio) > 0
    finally:
        library.close()


@pytest.mark.skipif(importlib.util.find_spec("TTS") is not None, reason="Coqui is installed")
def test_coqui_engine_without_its_package_says_how_to_install_it(tmp_path: Path) -> None:
    # Only the missing-package path: the Coqui engine itself is not tested here.
    with pytest.raises(RuntimeError, match="pip install coqui-tts"):
        CoquiTTS(tmp_path / "model.pth", tmp_path / "config.json")
