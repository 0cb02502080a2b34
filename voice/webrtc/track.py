"""The outgoing audio track: 20 ms frames from a :class:`WebRTCAudioOutput`, in real time."""

from __future__ import annotations

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from voice.clock import Clock
from voice.webrtc.frames import FRAME_SAMPLES, WEBRTC_SAMPLE_RATE, mono_to_frame
from voice.webrtc.output import WebRTCAudioOutput

#: Behind schedule by more than this (a stalled event loop), the track skips ahead
#: instead of sending a burst of frames.
MAX_LAG_S = 0.2


class OutputAudioTrack(MediaStreamTrack):
    """An aiortc audio track that paces :meth:`WebRTCAudioOutput.next_frame` to real time.

    The sender calls :meth:`recv` in a loop; each call waits until the next frame is
    due, then takes it from the output (silence when nothing is queued). Taking audio
    at the last moment keeps a barge-in's :meth:`WebRTCAudioOutput.clear` effective
    within one frame. Cancelling ``recv`` is safe: no audio is taken before the wait ends.
    """

    kind = "audio"

    def __init__(self, output: WebRTCAudioOutput, *, clock: Clock) -> None:
        super().__init__()
        self._output = output
        self._clock = clock
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock.now()
        if self._start is None:
            self._start = now
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / WEBRTC_SAMPLE_RATE
            if now - due > MAX_LAG_S:
                # Skip the frames we missed: the timestamps jump like a gap in the audio.
                self._pts = round((now - self._start) * WEBRTC_SAMPLE_RATE / FRAME_SAMPLES)
                self._pts *= FRAME_SAMPLES
            elif due > now:
                await self._clock.sleep(due - now)
        return mono_to_frame(self._output.next_frame(), self._pts)
