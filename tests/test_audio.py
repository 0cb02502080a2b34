"""Tests for voice.audio: sample formats, G.711, codecs, resampling, levels, WAV reading."""

from __future__ import annotations

import sys
import warnings
import wave
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from voice.audio import (
    AudioCodec,
    AudioFormatError,
    Float32Array,
    StreamResampler,
    alaw_to_float,
    codec_for,
    float_to_alaw,
    float_to_pcm16,
    float_to_ulaw,
    pcm16_to_float,
    read_wav_mono,
    resample,
    rms_dbfs,
    ulaw_to_float,
)

SPEECH_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "speech"

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_INT16_BYTES = ALL_INT16.astype("<i2").tobytes()
ALL_CODES = bytes(range(256))


def sine(freq: float, rate: int, seconds: float, amplitude: float = 1.0) -> Float32Array:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(samples: Float32Array, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(freqs[int(np.argmax(spectrum))])


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    if sys.version_info >= (3, 13):
        pytest.skip("audioop was removed in Python 3.13")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop as module
    return module


# --- PCM16 -------------------------------------------------------------------------------------


def test_pcm16_round_trip_is_exact_for_all_values() -> None:
    samples = pcm16_to_float(ALL_INT16_BYTES)
    assert samples.dtype == np.float32
    assert samples.min() == -1.0
    assert samples.max() < 1.0
    assert float_to_pcm16(samples) == ALL_INT16_BYTES


def test_pcm16_is_little_endian() -> None:
    assert pcm16_to_float(b"\x00\x40").tolist() == [0.5]
    assert float_to_pcm16(np.array([0.5, -0.5], dtype=np.float32)) == b"\x00\x40\x00\xc0"


def test_float_to_pcm16_clips_and_rounds() -> None:
    samples = np.array([2.0, 1.0, -1.0, -3.0, 0.4 / 32768, 0.6 / 32768], dtype=np.float32)
    decoded = np.frombuffer(float_to_pcm16(samples), dtype="<i2").tolist()
    assert decoded == [32767, 32767, -32768, -32768, 0, 1]


def test_pcm16_empty() -> None:
    assert pcm16_to_float(b"").size == 0
    assert float_to_pcm16(np.zeros(0, dtype=np.float32)) == b""


def test_pcm16_odd_length_is_rejected() -> None:
    with pytest.raises(
        AudioFormatError, match="PCM16 audio must have an even number of bytes, got 3"
    ):
        pcm16_to_float(b"\x00\x01\x02")


# --- G.711 -------------------------------------------------------------------------------------


def test_ulaw_encode_matches_audioop_for_all_int16(audioop: ModuleType) -> None:
    expected = audioop.lin2ulaw(ALL_INT16_BYTES, 2)
    assert float_to_ulaw(pcm16_to_float(ALL_INT16_BYTES)) == expected


def test_alaw_encode_matches_audioop_for_all_int16(audioop: ModuleType) -> None:
    expected = audioop.lin2alaw(ALL_INT16_BYTES, 2)
    assert float_to_alaw(pcm16_to_float(ALL_INT16_BYTES)) == expected


def test_ulaw_decode_matches_audioop_for_all_codes(audioop: ModuleType) -> None:
    expected = audioop.ulaw2lin(ALL_CODES, 2)
    decoded = ulaw_to_float(ALL_CODES)
    assert decoded.dtype == np.float32
    assert float_to_pcm16(decoded) == expected


def test_alaw_decode_matches_audioop_for_all_codes(audioop: ModuleType) -> None:
    expected = audioop.alaw2lin(ALL_CODES, 2)
    decoded = alaw_to_float(ALL_CODES)
    assert decoded.dtype == np.float32
    assert float_to_pcm16(decoded) == expected


@pytest.mark.parametrize(
    ("encode", "decode", "unstable_codes"),
    [(float_to_ulaw, ulaw_to_float, {0x7F}), (float_to_alaw, alaw_to_float, set())],
    ids=["ulaw", "alaw"],
)
def test_g711_round_trip(
    encode: Callable[[Float32Array], bytes],
    decode: Callable[[bytes], Float32Array],
    unstable_codes: set[int],
) -> None:
    # Every code decodes to a value that encodes back to the same code, except
    # mu-law's negative zero (0x7f), which re-encodes as positive zero (0xff)...
    codes = encode(decode(ALL_CODES))
    changed = {c for c, r in zip(ALL_CODES, codes, strict=True) if c != r}
    assert changed == unstable_codes
    # ...and a signal survives with the ~38 dB SNR expected of 8-bit companding.
    signal = sine(440, 8000, 0.5, amplitude=0.5)
    decoded = decode(encode(signal))
    assert len(encode(signal)) == len(signal)
    noise = decoded - signal
    snr_db = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
    assert snr_db > 33


# --- Codecs ------------------------------------------------------------------------------------


def test_codec_defaults() -> None:
    assert codec_for("audio/pcm") == AudioCodec("audio/pcm", 24000)
    assert codec_for("audio/pcmu") == AudioCodec("audio/pcmu", 8000)
    assert codec_for("audio/pcma") == AudioCodec("audio/pcma", 8000)
    assert codec_for("audio/pcm", 16000).sample_rate == 16000


def test_codec_sizes_and_durations() -> None:
    pcm = codec_for("audio/pcm")
    assert pcm.bytes_per_second == 48000
    assert pcm.duration_ms(2400) == pytest.approx(50.0)
    ulaw = codec_for("audio/pcmu")
    assert ulaw.bytes_per_second == 8000
    assert ulaw.duration_ms(160) == pytest.approx(20.0)


@pytest.mark.parametrize("name", ["audio/pcm", "audio/pcmu", "audio/pcma"])
def test_codec_round_trip(name: str) -> None:
    codec = codec_for(name)
    signal = sine(300, codec.sample_rate, 0.1, amplitude=0.3)
    encoded = codec.encode(signal)
    assert len(encoded) == len(signal) * codec.bytes_per_second // codec.sample_rate
    assert codec.duration_ms(len(encoded)) == pytest.approx(100.0)
    np.testing.assert_allclose(codec.decode(encoded), signal, atol=0.01)


def test_codec_for_rejects_unknown_format() -> None:
    with pytest.raises(AudioFormatError) as info:
        codec_for("audio/mp3")
    assert str(info.value) == (
        "unsupported audio format 'audio/mp3'; supported: audio/pcm, audio/pcmu, audio/pcma"
    )


@pytest.mark.parametrize(
    ("name", "rate", "message"),
    [
        ("audio/pcm", 12345, "unsupported sample rate 12345 for audio/pcm"),
        ("audio/pcmu", 16000, "audio/pcmu requires a sample rate of 8000, got 16000"),
        ("audio/pcma", 24000, "audio/pcma requires a sample rate of 8000, got 24000"),
    ],
)
def test_codec_for_rejects_unsupported_rate(name: str, rate: int, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        codec_for(name, rate)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_codec_for_accepts_pcm_rates(rate: int) -> None:
    assert codec_for("audio/pcm", rate).bytes_per_second == 2 * rate


def test_codec_constructor_validates() -> None:
    with pytest.raises(AudioFormatError):
        AudioCodec("audio/pcmu", 24000)


# --- Resampling --------------------------------------------------------------------------------


def test_stream_resampler_matches_one_shot_with_random_chunks() -> None:
    signal = sine(440, 24000, 1.0, amplitude=0.8)
    expected = resample(signal, 24000, 16000)
    assert expected.dtype == np.float32
    assert abs(len(expected) - 16000) <= 2

    rng = np.random.default_rng(1234)
    resampler = StreamResampler(24000, 16000)
    pieces: list[Float32Array] = []
    start = 0
    while start < len(signal):
        size = int(rng.integers(0, 1500))  # includes empty chunks
        pieces.append(resampler.process(signal[start : start + size]))
        start += size
    pieces.append(resampler.flush())
    streamed = np.concatenate(pieces)

    assert streamed.dtype == np.float32
    assert abs(len(streamed) - len(expected)) <= 4
    n = min(len(streamed), len(expected))
    np.testing.assert_allclose(streamed[:n], expected[:n], atol=1e-4)
    assert dominant_frequency(streamed, 16000) == pytest.approx(440, abs=2)
    # No clicks at chunk boundaries: sample-to-sample steps stay within the sine's slope.
    max_step = 0.8 * 2 * np.pi * 440 / 16000
    assert np.max(np.abs(np.diff(streamed[100:-100]))) < 1.1 * max_step


def test_stream_resampler_upsamples() -> None:
    signal = sine(440, 8000, 0.5)
    resampler = StreamResampler(8000, 24000)
    out = np.concatenate([resampler.process(c) for c in np.array_split(signal, 7)])
    out = np.concatenate([out, resampler.flush()])
    assert abs(len(out) - 3 * len(signal)) <= 4
    assert dominant_frequency(out, 24000) == pytest.approx(440, abs=3)


def test_stream_resampler_can_be_reused_after_flush() -> None:
    signal = sine(1000, 48000, 0.2)
    resampler = StreamResampler(48000, 24000)
    first = np.concatenate([resampler.process(signal), resampler.flush()])
    second = np.concatenate([resampler.process(signal), resampler.flush()])
    np.testing.assert_array_equal(first, second)


def test_stream_resampler_identity() -> None:
    signal = sine(440, 16000, 0.1)
    resampler = StreamResampler(16000, 16000)
    np.testing.assert_array_equal(resampler.process(signal), signal)
    assert resampler.flush().size == 0
    out = resampler.process(np.array([0.25, -0.5]))
    assert out.dtype == np.float32


def test_resample_identity_and_empty() -> None:
    signal = sine(440, 16000, 0.1)
    np.testing.assert_array_equal(resample(signal, 16000, 16000), signal)
    assert resample(np.zeros(0, dtype=np.float32), 24000, 16000).size == 0


def test_stream_resampler_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        StreamResampler(0, 16000)


# --- Levels ------------------------------------------------------------------------------------


def test_rms_dbfs_of_full_scale_sine() -> None:
    assert rms_dbfs(sine(1000, 48000, 1.0)) == pytest.approx(-3.01, abs=0.02)


def test_rms_dbfs_scales_with_amplitude() -> None:
    assert rms_dbfs(sine(1000, 48000, 1.0, amplitude=0.1)) == pytest.approx(-23.01, abs=0.02)
    assert rms_dbfs(np.ones(100, dtype=np.float32)) == pytest.approx(0.0)


def test_rms_dbfs_of_silence_and_empty() -> None:
    assert rms_dbfs(np.zeros(480, dtype=np.float32)) == -120.0
    assert rms_dbfs(np.zeros(0, dtype=np.float32)) == -120.0
    assert rms_dbfs(np.full(480, 1e-9, dtype=np.float32)) == -120.0


# --- WAV files ---------------------------------------------------------------------------------


def write_wav(path: Path, frames: bytes, *, channels: int, width: int, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)


def test_read_wav_mono_real_clip() -> None:
    clip = SPEECH_DIR / "ps_goforward.wav"
    if not clip.is_file():
        pytest.skip(f"speech clips not available: {clip} is missing")
    samples, rate = read_wav_mono(clip)
    assert rate == 16000
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert len(samples) / rate == pytest.approx(2.79, abs=0.01)  # per manifest.tsv
    assert -1.0 <= samples.min() < samples.max() < 1.0
    assert rms_dbfs(samples) > -50  # speech, not silence


def test_read_wav_mono_downmixes_stereo(tmp_path: Path) -> None:
    left = sine(440, 22050, 0.2, amplitude=0.5)
    right = np.full_like(left, 0.25)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    path = tmp_path / "stereo.wav"
    write_wav(path, float_to_pcm16(interleaved), channels=2, width=2, rate=22050)

    samples, rate = read_wav_mono(path)
    assert rate == 22050
    assert samples.dtype == np.float32
    assert len(samples) == len(left)
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1 / 32768)


def test_read_wav_mono_rejects_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "8bit.wav"
    write_wav(path, bytes([128] * 100), channels=1, width=1, rate=8000)
    with pytest.raises(AudioFormatError, match="only 16-bit PCM WAV is supported, got 8-bit"):
        read_wav_mono(path)


def test_read_wav_mono_rejects_non_wav(tmp_path: Path) -> None:
    path = tmp_path / "not.wav"
    path.write_bytes(b"ID3 this is an mp3, honest")
    with pytest.raises(AudioFormatError, match="unsupported WAV file"):
        read_wav_mono(path)
