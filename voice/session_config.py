"""A session's configuration as the client sees it, and the turn-taking it asks for.

No I/O. ``session.update`` is checked and applied by :mod:`voice.session_update`;
:meth:`SessionConfig.describe` is what ``session.created`` / ``session.updated`` report,
truthfully: the values in force, with the server's defaults filled in, and the fields of
the last update that this server does not carry out (``not_applied``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from openai.types.realtime import (
    AudioTranscription,
    RealtimeAudioConfig,
    RealtimeAudioConfigInput,
    RealtimeAudioConfigOutput,
    RealtimeFunctionTool,
    RealtimeSessionCreateRequest,
    RealtimeTranscriptionSessionCreateRequest,
    RealtimeTruncationRetentionRatio,
)
from openai.types.realtime.realtime_audio_formats import AudioPCM, AudioPCMA, AudioPCMU
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from voice.audio import AudioCodec, codec_for
from voice.config import Settings
from voice.endpointing import EndpointingConfig
from voice.protocol import ProtocolError
from voice.tools import FunctionTool, ToolSpec
from voice.turns import TurnConfig

Modality = Literal["text", "audio"]
SessionKind = Literal["realtime", "transcription"]
TurnDetection = ServerVad | SemanticVad
Truncation = Literal["auto", "disabled"] | RealtimeTruncationRetentionRatio
#: What ``session.updated`` names as the transcription model: the server's own Whisper.
TRANSCRIPTION_MODEL = "whisper"

#: ``semantic_vad`` eagerness -> a factor on its end-of-turn silence and on its semantic
#: hold (the extra wait when a guess trails off, "and then I..."): "low" waits longer
#: before answering, "high" answers sooner; "medium" and "auto" are the defaults.
EAGERNESS = {"low": 1.8, "medium": 1.0, "auto": 1.0, "high": 0.6}


@dataclass(frozen=True)
class SessionConfig:
    """Everything ``session.update`` can change. Extensions: ``character``, ``user_name``."""

    kind: SessionKind
    instructions: str
    #: Instructions the client set itself; with a character they add to her card.
    client_instructions: str | None
    #: The voice preset that speaks (an alias the client named is resolved to it).
    voice: str
    speed: float
    output_modalities: tuple[Modality, ...]
    max_output_tokens: int | None
    turn_detection: TurnDetection | None
    #: ``None``: the client asked for no transcription events (turns are still transcribed).
    transcription: AudioTranscription | None
    truncation: Truncation
    input_codec: AudioCodec
    output_codec: AudioCodec
    character: str | None
    user_name: str | None
    #: Audio kept from before a detected speech onset (none without turn detection).
    prefix_padding_ms: int = 0
    #: The function tools the model may call, and the tool choice.
    tools: ToolSpec = field(default_factory=ToolSpec)
    #: Fields of the last update this server did not apply (optional features it lacks).
    not_applied: tuple[str, ...] = ()

    @classmethod
    def defaults(
        cls,
        settings: Settings,
        *,
        voice: str,
        character: str | None,
        user_name: str | None,
        kind: SessionKind = "realtime",
    ) -> SessionConfig:
        return cls(
            kind=kind,
            instructions=settings.instructions,
            client_instructions=None,
            voice=voice,
            speed=1.0,
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
            transcription=AudioTranscription(
                model=TRANSCRIPTION_MODEL, language=settings.stt_language
            ),
            truncation="auto",
            input_codec=codec_for("audio/pcm", 24000),
            output_codec=codec_for("audio/pcm", settings.output_sample_rate),
            character=character,
            user_name=user_name,
            prefix_padding_ms=settings.vad_prefix_padding_ms,
        )

    @property
    def replies(self) -> bool:
        """Whether the session answers at all (a transcription session does not)."""
        return self.kind == "realtime"

    @property
    def creates_responses(self) -> bool:
        """The end of a detected turn asks for a reply."""
        vad = self.turn_detection
        return self.replies and vad is not None and vad.create_response is not False

    @property
    def interrupts(self) -> bool:
        """Speech over the bot may interrupt it."""
        vad = self.turn_detection
        return self.replies and vad is not None and vad.interrupt_response is not False

    def turn_config(self, settings: Settings, *, notice_at_pause: bool) -> TurnConfig | None:
        """Turn-taking for this session: the client's values over the server's.

        ``notice_at_pause``: the client holds the bot's audio (WebSocket) and is told of
        speech over it when the bot pauses. None without turn detection (the client commits
        its turns by hand).
        """
        vad = self.turn_detection
        if vad is None:
            return None
        silence, hold = settings.vad_silence_ms, settings.vad_hold_ms
        threshold, idle_ms = settings.vad_threshold, None
        # The end-of-turn model (and the early end it allows) is semantic_vad's; server_vad
        # ends a turn on its silence alone, as the client asked.
        complete, early, early_threshold = None, None, None
        if isinstance(vad, SemanticVad):
            eagerness = vad.eagerness or "auto"
            if settings.turn_model != "off":
                # The model answers at once the pauses it is sure of, so the others can
                # wait longer for a user who only paused (and a shorter hold on top).
                silence, hold = settings.vad_semantic_silence_ms, settings.vad_semantic_hold_ms
                complete = settings.turn_complete_threshold
                early = settings.vad_early_silence_ms or None
                # "high" ends early what the model calls likely finished, not only sure.
                early_threshold = complete if eagerness == "high" else settings.turn_early_threshold
                if eagerness == "low":
                    early = None
            factor = EAGERNESS[eagerness]
            silence, hold = round(silence * factor), round(hold * factor)
        else:
            silence = vad.silence_duration_ms or silence
            threshold = vad.threshold or threshold
            idle_ms = vad.idle_timeout_ms if self.replies else None
        return TurnConfig(
            endpointing=EndpointingConfig(
                threshold=threshold, silence_ms=silence, min_speech_ms=settings.vad_min_speech_ms
            ),
            speculative_after_ms=settings.vad_speculative_after_ms or None,
            speculative_alone_ms=settings.vad_speculative_alone_ms or None,
            hold_ms=hold,
            hold_unpunctuated=settings.vad_hold_unpunctuated,
            early_silence_ms=early,
            complete_threshold=complete,
            early_threshold=early_threshold,
            barge_in=settings.barge_in if self.interrupts else "off",
            barge_in_onset_ms=settings.barge_in_onset_ms,
            barge_in_confirm_ms=settings.barge_in_confirm_ms,
            notice_at_pause=notice_at_pause,
            # The input buffer holds the turn and its prefix padding, within max_buffer_s.
            max_turn_ms=round(settings.max_buffer_s * 1000) - self.prefix_padding_ms,
            idle_timeout_ms=idle_ms,
            soft_commit_ms=settings.soft_commit_ms or None,
        )

    def describe(
        self, model: str
    ) -> RealtimeSessionCreateRequest | RealtimeTranscriptionSessionCreateRequest:
        """The configuration as sent in ``session.created`` / ``session.updated``."""
        extensions: dict[str, Any] = {"not_applied": list(self.not_applied)}
        audio_input: dict[str, Any] = {
            "format": format_of(self.input_codec).model_dump(exclude_none=True),
            "transcription": self.transcription.model_dump(exclude_unset=True)
            if self.transcription
            else None,
            "noise_reduction": None,
            "turn_detection": self.turn_detection.model_dump() if self.turn_detection else None,
        }
        if self.kind == "transcription":
            return RealtimeTranscriptionSessionCreateRequest.model_validate(
                {"type": "transcription", "audio": {"input": audio_input}, **extensions}
            )
        return RealtimeSessionCreateRequest(
            type="realtime",
            character=self.character,  # type: ignore[call-arg]
            user_name=self.user_name,
            model=model,
            instructions=self.instructions,
            output_modalities=list(self.output_modalities),
            max_output_tokens=self.max_output_tokens or "inf",
            truncation=self.truncation,
            tools=[_wire_tool(tool) for tool in self.tools.tools],
            tool_choice=self.tools.choice.wire(),
            audio=RealtimeAudioConfig(
                input=RealtimeAudioConfigInput.model_validate(audio_input),
                output=RealtimeAudioConfigOutput(
                    format=format_of(self.output_codec), voice=self.voice, speed=self.speed
                ),
            ),
            **extensions,
        )


def _wire_tool(tool: FunctionTool) -> RealtimeFunctionTool:
    return RealtimeFunctionTool(
        type="function", name=tool.name, description=tool.description, parameters=tool.parameters
    )


def check_modalities(value: list[Modality], param: str) -> list[Modality]:
    if len(value) != 1:
        raise ProtocolError("output_modalities must be ['audio'] or ['text']", param=param)
    return list(value)


def format_of(codec: AudioCodec) -> AudioPCM | AudioPCMU | AudioPCMA:
    if codec.name == "audio/pcmu":
        return AudioPCMU(type="audio/pcmu")
    if codec.name == "audio/pcma":
        return AudioPCMA(type="audio/pcma")
    # The GA schema only names 24 kHz; other rates (VOICE_OUTPUT_SAMPLE_RATE) are reported as is.
    return AudioPCM.model_construct(type="audio/pcm", rate=codec.sample_rate)
