"""Per-turn latency of one call: structured log fields and Prometheus histograms.

Never the words: only ids, statuses and times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from voice.clock import Clock
from voice.metrics import Metrics
from voice.response import ResponseRun
from voice.user_turns import TurnTimes

log = logging.getLogger(__name__)


class TurnLog:
    """Logs each answered turn's stage latencies and each barge-in's stop time."""

    def __init__(
        self,
        session_id: str,
        clock: Clock,
        metrics: Metrics | None,
        arrival_of: Callable[[int], float | None],
    ) -> None:
        self._session_id = session_id
        self._clock = clock
        self._metrics = metrics
        self._arrival_of = arrival_of

    def barge_in_stopped(self, onset_ms: int) -> None:
        """Bot audio stopped for speech that began at input position ``onset_ms``."""
        onset_arrived = self._arrival_of(onset_ms)
        if onset_arrived is None:
            return
        stop_s = self._clock.now() - onset_arrived
        log.info("barge-in stop %.3f s", stop_s, extra={"barge_in_stop_s": round(stop_s, 4)})
        if self._metrics is not None:
            self._metrics.barge_in_stop.observe(stop_s)

    def reply_ended(self, times: TurnTimes, response: ResponseRun) -> None:
        """A reply to a user turn ended: how long each stage took."""
        if times.speech_stopped is None:
            return
        origin = times.speech_end_arrived or times.speech_stopped
        timings = response.timings

        def span(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round(end - start, 4)

        fields = {
            "session": self._session_id,
            "response": response.id,
            "status": response.status,
            "end_of_turn_s": span(times.speech_end_arrived, times.speech_stopped),
            "stt_s": times.stt_compute_s,
            "stt_after_commit_s": span(times.speech_stopped, times.transcribed),
            "prepared": timings.released is not None,
            "llm_first_token_s": span(timings.created, timings.first_text),
            "tts_first_audio_s": span(timings.first_text, timings.first_synthesized),
            "speech_end_to_first_audio_s": span(origin, timings.first_audio),
            "speech_end_to_last_audio_s": span(origin, timings.last_audio),
            "audio_ms": round(response.audio_sent_ms),
        }
        log.info("turn %s", " ".join(f"{k}={v}" for k, v in fields.items()), extra=fields)
        if self._metrics is None:
            return
        metrics = self._metrics
        for histogram, value in (
            (metrics.end_of_turn_delay, fields["end_of_turn_s"]),
            (metrics.stt, fields["stt_s"]),
            (metrics.stt_wait_after_commit, fields["stt_after_commit_s"]),
            (metrics.llm_first_token, fields["llm_first_token_s"]),
            (metrics.tts_first_audio, fields["tts_first_audio_s"]),
            (metrics.speech_end_to_first_audio, fields["speech_end_to_first_audio_s"]),
        ):
            if isinstance(value, float):
                histogram.observe(value)
