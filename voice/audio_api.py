"""The OpenAI audio API on the server's own models, so other replicas and any OpenAI client
can use its Whisper and its voices (mounted with auth by the server).

=====  =============================  ===================================================
POST   ``/v1/audio/transcriptions``   multipart ``file`` (any format ffmpeg reads) →
                                      ``json`` | ``text`` | ``verbose_json`` | ``srt`` |
                                      ``vtt`` (``response_format``)
POST   ``/v1/audio/speech``           JSON ``input``, ``voice`` (a preset or an alias),
                                      ``response_format`` (pcm, wav, mp3, opus, aac,
                                      flac), ``speed`` → the audio, streamed clause by
                                      clause; ``stream_format: "sse"`` for events
=====  =============================  ===================================================

Any ``model`` is accepted and answered with the server's own model, as local servers do
with ``whisper-1`` or ``tts-1``. Speech comes at 24 kHz mono (``pcm``: 16-bit little-endian,
as the OpenAI API sends it). Accepted but not applied: a transcription's ``temperature``
(decoding is greedy, with faster-whisper's fallback) and ``chunking_strategy``; speech
``instructions`` (the preset's delivery applies). Not supported, refused with a 400 that
says so: streamed transcriptions, ``diarized_json``, ``include``. A model whose queue is
full answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from faster_whisper.tokenizer import _LANGUAGE_CODES
from faster_whisper.transcribe import get_compression_ratio
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from voice.audio import StreamResampler
from voice.audio_files import ENCODINGS, MEDIA_TYPES, AudioFileError, StreamEncoder, decode_audio
from voice.chunking import SentenceChunker
from voice.delivery import plan_speech
from voice.inference import ModelBusyError
from voice.remote_speech import RemoteSTT
from voice.request_body import BadRequest, parse_form, read_body, read_json_object
from voice.stt import STT_SAMPLE_RATE, SttOptions, TimedTranscript, Transcript, WhisperSTT
from voice.tts import synthesize_plan
from voice.voices import UnknownVoiceError, Voice, VoiceLibrary

if TYPE_CHECKING:
    from voice.engines import Engines

log = logging.getLogger(__name__)

#: OpenAI's own upload limit.
MAX_UPLOAD_BYTES: Final = 25 * 1024 * 1024
#: Longer audio would hold the model every live call shares for minutes.
MAX_TRANSCRIPTION_S: Final = 600.0
MAX_SPEECH_CHARS: Final = 4096
SPEECH_RATE: Final = 24000
SPEED_RANGE: Final = (0.25, 4.0)
TRANSCRIPTION_FORMATS: Final = ("json", "text", "verbose_json", "srt", "vtt")
FORM_FIELDS: Final = frozenset(
    {"file", "model", "language", "prompt", "response_format", "temperature",
     "timestamp_granularities[]", "timestamp_granularities", "stream", "chunking_strategy"}
)  # fmt: skip
SPEECH_FIELDS: Final = frozenset(
    {"model", "input", "voice", "response_format", "speed", "instructions", "stream_format"}
)


def audio_routes(
    engines: Engines, count: Callable[[str], None] = lambda route: None
) -> list[Route]:
    """The two routes (without auth) on the models of ``engines`` (looked up per request);
    ``count(route)`` is told of every request served."""

    async def transcriptions(request: Request) -> Response:
        try:
            form = await _read_form(request)
            try:
                response = await _transcribe(engines.stt, form)
            finally:
                await form.close()
        except BadRequest as bad:
            return bad.response()
        count("transcriptions")
        return response

    async def speech(request: Request) -> Response:
        try:
            body = await read_json_object(request, max_bytes=64 * 1024)
            response = await _speak(engines.voices, body)
        except BadRequest as bad:
            return bad.response()
        count("speech")
        return response

    return [
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/audio/speech", speech, methods=["POST"]),
    ]


# --- transcriptions ------------------------------------------------------------------------


async def _read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise BadRequest(415, "send the audio as the 'file' part of a multipart/form-data body")
    body = await read_body(request, MAX_UPLOAD_BYTES + 64 * 1024)
    return await parse_form(
        request, body, max_files=1, max_fields=len(FORM_FIELDS), max_part_size=64 * 1024
    )


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(400, f"'{name}' must be a form field, not a file", param=name)
    return value


async def _transcribe(stt: WhisperSTT | RemoteSTT, form: FormData) -> Response:
    for name in form:
        if name not in FORM_FIELDS:
            raise BadRequest(400, f"unknown parameter '{name}'", param=name)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest(400, "the form has no 'file' part (the audio)", param="file")
    if (_field(form, "stream") or "false").lower() == "true":
        raise BadRequest(400, "streamed transcriptions are not supported", param="stream")
    fmt = _field(form, "response_format") or "json"
    if fmt not in TRANSCRIPTION_FORMATS:
        raise BadRequest(400, f"response_format must be one of {', '.join(TRANSCRIPTION_FORMATS)}",
                         param="response_format")  # fmt: skip
    options = SttOptions(language=_language(stt, _field(form, "language")),
                         prompt=_field(form, "prompt") or None)  # fmt: skip
    granularities = [
        str(value)
        for name in ("timestamp_granularities[]", "timestamp_granularities")
        for value in form.getlist(name)
    ]
    if unknown := set(granularities) - {"segment", "word"}:
        raise BadRequest(400, f"unknown timestamp granularity {sorted(unknown)[0]!r} "
                         "(segment, word)", param="timestamp_granularities")  # fmt: skip
    try:
        audio = decode_audio(await upload.read(), rate=STT_SAMPLE_RATE,
                             max_seconds=MAX_TRANSCRIPTION_S)  # fmt: skip
    except AudioFileError as exc:
        raise BadRequest(400, str(exc), param="file", code="invalid_audio") from None
    seconds = math.ceil(len(audio) / STT_SAMPLE_RATE)
    usage = {"type": "duration", "seconds": seconds}
    try:
        if fmt in ("json", "text"):
            text = (await stt.transcribe(audio, options)).text
            if fmt == "text":
                return PlainTextResponse(text + "\n")
            return JSONResponse({"text": text, "usage": usage})
        # A short file (a voice turn; a remote front end asks for verbose_json for the
        # confidence) is decoded in one window, as a call's turn is: one segment.
        one_window = isinstance(stt, WhisperSTT) and stt.window_for(len(audio)) is not None
        if fmt == "verbose_json" and "word" not in granularities and one_window:
            assert isinstance(stt, WhisperSTT)
            transcript = await stt.transcribe(audio, options)
            language = options.language or stt.language or "en"
            return JSONResponse(_verbose_window(transcript, language, usage))
        timed = await stt.transcribe_timed(audio, options, words="word" in granularities)
    except ModelBusyError:
        raise _busy("speech recognition") from None
    if fmt == "srt":
        return PlainTextResponse(_subtitles(timed, vtt=False), media_type="application/x-subrip")
    if fmt == "vtt":
        return PlainTextResponse(_subtitles(timed, vtt=True), media_type="text/vtt")
    return JSONResponse(_verbose(timed, usage, words="word" in granularities))


def _language(stt: WhisperSTT | RemoteSTT, language: str | None) -> str | None:
    if not language:
        return None
    language = language.strip().lower()
    if language not in _LANGUAGE_CODES:
        raise BadRequest(400, f"unknown language {language!r} (an ISO-639-1 code such as 'en')",
                         param="language")  # fmt: skip
    if language != "en" and not stt.multilingual:
        raise BadRequest(400, "the speech model is English-only; leave 'language' out or "
                         "send 'en'", param="language")  # fmt: skip
    return language


def _verbose(timed: TimedTranscript, usage: dict[str, Any], *, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": timed.language,
        "duration": round(timed.duration_s, 3),
        "text": timed.text,
        "segments": [
            {
                "id": index,
                "seek": segment.seek,
                "start": round(segment.start, 3),
                "end": round(segment.end, 3),
                "text": segment.text,
                "tokens": list(segment.tokens),
                "temperature": segment.temperature or 0.0,
                "avg_logprob": segment.avg_logprob,
                "compression_ratio": segment.compression_ratio,
                "no_speech_prob": segment.no_speech_prob,
            }
            for index, segment in enumerate(timed.segments)
        ],
        "usage": usage,
    }
    if words:
        body["words"] = [
            {"word": word.word.strip(), "start": round(word.start, 3), "end": round(word.end, 3)}
            for word in timed.words
        ]
    return body


def _verbose_window(transcript: Transcript, language: str, usage: dict[str, Any]) -> dict[str, Any]:
    """``verbose_json`` of a one-window decode: one segment, the whole audio."""
    segment: dict[str, Any] = {
        "id": 0,
        "seek": 0,
        "start": 0.0,
        "end": round(transcript.audio_s, 3),
        "text": transcript.text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": transcript.avg_logprob,
        "compression_ratio": get_compression_ratio(transcript.text) if transcript.text else 0.0,
        "no_speech_prob": transcript.no_speech_prob,
    }
    return {
        "task": "transcribe",
        "language": language,
        "duration": round(transcript.audio_s, 3),
        "text": transcript.text,
        "segments": [segment],
        "usage": usage,
    }


def _subtitles(timed: TimedTranscript, *, vtt: bool) -> str:
    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        hours, rest = divmod(millis, 3_600_000)
        minutes, rest = divmod(rest, 60_000)
        secs, millis = divmod(rest, 1000)
        return f"{hours:02d}:{minutes:02d}:{secs:02d}{'.' if vtt else ','}{millis:03d}"

    cues = [
        ("" if vtt else f"{index}\n")
        + f"{stamp(segment.start)} --> {stamp(segment.end)}\n{segment.text.strip()}\n"
        for index, segment in enumerate(timed.segments, start=1)
    ]
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(cues)


# --- speech --------------------------------------------------------------------------------


async def _speak(voices: VoiceLibrary, body: dict[str, Any]) -> Response:
    for name in body:
        if name not in SPEECH_FIELDS:
            raise BadRequest(400, f"unknown parameter '{name}'", param=name)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(400, "'input' must be the text to speak", param="input")
    if len(text) > MAX_SPEECH_CHARS:
        raise BadRequest(400, f"'input' may be at most {MAX_SPEECH_CHARS} characters",
                         param="input")  # fmt: skip
    fmt = body.get("response_format", "mp3")
    if fmt not in ENCODINGS:
        raise BadRequest(400, f"response_format must be one of {', '.join(ENCODINGS)}",
                         param="response_format")  # fmt: skip
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or isinstance(speed, bool):
        raise BadRequest(400, "'speed' must be a number", param="speed")
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise BadRequest(400, f"'speed' must be between {SPEED_RANGE[0]} and {SPEED_RANGE[1]}",
                         param="speed")  # fmt: skip
    stream_format = body.get("stream_format", "audio")
    if stream_format not in ("audio", "sse"):
        raise BadRequest(400, "stream_format must be 'audio' or 'sse'", param="stream_format")
    voice = await _voice(voices, body.get("voice"))
    chunks = _chunks(text)
    encoder = StreamEncoder(fmt, SPEECH_RATE)
    pieces = _speech(voice, chunks, float(speed), encoder)
    try:
        # The first clause is synthesized before the answer starts: a full queue is a 503.
        first = await anext(pieces)
    except ModelBusyError:
        await pieces.aclose()
        raise _busy("speech synthesis") from None
    except BaseException:
        await pieces.aclose()
        raise
    if stream_format == "sse":
        return StreamingResponse(_events(first, pieces, len(text)), media_type="text/event-stream")
    return StreamingResponse(_then(first, pieces), media_type=MEDIA_TYPES[fmt])


async def _voice(voices: VoiceLibrary, value: object) -> Voice:
    name = value.get("id") if isinstance(value, dict) else value
    if not isinstance(name, str) or not name:
        raise BadRequest(400, "'voice' must name a voice", param="voice")
    name = voices.aliases.get(name, name) if name not in voices.names else name
    try:
        return await voices.get(name)
    except UnknownVoiceError:
        known = ", ".join(sorted({*voices.names, *voices.aliases}))
        raise BadRequest(400, f"unknown voice {name!r}; available: {known}",
                         param="voice") from None  # fmt: skip


def _chunks(text: str) -> list[str]:
    chunker = SentenceChunker()
    return [*chunker.push(text), *chunker.flush()]


async def _speech(
    voice: Voice, chunks: list[str], speed: float, encoder: StreamEncoder
) -> AsyncGenerator[bytes, None]:
    """Encoded audio, clause by clause; the encoder is closed however this ends."""
    base = replace(voice.prosody, length_scale=voice.prosody.length_scale / speed)
    state = replace(voice.delivery_state(), base=base)
    resampler = StreamResampler(voice.tts.sample_rate, SPEECH_RATE)
    finished = False
    try:
        for chunk in chunks:
            audio = await synthesize_plan(voice.tts, plan_speech(chunk, state))
            yield encoder.encode(resampler.process(audio))
        yield encoder.encode(resampler.flush()) + encoder.finish()
        finished = True
    finally:
        if not finished:
            encoder.close()


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in rest:
        if piece:
            yield piece


async def _events(first: bytes, rest: AsyncIterator[bytes], chars: int) -> AsyncIterator[str]:
    """``speech.audio.delta`` events, then ``speech.audio.done`` (usage counts characters:
    the embedded voices have no tokens)."""
    async for piece in _then(first, rest):
        delta = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
        yield f"data: {json.dumps(delta)}\n\n"
    usage = {"input_tokens": chars, "output_tokens": 0, "total_tokens": chars}
    yield f"data: {json.dumps({'type': 'speech.audio.done', 'usage': usage})}\n\n"


def _busy(what: str) -> BadRequest:
    return BadRequest(503, f"{what} is busy; try again shortly", code="model_busy",
                      headers={"Retry-After": "1"})  # fmt: skip
