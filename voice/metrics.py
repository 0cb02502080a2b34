"""Per-turn latency metrics: Prometheus histograms at ``/metrics`` and structured log fields.

One :class:`Metrics` object per server process (its own registry, injected into the
sessions, so tests can make as many as they like). All durations are in seconds.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Buckets for latencies between a few milliseconds and several seconds.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip


class Metrics:
    """The server's Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

        def histogram(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(name, doc, labels, registry=self.registry, buckets=LATENCY_BUCKETS)

        self.end_of_turn_delay = histogram(
            "voice_vad_end_of_turn_seconds",
            "End of user speech (arrival of its last audio) to the end-of-turn decision.",
        )
        self.stt = histogram(
            "voice_stt_seconds", "Transcription compute time of a committed user turn."
        )
        self.stt_wait_after_commit = histogram(
            "voice_stt_after_commit_seconds",
            "End-of-turn decision to transcript ready (near zero when speculation hit).",
        )
        self.llm_first_token = histogram(
            "voice_llm_first_token_seconds", "Response start to the first text from the model."
        )
        self.tts_first_audio = histogram(
            "voice_tts_first_audio_seconds", "First text from the model to the first audio sent."
        )
        self.speech_end_to_first_audio = histogram(
            "voice_speech_end_to_first_audio_seconds",
            "End of user speech (arrival of its last audio) to the first reply audio sent.",
        )
        self.barge_in_stop = histogram(
            "voice_barge_in_stop_seconds",
            "Arrival of the onset of speech over the bot to its audio being stopped.",
        )
        self.queue_wait = histogram(
            "voice_model_queue_wait_seconds",
            "Time a model call waited for its model's worker.",
            ("model",),
        )
        self.active_sessions = Gauge(
            "voice_active_sessions", "Sessions connected now.", registry=self.registry
        )
        self.llm_server_restarts = Counter(
            "voice_llm_server_restarts",
            "Times the embedded LLM server was started again after it died.",
            registry=self.registry,
        )
        self.audio_api_requests = Counter(
            "voice_audio_api_requests",
            "Requests the audio API answered (route: transcriptions or speech).",
            ("route",),
            registry=self.registry,
        )
        for route in ("transcriptions", "speech"):
            self.audio_api_requests.labels(route)  # exported from 0 on
        self.remote_speech_errors = Counter(
            "voice_remote_speech_errors",
            "Failed calls to a remote speech endpoint, by engine (stt, tts) and reason "
            "(timeout, unreachable, refused, invalid_response).",
            ("engine", "reason"),
            registry=self.registry,
        )
        self.memory_writes_pending = Gauge(
            "voice_memory_writes_pending",
            "Transcript and memory writes queued for the database (waiting while it is "
            "unreachable).",
            registry=self.registry,
        )
        self.memory_write_retries = Counter(
            "voice_memory_write_retries",
            "Attempts to store a queued write that could not reach the database.",
            registry=self.registry,
        )
        self.memory_writes_lost = Counter(
            "voice_memory_writes_lost",
            "Transcript and memory writes never stored, by kind and reason (queue_full, "
            "expired, rejected, shutdown; unreachable: a memory update that could not run).",
            ("kind", "reason"),
            registry=self.registry,
        )

    def count_remote_error(self, engine: str, reason: str) -> None:
        """``on_error`` of the remote speech engines (:mod:`voice.remote_speech`)."""
        self.remote_speech_errors.labels(engine, reason).inc()

    def count_lost_writes(self, kind: str, reason: str, count: int) -> None:
        """``on_lost`` of :class:`voice.memory.writer.StoreWriter`."""
        self.memory_writes_lost.labels(kind, reason).inc(count)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
