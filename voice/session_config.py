"""A session's configuration as the client sees it, and ``session.update`` validated against it.

No I/O: :meth:`SessionConfig.updated` returns a new configuration or raises
:class:`~voice.protocol.ProtocolError`, so an update is applied whole or not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.realtime import (
    AudioTranscription,
    RealtimeAudioConfig,
    RealtimeAudioConfigInput,
    RealtimeAudioConfigOutput,
    RealtimeSessionCreateRequest,
)
from openai.types.realtime.realtime_audio_formats import AudioPCM, AudioPCMA, AudioPCMU
from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad

from voice.audio import AudioCodec, AudioFormatError, codec_for
from voice.config import Settings
from voice.endpointing import EndpointingConfig
from voice.protocol import ProtocolError
from voice.turns import TurnConfig

Modality = Literal["text", "audio"]


@dataclass(frozen=True)
class SessionConfig:
    """Everything ``session.update`` can change. Extensions: ``character``, ``user_name``."""

    instructions: str
    #: Instructions the client set itself; with a character they add to her card.
    client_instructions: str | None
    voice: str
    output_modalities: tuple[Modality, ...]
    max_output_tokens: int | None
    turn_detection: ServerVad | None
    input_codec: AudioCodec
    output_codec: AudioCodec
    character: str | None
    user_name: str | None

    @classmethod
    def defaults(
        cls, settings: Settings, *, voice: str, character: str | None, user_name: str | None
    ) -> SessionConfig:
        return cls(
            instructions=settings.instructions,
            client_instructions=None,
            voice=voice,
            output_modalities=("audio",),
            max_output_tokens=None,
            turn_detection=ServerVad(
                type="server_vad",
                threshold=settings.vad_threshold,
                silence_duration_ms=settings.vad_silence_ms,
                prefix_padding_ms=settings.vad_prefix_padding_ms,
                create_response=True,
                interrupt_response=True,
            ),
            input_codec=codec_for("audio/pcm", 24000),
            output_codec=codec_for("audio/pcm", settings.output_sample_rate),
            character=character,
            user_name=user_name,
        )

    def updated(self, update: Any, *, settings: Settings, voices: Collection[str]) -> SessionConfig:
        """This configuration with ``update`` (a ``session.update``'s session) applied."""
        if getattr(update, "type", None) != "realtime":
            raise ProtocolError("only 'realtime' sessions are supported", param="session.type")
        fields = update.model_fields_set
        changes: dict[str, Any] = {}
        if "instructions" in fields:
            changes["instructions"] = changes["client_instructions"] = update.instructions or ""
        changes.update(_extensions(update.model_extra or {}))
        if "output_modalities" in fields and update.output_modalities is not None:
            changes["output_modalities"] = tuple(
                check_modalities(update.output_modalities, "session.output_modalities")
            )
        if "max_output_tokens" in fields:
            value = update.max_output_tokens
            changes["max_output_tokens"] = None if value in (None, "inf") else int(value)
        audio = update.audio if "audio" in fields else None
        audio_in = audio.input if audio is not None and "input" in audio.model_fields_set else None
        if audio_in is not None:
            if "format" in audio_in.model_fields_set and audio_in.format is not None:
                changes["input_codec"] = codec_from(audio_in.format, "session.audio.input.format")
            if "turn_detection" in audio_in.model_fields_set:
                changes["turn_detection"] = turn_detection_from(audio_in.turn_detection, settings)
        audio_out = (
            audio.output if audio is not None and "output" in audio.model_fields_set else None
        )
        if audio_out is not None:
            if "format" in audio_out.model_fields_set and audio_out.format is not None:
                changes["output_codec"] = codec_from(
                    audio_out.format, "session.audio.output.format"
                )
            if "voice" in audio_out.model_fields_set and audio_out.voice is not None:
                if not isinstance(audio_out.voice, str) or audio_out.voice not in voices:
                    raise ProtocolError(
                        f"unknown voice {audio_out.voice!r}; available: "
                        + ", ".join(sorted(voices)),
                        param="session.audio.output.voice",
                    )
                changes["voice"] = audio_out.voice
        return dataclasses.replace(self, **changes)

    def turn_config(self, settings: Settings) -> TurnConfig:
        """Turn-taking for this session: the client's VAD values over the server's."""
        vad = self.turn_detection
        endpointing = EndpointingConfig(
            threshold=vad.threshold if vad and vad.threshold else settings.vad_threshold,
            silence_ms=(
                vad.silence_duration_ms
                if vad and vad.silence_duration_ms
                else settings.vad_silence_ms
            ),
            min_speech_ms=settings.vad_min_speech_ms,
        )
        interrupts = vad is None or vad.interrupt_response is not False
        return TurnConfig(
            endpointing=endpointing,
            speculative_after_ms=settings.vad_speculative_after_ms or None,
            hold_ms=settings.vad_hold_ms,
            barge_in=settings.barge_in if interrupts else "off",
            barge_in_onset_ms=settings.barge_in_onset_ms,
            barge_in_confirm_ms=settings.barge_in_confirm_ms,
        )

    def describe(self, model: str) -> RealtimeSessionCreateRequest:
        """The configuration as sent in ``session.created`` / ``session.updated``."""
        return RealtimeSessionCreateRequest(
            type="realtime",
            character=self.character,  # type: ignore[call-arg]
            user_name=self.user_name,
            model=model,
            instructions=self.instructions,
            output_modalities=list(self.output_modalities),
            max_output_tokens=self.max_output_tokens or "inf",
            audio=RealtimeAudioConfig(
                input=RealtimeAudioConfigInput(
                    format=format_of(self.input_codec),
                    transcription=AudioTranscription(model="whisper", language=None),
                    turn_detection=self.turn_detection,
                ),
                output=RealtimeAudioConfigOutput(
                    format=format_of(self.output_codec), voice=self.voice
                ),
            ),
        )


def check_modalities(value: list[Modality], param: str) -> list[Modality]:
    if len(value) != 1:
        raise ProtocolError("output_modalities must be ['audio'] or ['text']", param=param)
    return list(value)


def _extensions(extra: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "user_name" in extra:
        name = extra["user_name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise ProtocolError(
                "session.user_name must be a name of 1 to 64 characters",
                param="session.user_name",
            )
        changes["user_name"] = name.strip()
    if "character" in extra:
        character = extra["character"]
        if character is not None and not isinstance(character, str):
            raise ProtocolError("session.character must be a string", param="session.character")
        changes["character"] = character
    return changes


def turn_detection_from(value: Any, settings: Settings) -> ServerVad | None:
    """The client's ``turn_detection`` with the server's defaults filled in."""
    if value is None:
        return None
    if value.type != "server_vad":
        raise ProtocolError(
            f"turn_detection type '{value.type}' is not supported; use 'server_vad' or null",
            param="session.audio.input.turn_detection.type",
        )

    def given(field: Any, default: Any) -> Any:
        return default if field is None else field

    merged = ServerVad(
        type="server_vad",
        threshold=given(value.threshold, settings.vad_threshold),
        silence_duration_ms=given(value.silence_duration_ms, settings.vad_silence_ms),
        prefix_padding_ms=given(value.prefix_padding_ms, settings.vad_prefix_padding_ms),
        create_response=given(value.create_response, True),
        interrupt_response=given(value.interrupt_response, True),
    )
    if not 0.0 < (merged.threshold or 0) < 1.0:
        raise ProtocolError(
            "turn_detection.threshold must be between 0 and 1",
            param="session.audio.input.turn_detection.threshold",
        )
    return merged


def codec_from(fmt: Any, param: str) -> AudioCodec:
    try:
        return codec_for(fmt.type or "audio/pcm", getattr(fmt, "rate", None))
    except AudioFormatError as exc:
        raise ProtocolError(str(exc), code="invalid_audio_format", param=param) from None


def format_of(codec: AudioCodec) -> AudioPCM | AudioPCMU | AudioPCMA:
    if codec.name == "audio/pcmu":
        return AudioPCMU(type="audio/pcmu")
    if codec.name == "audio/pcma":
        return AudioPCMA(type="audio/pcma")
    # The GA schema only names 24 kHz; other rates (VOICE_OUTPUT_SAMPLE_RATE) are reported as is.
    return AudioPCM.model_construct(type="audio/pcm", rate=codec.sample_rate)
