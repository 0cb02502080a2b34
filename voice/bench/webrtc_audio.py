"""The WebRTC bench's audio arithmetic, free of I/O: frames to send, when, and what was heard.

Over WebRTC the reply's audio is an Opus track, not ``response.output_audio.delta``
events. The bench listens to it: every received frame whose RMS level reaches
:data:`AUDIBLE_DBFS` becomes an ``AUDIO_DELTA`` observation of the response that was last
created, so :mod:`voice.bench.timeline` measures first and last audio as it does for a
WebSocket. The microphone side sends 20 ms frames, each when its last sample would have
been captured, on a schedule from the first frame that does not drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voice.audio import Float32Array, resample, rms_dbfs
from voice.bench.timeline import AUDIO_DELTA, RESPONSE_CREATED, Observation
from voice.bench.transport import Utterance
from voice.vad import VAD_SAMPLE_RATE
from voice.webrtc.frames import FRAME_SAMPLES, WEBRTC_SAMPLE_RATE

FRAME_S = FRAME_SAMPLES / WEBRTC_SAMPLE_RATE
#: A received frame at or above this RMS level counts as reply audio. The server sends
#: digital silence between replies and Opus decodes it to (near) zero, while speech from
#: the TTS is around -30 to -15 dBFS; -50 dBFS sits well between the two.
AUDIBLE_DBFS = -50.0

# WebRTC-only server events about the call's outgoing audio.
OUTPUT_STARTED = "output_audio_buffer.started"
OUTPUT_STOPPED = "output_audio_buffer.stopped"
OUTPUT_CLEARED = "output_audio_buffer.cleared"


@dataclass(frozen=True)
class FramePlan:
    """48 kHz mono frames of 20 ms (the last one padded with silence), and the index of the
    frame holding the utterance's marked sample."""

    frames: tuple[Float32Array, ...]
    mark_frame: int


def plan_frames(utterance: Utterance) -> FramePlan:
    """``utterance`` resampled to 48 kHz and cut into 20 ms frames."""
    samples = resample(utterance.samples, VAD_SAMPLE_RATE, WEBRTC_SAMPLE_RATE)
    count = max(1, -(-samples.size // FRAME_SAMPLES))
    padded = np.zeros(count * FRAME_SAMPLES, dtype=np.float32)
    padded[: samples.size] = samples
    frames = tuple(padded[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(count))
    mark = utterance.mark_sample * WEBRTC_SAMPLE_RATE // VAD_SAMPLE_RATE // FRAME_SAMPLES
    return FramePlan(frames, min(mark, count - 1))


class FrameSchedule:
    """When each outgoing frame is due, as a microphone would deliver it.

    Frame ``n`` (from 0) is due when its last sample would have been captured:
    ``start + (n + 1) * frame_s``, where ``start`` is the time of the first request. A
    late frame does not move the ones after it: they are due at once until caught up.
    """

    def __init__(self, frame_s: float = FRAME_S) -> None:
        self._frame_s = frame_s
        self._start: float | None = None
        self._count = 0

    def next_due(self, now: float) -> float:
        """The due time of the next frame, asked for at ``now``."""
        if self._start is None:
            self._start = now
        self._count += 1
        return self._start + self._count * self._frame_s


class HeardAudio:
    """Received frames → ``AUDIO_DELTA`` observations of the response they belong to.

    A frame belongs to the response whose ``response.created`` came last: replies are
    played one after another, and a new one starts only after its ``response.created``.
    Frames below ``threshold_dbfs``, or heard before any response, are not reply audio.
    """

    def __init__(self, threshold_dbfs: float = AUDIBLE_DBFS) -> None:
        self.threshold_dbfs = threshold_dbfs
        self._response_id: str | None = None

    def event(self, observation: Observation) -> None:
        """Follow the server's events (only ``response.created`` matters)."""
        if observation.type == RESPONSE_CREATED:
            self._response_id = observation.response_id

    def frame(self, samples: Float32Array, sample_rate: int, at: float) -> Observation | None:
        """The observation of a frame received at ``at``, or ``None`` when it is not audible."""
        if self._response_id is None or rms_dbfs(samples) < self.threshold_dbfs:
            return None
        audio_ms = samples.size * 1000.0 / sample_rate
        return Observation(AUDIO_DELTA, at, response_id=self._response_id, audio_ms=audio_ms)


def playback_over(observations: Sequence[Observation], response_id: str | None) -> bool:
    """Whether the server is not playing ``response_id``'s audio: it never started, or
    it stopped or was cleared after it last started (``output_audio_buffer.*`` events)."""
    playing = False
    for o in observations:
        if o.response_id != response_id:
            continue
        if o.type == OUTPUT_STARTED:
            playing = True
        elif o.type in (OUTPUT_STOPPED, OUTPUT_CLEARED):
            playing = False
    return not playing
