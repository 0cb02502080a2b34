"""Audio sample formats, G.711 codecs, resampling and levels.

Everything here is pure computation on numpy arrays except :func:`read_wav_mono`.
Samples are mono float32 in [-1, 1); wire audio is bytes in one of the OpenAI
Realtime formats (``audio/pcm``, ``audio/pcmu``, ``audio/pcma``).
"""

from __future__ import annotations

import math
import os
import wave
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr
from numpy.typing import NDArray

Float32Array = NDArray[np.float32]
"""Mono audio samples, nominally in [-1, 1)."""

Int16Array = NDArray[np.int16]

PCM_FORMAT = "audio/pcm"
PCMU_FORMAT = "audio/pcmu"
PCMA_FORMAT = "audio/pcma"

PCM_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
"""Sample rates accepted for ``audio/pcm``."""

DEFAULT_PCM_RATE = 24000
G711_SAMPLE_RATE = 8000

SILENCE_DBFS = -120.0
"""Level reported by :func:`rms_dbfs` for silence or empty input."""

_INT16_SCALE = 32768.0
_PCM16_DTYPE = np.dtype("<i2")


class AudioFormatError(ValueError):
    """Audio data or a format description that this module cannot handle."""


# --- Linear PCM ------------------------------------------------------------------------------


def _int16_to_float(values: Int16Array) -> Float32Array:
    return values.astype(np.float32) / np.float32(_INT16_SCALE)


def _float_to_int16(samples: Float32Array) -> Int16Array:
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * np.float32(_INT16_SCALE))
    clipped: Int16Array = np.clip(scaled, -32768, 32767).astype(np.int16)
    return clipped


def pcm16_to_float(data: bytes) -> Float32Array:
    """Decode little-endian signed 16-bit PCM to float32 samples in [-1, 1)."""
    if len(data) % 2:
        raise AudioFormatError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    return _int16_to_float(np.frombuffer(data, dtype=_PCM16_DTYPE).astype(np.int16))


def float_to_pcm16(samples: Float32Array) -> bytes:
    """Encode float samples as little-endian signed 16-bit PCM.

    Samples are scaled by 32768 and clipped to the int16 range, so
    ``float_to_pcm16(pcm16_to_float(b)) == b`` for every PCM16 buffer ``b``.
    """
    return _float_to_int16(samples).astype(_PCM16_DTYPE).tobytes()


# --- G.711 (ITU-T G.711, bit-compatible with the classic Sun/CCITT reference code) ------------

_ULAW_BIAS = 0x84
# Segment end points (inclusive) of the 14-bit mu-law and 13-bit A-law magnitudes.
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _ulaw_decode_table() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int16)


def _alaw_decode_table() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    quant = (a & 0x0F) << 4
    magnitude = np.where(seg == 0, quant + 8, (quant + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_TO_INT16 = _ulaw_decode_table()
_ALAW_TO_INT16 = _alaw_decode_table()
_ULAW_TO_FLOAT = _int16_to_float(_ULAW_TO_INT16)
_ALAW_TO_FLOAT = _int16_to_float(_ALAW_TO_INT16)


def _int16_to_ulaw(values: Int16Array) -> NDArray[np.uint8]:
    pcm = values.astype(np.int32) >> 2  # 14-bit two's complement
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.abs(pcm) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, magnitude, side="left")
    in_range = seg < 8
    seg = np.minimum(seg, 7)
    code = np.where(in_range, (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F), 0x7F)
    return (code ^ mask).astype(np.uint8)


def _int16_to_alaw(values: Int16Array) -> NDArray[np.uint8]:
    pcm = values.astype(np.int32) >> 3  # 13-bit two's complement
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, magnitude, side="left")
    in_range = seg < 8
    seg = np.minimum(seg, 7)
    quant = (magnitude >> np.maximum(seg, 1)) & 0x0F
    code = np.where(in_range, (seg << 4) | quant, 0x7F)
    return (code ^ mask).astype(np.uint8)


def ulaw_to_float(data: bytes) -> Float32Array:
    """Decode G.711 mu-law bytes to float32 samples."""
    return _ULAW_TO_FLOAT[np.frombuffer(data, dtype=np.uint8)]


def float_to_ulaw(samples: Float32Array) -> bytes:
    """Encode float samples as G.711 mu-law bytes."""
    return _int16_to_ulaw(_float_to_int16(samples)).tobytes()


def alaw_to_float(data: bytes) -> Float32Array:
    """Decode G.711 A-law bytes to float32 samples."""
    return _ALAW_TO_FLOAT[np.frombuffer(data, dtype=np.uint8)]


def float_to_alaw(samples: Float32Array) -> bytes:
    """Encode float samples as G.711 A-law bytes."""
    return _int16_to_alaw(_float_to_int16(samples)).tobytes()


# --- Wire formats ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _CodecSpec:
    bytes_per_sample: int
    decode: Callable[[bytes], Float32Array]
    encode: Callable[[Float32Array], bytes]


_CODECS: dict[str, _CodecSpec] = {
    PCM_FORMAT: _CodecSpec(2, pcm16_to_float, float_to_pcm16),
    PCMU_FORMAT: _CodecSpec(1, ulaw_to_float, float_to_ulaw),
    PCMA_FORMAT: _CodecSpec(1, alaw_to_float, float_to_alaw),
}


@dataclass(frozen=True)
class AudioCodec:
    """A mono wire audio format: Realtime API format name plus sample rate.

    Construction validates the pair; use :func:`codec_for` to get the default rate.
    """

    name: str
    sample_rate: int

    def __post_init__(self) -> None:
        if self.name not in _CODECS:
            supported = ", ".join(_CODECS)
            raise AudioFormatError(
                f"unsupported audio format {self.name!r}; supported: {supported}"
            )
        if self.name == PCM_FORMAT:
            if self.sample_rate not in PCM_SAMPLE_RATES:
                rates = ", ".join(str(r) for r in PCM_SAMPLE_RATES)
                raise AudioFormatError(
                    f"unsupported sample rate {self.sample_rate} for {self.name}; "
                    f"supported: {rates}"
                )
        elif self.sample_rate != G711_SAMPLE_RATE:
            raise AudioFormatError(
                f"{self.name} requires a sample rate of {G711_SAMPLE_RATE}, got {self.sample_rate}"
            )

    @property
    def bytes_per_sample(self) -> int:
        """Bytes per encoded sample (2 for PCM16, 1 for G.711)."""
        return _CODECS[self.name].bytes_per_sample

    @property
    def bytes_per_second(self) -> int:
        """Encoded bytes per second of audio."""
        return self.sample_rate * self.bytes_per_sample

    def decode(self, data: bytes) -> Float32Array:
        """Decode wire bytes to float32 samples at ``sample_rate``."""
        return _CODECS[self.name].decode(data)

    def encode(self, samples: Float32Array) -> bytes:
        """Encode float samples at ``sample_rate`` to wire bytes."""
        return _CODECS[self.name].encode(samples)

    def duration_ms(self, num_bytes: int) -> float:
        """Duration in milliseconds of ``num_bytes`` of encoded audio."""
        return num_bytes * 1000.0 / self.bytes_per_second


def codec_for(format_type: str, rate: int | None = None) -> AudioCodec:
    """Return the codec for a Realtime API format type.

    ``rate`` defaults to 24000 for ``audio/pcm`` and 8000 for G.711.
    Raises :class:`AudioFormatError` for an unknown type or unsupported rate.
    """
    if rate is None:
        rate = DEFAULT_PCM_RATE if format_type == PCM_FORMAT else G711_SAMPLE_RATE
    return AudioCodec(format_type, rate)


# --- Resampling ------------------------------------------------------------------------------


class StreamResampler:
    """Resample one continuous mono stream chunk by chunk.

    The filter state carries across :meth:`process` calls, so chunk boundaries add no
    clicks and the concatenated output equals a one-shot :func:`resample` of the whole
    stream. Use one instance per stream; :meth:`flush` ends the stream and resets it.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=quality
            )

    def process(self, samples: Float32Array) -> Float32Array:
        """Resample the next chunk; output may lag input by the filter delay."""
        chunk = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return chunk
        out: Float32Array = self._stream.resample_chunk(chunk)
        return out

    def flush(self) -> Float32Array:
        """Return the buffered tail and reset, ready for a new stream."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out: Float32Array = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream.clear()
        return out


def resample(samples: Float32Array, in_rate: int, out_rate: int) -> Float32Array:
    """Resample a complete mono signal in one shot."""
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if in_rate == out_rate:
        return x
    out: Float32Array = soxr.resample(x, in_rate, out_rate, quality="HQ")
    return out


# --- Levels and files ------------------------------------------------------------------------


def rms_dbfs(samples: Float32Array) -> float:
    """RMS level in dBFS (full-scale square wave = 0); -120.0 for silence or empty."""
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms))


def read_wav_mono(path: str | os.PathLike[str]) -> tuple[Float32Array, int]:
    """Read a 16-bit PCM WAV file, downmixed to mono; returns (samples, sample_rate)."""
    try:
        with wave.open(os.fspath(path), "rb") as wav:
            width = wav.getsampwidth()
            channels = wav.getnchannels()
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except wave.Error as exc:
        raise AudioFormatError(f"{os.fspath(path)}: unsupported WAV file: {exc}") from exc
    if width != 2:
        raise AudioFormatError(
            f"{os.fspath(path)}: only 16-bit PCM WAV is supported, got {8 * width}-bit"
        )
    samples = pcm16_to_float(frames)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples, rate
