"""A simulated phone for end-to-end tests: it plays what the server sends and its microphone
hears that playback again (delayed, attenuated: no echo cancellation), plus scripted speech.

Real time: every 40 ms tick it plays 40 ms of the received audio and sends 40 ms of
microphone audio, like a device would. Nothing here is a fake of the server or its models.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

import numpy as np

from tests.realtime_helpers import WIRE_RATE, EventLog
from voice.audio import Float32Array, float_to_pcm16, pcm16_to_float

TICK_MS = 40
TICK = WIRE_RATE * TICK_MS // 1000


@dataclass
class Utterance:
    """Speech (24 kHz) the user says into the microphone at ``at_s`` after the first bot audio."""

    at_s: float
    samples: Float32Array


@dataclass
class PhoneRun:
    """What happened during a simulated call segment (times in seconds since the first tick)."""

    first_bot_audio_s: float | None = None
    utterance_onsets_s: list[float] = field(default_factory=list)
    played: list[Float32Array] = field(default_factory=list)


class LoopbackPhone:
    """Plays server audio; its microphone picks the playback up again after ``delay_ms``."""

    def __init__(self, log: EventLog, *, delay_ms: float, echo_db: float | None) -> None:
        self.log = log
        self.gain = 0.0 if echo_db is None else 10 ** (echo_db / 20)
        self.delay = int(delay_ms * WIRE_RATE / 1000)
        self._queue = np.zeros(0, dtype=np.float32)
        self._seen = 0
        self._echo_line = np.zeros(self.delay + TICK, dtype=np.float32)

    def _receive(self) -> None:
        """Queue new audio deltas; a speech_started clears the queue, as clients do."""
        events = self.log.events
        while self._seen < len(events):
            event = events[self._seen]
            self._seen += 1
            if event.type == "response.output_audio.delta":
                audio = pcm16_to_float(base64.b64decode(event.delta))
                self._queue = np.concatenate([self._queue, audio])
            elif event.type == "input_audio_buffer.speech_started":
                self._queue = np.zeros(0, dtype=np.float32)

    async def run(
        self, seconds: float, utterances: list[Utterance], *, max_wait_s: float = 60.0
    ) -> PhoneRun:
        """Play and record until ``seconds`` after the first bot audio (waiting at most
        ``max_wait_s`` for it); say each utterance at its time after the first bot audio."""
        result = PhoneRun()
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending = sorted(utterances, key=lambda u: u.at_s)
        speaking: list[tuple[Float32Array, int]] = []  # (samples, next offset)
        tick = -1
        while True:
            tick += 1
            now_s = tick * TICK_MS / 1000
            first = result.first_bot_audio_s
            if (first is None and now_s > max_wait_s) or (first and now_s > first + seconds):
                break
            self._receive()
            played = self._queue[:TICK]
            self._queue = self._queue[TICK:]
            if played.size < TICK:
                played = np.concatenate([played, np.zeros(TICK - played.size, np.float32)])
            if result.first_bot_audio_s is None and np.abs(played).max() > 0:
                result.first_bot_audio_s = now_s
            result.played.append(played)
            # The microphone: the speaker's sound after the echo delay, plus the user.
            self._echo_line = np.concatenate([self._echo_line, played])
            mic = self.gain * self._echo_line[:TICK]
            self._echo_line = self._echo_line[TICK:]
            if result.first_bot_audio_s is not None:
                while pending and now_s - result.first_bot_audio_s >= pending[0].at_s:
                    speaking.append((pending.pop(0).samples, 0))
                    result.utterance_onsets_s.append(now_s)
            next_speaking = []
            for samples, offset in speaking:
                piece = samples[offset : offset + TICK]
                mic[: piece.size] += piece
                if offset + TICK < samples.size:
                    next_speaking.append((samples, offset + TICK))
            speaking = next_speaking
            await self.log.connection.input_audio_buffer.append(
                audio=base64.b64encode(float_to_pcm16(mic.astype(np.float32))).decode()
            )
            await asyncio.sleep(max(0.0, started + (tick + 1) * TICK_MS / 1000 - loop.time()))
        return result
