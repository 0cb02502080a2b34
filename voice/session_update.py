"""``session.update`` checked against what this server does, and applied.

No I/O. A value that is invalid (a voice that does not exist, a threshold out of range,
an unknown audio format) refuses the whole update with a
:class:`~voice.protocol.ProtocolError`. A field that asks for an optional feature this
server does not have (tools until they exist, tracing, noise reduction, stored prompts...)
does not: the rest of the update is applied and the field is named in the new
configuration's ``not_applied``, which ``session.updated`` reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from openai.types.realtime import AudioTranscription, RealtimeTruncationRetentionRatio
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from voice.audio import AudioCodec, AudioFormatError, codec_for
from voice.config import Settings
from voice.protocol import ProtocolError
from voice.session_config import (
    EAGERNESS,
    TRANSCRIPTION_MODEL,
    SessionConfig,
    TurnDetection,
    check_modalities,
)
from voice.tools import ChoiceMode, FunctionTool, ToolChoice, ToolSpec

Eagerness = Literal["low", "medium", "high", "auto"]
#: Session fields of the Realtime API this server does not carry out, by name.
UNSUPPORTED = ("tracing", "prompt", "include", "reasoning")
#: ``audio.output.speed`` as the Realtime API allows it.
SPEED_RANGE = (0.25, 1.5)


@dataclass(frozen=True)
class VoiceChoices:
    """The voice presets a session may name, and the aliases that map onto them."""

    presets: Collection[str]
    aliases: Mapping[str, str]

    def resolve(self, value: object, param: str) -> str:
        """The preset for ``value``: a preset's name, an alias, or ``{"id": name}``."""
        name = getattr(value, "id", value)
        if isinstance(name, str) and name in self.presets:
            return name
        if isinstance(name, str) and self.aliases.get(name) in self.presets:
            return self.aliases[name]
        known = sorted({*self.presets, *self.aliases})
        raise ProtocolError(f"unknown voice {name!r}; available: {', '.join(known)}", param=param)


def apply_update(
    config: SessionConfig,
    update: Any,
    *,
    settings: Settings,
    voices: VoiceChoices,
    multilingual: bool,
) -> SessionConfig:
    """``config`` with ``update`` (a ``session.update``'s session) applied."""
    fields = update.model_fields_set
    changes: dict[str, Any] = {"kind": update.type}
    if update.type != "realtime":
        changes["character"] = None  # a transcription session has no companion
    skipped: list[str] = []
    if update.type == "realtime":
        if "instructions" in fields:
            changes["instructions"] = changes["client_instructions"] = update.instructions or ""
        if "output_modalities" in fields and update.output_modalities is not None:
            changes["output_modalities"] = tuple(
                check_modalities(update.output_modalities, "session.output_modalities")
            )
        if "max_output_tokens" in fields:
            value = update.max_output_tokens
            changes["max_output_tokens"] = None if value in (None, "inf") else int(value)
        if "truncation" in fields and update.truncation is not None:
            changes["truncation"] = _truncation(update.truncation, skipped)
        if "tools" in fields or "tool_choice" in fields:
            changes["tools"] = tool_spec(update, config.tools, skipped, "session")
        skipped += [name for name in UNSUPPORTED if getattr(update, name, None)]
        if getattr(update, "parallel_tool_calls", None) is not None:
            skipped.append("parallel_tool_calls")
    elif getattr(update, "include", None):
        skipped.append("include")
    changes.update(_extensions(update.model_extra or {}))
    audio = update.audio if "audio" in fields else None
    audio_in = getattr(audio, "input", None)
    if audio_in is not None:
        given = audio_in.model_fields_set
        if "format" in given and audio_in.format is not None:
            changes["input_codec"] = codec_from(audio_in.format, "session.audio.input.format")
        if "noise_reduction" in given and audio_in.noise_reduction is not None:
            skipped.append("audio.input.noise_reduction")
        if "transcription" in given:
            changes["transcription"] = _transcription(
                audio_in.transcription, settings, multilingual, skipped
            )
        if "turn_detection" in given:
            detection = turn_detection_from(audio_in.turn_detection, settings)
            changes["turn_detection"] = detection
            changes["prefix_padding_ms"] = _prefix_ms(detection, settings)
    audio_out = getattr(audio, "output", None)
    if audio_out is not None and update.type == "realtime":
        given = audio_out.model_fields_set
        if "format" in given and audio_out.format is not None:
            changes["output_codec"] = codec_from(audio_out.format, "session.audio.output.format")
        if "voice" in given and audio_out.voice is not None:
            changes["voice"] = voices.resolve(audio_out.voice, "session.audio.output.voice")
        if "speed" in given and audio_out.speed is not None:
            low, high = SPEED_RANGE
            if not low <= audio_out.speed <= high:
                raise ProtocolError(
                    f"audio.output.speed must be between {low} and {high}",
                    param="session.audio.output.speed",
                )
            changes["speed"] = float(audio_out.speed)
    changes["not_applied"] = tuple(skipped)
    return dataclasses.replace(config, **changes)


def turn_detection_from(value: Any, settings: Settings) -> TurnDetection | None:
    """The client's ``turn_detection`` with the server's defaults filled in."""
    if value is None:
        return None
    param = "session.audio.input.turn_detection"
    create = True if value.create_response is None else value.create_response
    interrupt = True if value.interrupt_response is None else value.interrupt_response
    if value.type == "semantic_vad":
        eagerness = value.eagerness or "auto"
        if eagerness not in EAGERNESS:
            raise ProtocolError(f"unknown eagerness {eagerness!r}", param=f"{param}.eagerness")
        return SemanticVad(
            type="semantic_vad", eagerness=cast(Eagerness, eagerness), create_response=create,
            interrupt_response=interrupt,
        )  # fmt: skip
    if value.type != "server_vad":
        raise ProtocolError(
            f"turn_detection type '{value.type}' is not supported; use 'server_vad', "
            "'semantic_vad' or null",
            param=f"{param}.type",
        )

    def given(field: Any, default: Any) -> Any:
        return default if field is None else field

    merged = ServerVad(
        type="server_vad",
        threshold=given(value.threshold, settings.vad_threshold),
        silence_duration_ms=given(value.silence_duration_ms, settings.vad_silence_ms),
        prefix_padding_ms=given(value.prefix_padding_ms, settings.vad_prefix_padding_ms),
        create_response=create,
        interrupt_response=interrupt,
        idle_timeout_ms=value.idle_timeout_ms,
    )
    if not 0.0 < (merged.threshold or 0) < 1.0:
        raise ProtocolError(
            "turn_detection.threshold must be between 0 and 1", param=f"{param}.threshold"
        )
    for name in ("silence_duration_ms", "prefix_padding_ms", "idle_timeout_ms"):
        ms = getattr(merged, name)
        if ms is not None and not 0 <= ms <= 600_000:
            raise ProtocolError(
                f"turn_detection.{name} must be 0 to 600000", param=f"{param}.{name}"
            )
    return merged


def _prefix_ms(detection: TurnDetection | None, settings: Settings) -> int:
    if detection is None:
        return 0
    if isinstance(detection, ServerVad):
        return detection.prefix_padding_ms or 0
    return settings.vad_prefix_padding_ms


def _transcription(
    value: Any, settings: Settings, multilingual: bool, skipped: list[str]
) -> AudioTranscription | None:
    """The transcription the client asked for, as this server's Whisper does it."""
    if value is None:
        return None
    language = value.language or None
    if language is not None and not multilingual and language != "en":
        skipped.append("audio.input.transcription.language")  # an English-only model
        language = "en"
    for name in ("keywords", "languages", "delay"):
        if getattr(value, name, None):
            skipped.append(f"audio.input.transcription.{name}")
    return AudioTranscription(
        model=TRANSCRIPTION_MODEL,
        language=language or settings.stt_language,
        prompt=value.prompt or None,
    )


def _truncation(value: Any, skipped: list[str]) -> Any:
    if isinstance(value, str):
        if value not in ("auto", "disabled"):
            raise ProtocolError(f"unknown truncation {value!r}", param="session.truncation")
        return value
    if not 0.0 < value.retention_ratio <= 1.0:
        raise ProtocolError(
            "truncation.retention_ratio must be above 0 and at most 1",
            param="session.truncation.retention_ratio",
        )
    if value.token_limits is not None:
        skipped.append("truncation.token_limits")
    return RealtimeTruncationRetentionRatio(
        type="retention_ratio", retention_ratio=value.retention_ratio
    )


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


def codec_from(fmt: Any, param: str) -> AudioCodec:
    try:
        return codec_for(fmt.type or "audio/pcm", getattr(fmt, "rate", None))
    except AudioFormatError as exc:
        raise ProtocolError(str(exc), code="invalid_audio_format", param=param) from None


def tool_spec(params: Any, current: ToolSpec, skipped: list[str], where: str) -> ToolSpec:
    """``params``' ``tools`` and ``tool_choice`` (each, if given) over ``current``.

    Function tools are kept; other kinds (MCP servers) are named in ``skipped``.
    """
    given = params.model_fields_set
    tools = current.tools
    if "tools" in given:
        tools = ()
        for index, tool in enumerate(params.tools or []):
            if getattr(tool, "type", None) != "function":
                skipped.append(f"tools[{index}] ({getattr(tool, 'type', None)})")
                continue
            if not tool.name:
                raise ProtocolError(
                    "a function tool needs a name", param=f"{where}.tools[{index}].name"
                )
            parameters = tool.parameters if isinstance(tool.parameters, dict) else {}
            tools += (FunctionTool(tool.name, tool.description or "", parameters),)
    choice = current.choice
    if "tool_choice" in given and params.tool_choice is not None:
        choice = _tool_choice(params.tool_choice, where)
    if choice.function is not None and not any(t.name == choice.function for t in tools):
        raise ProtocolError(
            f"tool_choice names the function '{choice.function}', which is not among the tools",
            param=f"{where}.tool_choice",
        )
    return ToolSpec(tools, choice)


def _tool_choice(value: Any, where: str) -> ToolChoice:
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise ProtocolError(f"unknown tool_choice {value!r}", param=f"{where}.tool_choice")
        return ToolChoice(cast(ChoiceMode, value))
    name = getattr(value, "name", None)
    if getattr(value, "type", None) != "function" or not name:
        raise ProtocolError(
            "tool_choice must be 'auto', 'none', 'required' or a function by name",
            param=f"{where}.tool_choice",
        )
    return ToolChoice("required", function=name)
