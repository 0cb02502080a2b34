"""Speech engines behind the OpenAI audio API, through the ``openai`` SDK's async client.

:class:`RemoteSTT` posts a turn's audio (as WAV) to ``/audio/transcriptions``;
:class:`RemoteTTS` asks ``/audio/speech`` for streamed PCM and yields it as it arrives, so
a clause starts playing before the remote server has finished it. Both stand where the
in-process Whisper and Piper stand (the same methods), bounded by a :class:`RemoteQueue`
(requests in flight, requests waiting). A timeout, a refused request or an unreachable
endpoint raises :class:`RemoteSpeechError` naming the endpoint and the reason, and is
counted (``on_error``). Cancelling a call closes its HTTP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import httpx2
import numpy as np
import openai
from faster_whisper.transcribe import Segment, Word

from voice.audio import Float32Array, float_to_pcm16, pcm16_to_float
from voice.delivery import Prosody
from voice.inference import ModelBusyError
from voice.stt import STT_SAMPLE_RATE, SttOptions, TimedTranscript, Transcript

log = logging.getLogger(__name__)

#: Told of each failed remote call: ("stt" or "tts", reason).
OnError = Callable[[str, str], None]
REASONS = ("timeout", "unreachable", "refused", "invalid_response")


class RemoteSpeechError(RuntimeError):
    """A remote speech call failed; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, engine: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.engine, self.reason = engine, reason


class RemoteQueue:
    """At most ``max_concurrent`` requests in flight to one endpoint, and as many waiting;
    past that a call raises :class:`ModelBusyError` (as a full model worker does)."""

    def __init__(self, name: str, max_concurrent: int) -> None:
        self.name = name
        self.max_pending = 2 * max_concurrent
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._pending = 0
        self.last_wait_s = 0.0
        #: Called with each call's wait for a free slot, in seconds.
        self.on_wait: Callable[[float], None] | None = None

    @property
    def pending(self) -> int:
        """Calls waiting or in flight right now."""
        return self._pending

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._pending >= self.max_pending:
            raise ModelBusyError(f"remote {self.name} is busy ({self._pending} calls waiting)")
        self._pending += 1
        queued_at = time.perf_counter()
        try:
            async with self._semaphore:
                self.last_wait_s = time.perf_counter() - queued_at
                if self.on_wait is not None:
                    self.on_wait(self.last_wait_s)
                yield
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Nothing to stop: requests belong to the tasks that await them."""


def _client(base_url: str, api_key: str | None, timeout_s: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0
    )


class _Calls:
    """Turns the SDK's exceptions into :class:`RemoteSpeechError`, counted."""

    def __init__(self, engine: str, base_url: str, timeout_s: float) -> None:
        self.engine, self.base_url, self.timeout_s = engine, base_url, timeout_s
        self.on_error: OnError | None = None

    def error(self, reason: str, detail: str) -> RemoteSpeechError:
        if self.on_error is not None:
            self.on_error(self.engine, reason)
        what = "speech recognition" if self.engine == "stt" else "speech synthesis"
        return RemoteSpeechError(self.engine, reason, f"remote {what} at {self.base_url} "
                                 f"{detail}")  # fmt: skip

    @contextlib.contextmanager
    def translated(self) -> Any:
        try:
            yield
        except openai.APITimeoutError:
            raise self.error("timeout", f"did not answer within {self.timeout_s:g} s") from None
        except openai.APIConnectionError as exc:
            raise self.error("unreachable", f"is unreachable ({exc.__cause__ or exc})") from None
        except openai.APIStatusError as exc:
            raise self.error("refused", f"refused the request: {exc.status_code} "
                             f"{_message(exc)}") from None  # fmt: skip
        except httpx2.TimeoutException:  # while the body streams
            raise self.error("timeout", f"sent nothing for {self.timeout_s:g} s") from None
        except httpx2.HTTPError as exc:
            raise self.error("unreachable", f"broke off ({exc})") from None


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return str(exc.message)[:300]


def wav_bytes(samples: Float32Array, rate: int) -> bytes:
    """16-bit mono WAV of ``samples``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(float_to_pcm16(samples))
    return buffer.getvalue()


class RemoteSTT:
    """Transcribes 16 kHz utterances at an OpenAI-compatible ``/audio/transcriptions``.

    Asks for ``verbose_json`` (its segments' log-probabilities tell a hum from words, as
    the local model's do); an endpoint that refuses that format is asked for ``json`` from
    then on, with a warning, and its transcripts count as confident.
    """

    #: The remote model decides which languages it knows.
    multilingual = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        language: str | None,
        timeout_s: float,
        max_concurrent: int,
    ) -> None:
        self._client = _client(base_url, api_key, timeout_s)
        self._model = model
        self._language = language
        self._calls = _Calls("stt", base_url, timeout_s)
        self._verbose = True
        self.worker = RemoteQueue("stt", max_concurrent)

    @property
    def on_error(self) -> OnError | None:
        return self._calls.on_error

    @on_error.setter
    def on_error(self, value: OnError | None) -> None:
        self._calls.on_error = value

    async def _request(self, audio: Float32Array, options: SttOptions, **extra: Any) -> Any:
        language = options.language or self._language
        params: dict[str, Any] = {"model": self._model, **extra}
        if language:
            params["language"] = language
        if options.prompt:
            params["prompt"] = options.prompt
        upload = ("speech.wav", wav_bytes(audio, STT_SAMPLE_RATE), "audio/wav")
        async with self.worker.slot():
            with self._calls.translated():
                return await self._client.audio.transcriptions.create(file=upload, **params)

    async def transcribe(
        self, audio: Float32Array, options: SttOptions | None = None
    ) -> Transcript:
        options = options or SttOptions()
        started = time.perf_counter()
        result: Any = None
        if self._verbose:
            try:
                result = await self._request(audio, options, response_format="verbose_json")
            except RemoteSpeechError as exc:
                if exc.reason != "refused" or "response_format" not in str(exc):
                    raise
                log.warning("%s; asking it for plain json from now on", exc)
                self._verbose = False
        if result is None:
            result = await self._request(audio, options)
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise self._calls.error("invalid_response", "answered without a 'text'")
        segments = getattr(result, "segments", None) or []
        return Transcript(
            text.strip(),
            len(audio) / STT_SAMPLE_RATE,
            time.perf_counter() - started,
            avg_logprob=float(np.mean([s.avg_logprob for s in segments])) if segments else 0.0,
            no_speech_prob=max((float(s.no_speech_prob) for s in segments), default=0.0),
        )

    async def transcribe_timed(
        self, audio: Float32Array, options: SttOptions | None = None, *, words: bool = False
    ) -> TimedTranscript:
        """The remote ``verbose_json`` with segment (and ``words``: word) times."""
        granularities = ["segment", "word"] if words else ["segment"]
        result = await self._request(
            audio, options or SttOptions(), response_format="verbose_json",
            timestamp_granularities=granularities,
        )  # fmt: skip
        found = [Word(w.start, w.end, w.word, 1.0) for w in getattr(result, "words", None) or []]
        segments = [
            Segment(
                id=index,
                seek=0,
                start=s.start,
                end=s.end,
                text=s.text,
                tokens=list(s.tokens),
                avg_logprob=s.avg_logprob,
                compression_ratio=s.compression_ratio,
                no_speech_prob=s.no_speech_prob,
                words=None,
                temperature=s.temperature,
            )
            for index, s in enumerate(getattr(result, "segments", None) or [])
        ]
        return TimedTranscript(
            text=result.text.strip(),
            language=getattr(result, "language", None) or (self._language or ""),
            duration_s=len(audio) / STT_SAMPLE_RATE,
            segments=segments,
            words=found,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def close(self) -> None:
        self.worker.close()


class RemoteVoices:
    """One client and one queue for every voice spoken by a remote ``/audio/speech``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        sample_rate: int,
        timeout_s: float,
        max_concurrent: int,
    ) -> None:
        self.client = _client(base_url, api_key, timeout_s)
        self.model = model
        self.sample_rate = sample_rate
        self.calls = _Calls("tts", base_url, timeout_s)
        self.queue = RemoteQueue("tts", max_concurrent)

    def engine(self, voice: str) -> RemoteTTS:
        return RemoteTTS(self, voice)

    async def aclose(self) -> None:
        await self.client.close()


class RemoteTTS:
    """One remote voice; speaks a chunk as 16-bit PCM streamed from ``/audio/speech``.

    Prosody maps to the request's ``speed`` (the model's own length over the asked one)
    and to a gain (``volume``); the remote voice keeps its own expressiveness.
    """

    def __init__(self, remote: RemoteVoices, voice: str) -> None:
        self._remote = remote
        self.name = voice
        self.voice = voice
        self.sample_rate = remote.sample_rate
        self.worker = remote.queue
        self.default_prosody = Prosody()

    def resolve_speaker(self, speaker: int | str) -> int:
        raise ValueError("a remote voice has no speaker ids; name the remote voice instead")

    async def stream(
        self, text: str, prosody: Prosody | None = None
    ) -> AsyncGenerator[Float32Array, None]:
        """The audio of ``text`` piece by piece, as the remote server sends it."""
        prosody = prosody or self.default_prosody
        speed = min(4.0, max(0.25, self.default_prosody.length_scale / prosody.length_scale))
        remote = self._remote
        async with remote.queue.slot():
            with remote.calls.translated():
                async with remote.client.audio.speech.with_streaming_response.create(
                    model=remote.model, voice=self.voice, input=text, response_format="pcm",
                    speed=speed,
                ) as response:  # fmt: skip
                    held = b""
                    async for data in response.iter_bytes():
                        data = held + data
                        whole = len(data) - len(data) % 2
                        held = data[whole:]
                        if whole:
                            yield pcm16_to_float(data[:whole]) * np.float32(prosody.volume)

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> Float32Array:
        """The whole audio of ``text`` (what engines that cannot stream give)."""
        pieces = [piece async for piece in self.stream(text, prosody)]
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        """The client is the :class:`RemoteVoices`' to close."""
