"""Endpointing: turns per-window speech probabilities into start/stop-of-speech events.

No I/O and no clock: time is the position in the input audio stream, in milliseconds,
which the caller derives from sample counts. That makes every rule testable on a script.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeechStarted:
    """User speech began at ``audio_start_ms`` (onset of the first speech window)."""

    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """User speech ended at ``audio_end_ms`` (end of the last speech window)."""

    audio_end_ms: int


EndpointEvent = SpeechStarted | SpeechStopped


@dataclass
class EndpointingConfig:
    """Thresholds of the endpointer; see the settings of the same names."""

    threshold: float = 0.5
    silence_ms: int = 500
    min_speech_ms: int = 96
    #: Hysteresis: once in speech, only probabilities below ``threshold - hysteresis``
    #: count as silence, so a wavering probability does not end the turn.
    hysteresis: float = 0.15


class Endpointer:
    """Silence -> speech after ``min_speech_ms`` of speech -> silence after ``silence_ms``."""

    def __init__(self, config: EndpointingConfig) -> None:
        self.config = config
        self.in_speech = False
        self._run_start_ms: int | None = None  # onset of the current candidate speech run
        self._last_speech_end_ms = 0
        self._silence_ms = 0

    def reset(self) -> None:
        """Forget any speech in progress (e.g. after the input buffer was cleared)."""
        self.in_speech = False
        self._run_start_ms = None
        self._silence_ms = 0

    def stop(self) -> SpeechStopped:
        """End the speech now (the caller decided the silence so far is enough)."""
        self.in_speech = False
        self._run_start_ms = None
        return SpeechStopped(self._last_speech_end_ms)

    @property
    def silence_ms(self) -> int:
        """Silence since the last speech window of the current turn (0 while speaking)."""
        return self._silence_ms if self.in_speech else 0

    @property
    def last_speech_end_ms(self) -> int:
        return self._last_speech_end_ms

    def process(
        self,
        probability: float,
        window_start_ms: int,
        window_ms: int,
        *,
        min_speech_ms: int | None = None,
        silence_ms: int | None = None,
    ) -> EndpointEvent | None:
        """Feed one VAD window; return an event when the state changes.

        ``min_speech_ms`` and ``silence_ms`` override the configured values for this window
        (turn-taking uses shorter ones while the bot is talking).
        """
        cfg = self.config
        window_end_ms = window_start_ms + window_ms
        if not self.in_speech:
            if probability < cfg.threshold:
                self._run_start_ms = None
                return None
            if self._run_start_ms is None:
                self._run_start_ms = window_start_ms
            needed = cfg.min_speech_ms if min_speech_ms is None else min_speech_ms
            if window_end_ms - self._run_start_ms < needed:
                return None
            self.in_speech = True
            self._silence_ms = 0
            self._last_speech_end_ms = window_end_ms
            return SpeechStarted(self._run_start_ms)
        if probability >= cfg.threshold - cfg.hysteresis:
            self._silence_ms = 0
            self._last_speech_end_ms = window_end_ms
            return None
        self._silence_ms += window_ms
        if self._silence_ms < (cfg.silence_ms if silence_ms is None else silence_ms):
            return None
        self.in_speech = False
        self._run_start_ms = None
        return SpeechStopped(self._last_speech_end_ms)
