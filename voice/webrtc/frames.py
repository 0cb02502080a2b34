"""Conversions between PyAV audio frames and the float32 mono samples the pipeline uses.

No I/O: frames in, arrays out, and back.
"""

from __future__ import annotations

import fractions

import numpy as np
from av import AudioFrame

from voice.audio import Float32Array

#: The WebRTC side of the server runs at Opus's native rate, in 20 ms frames.
WEBRTC_SAMPLE_RATE = 48000
FRAME_SAMPLES = WEBRTC_SAMPLE_RATE * 20 // 1000
TIME_BASE = fractions.Fraction(1, WEBRTC_SAMPLE_RATE)

_INT_SCALE = {"s16": 32768.0, "s16p": 32768.0, "s32": 2147483648.0, "s32p": 2147483648.0}
_FLOAT_FORMATS = ("flt", "fltp", "dbl", "dblp")


def frame_to_mono(frame: AudioFrame) -> Float32Array:
    """The frame's samples as float32 in [-1, 1], channels averaged to mono."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if frame.format.is_planar:
        planes = data.reshape(channels, -1)
    else:
        planes = data.reshape(-1, channels).T
    name = frame.format.name
    if name in _INT_SCALE:
        scale = _INT_SCALE[name]
    elif name in _FLOAT_FORMATS:
        scale = 1.0
    else:
        raise ValueError(f"unsupported audio frame format {name!r}")
    mono: Float32Array = (planes.mean(axis=0, dtype=np.float64) / scale).astype(np.float32)
    return mono


def mono_to_frame(samples: Float32Array, pts: int) -> AudioFrame:
    """A 48 kHz s16 mono frame of ``samples`` (clipped to [-1, 1]) starting at ``pts``."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16).reshape(1, -1)
    frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = WEBRTC_SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame
