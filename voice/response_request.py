"""What a ``response.create`` asks for, checked: its own instructions, output, input and tags.

No I/O. A response may carry its own instructions, output modalities, token limit and
voice; ``metadata`` (echoed in ``response.created`` / ``response.done``); and with
``conversation: "none"`` it is *out of band*: not added to the conversation (nor to the
companion's memory), and, when it only writes text, allowed while another reply speaks.
``input`` gives it its own context instead of the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.realtime import ResponseCreateEvent

from voice.conversation import Item, Role
from voice.protocol import ProtocolError, new_id
from voice.session_config import Modality, SessionConfig, check_modalities
from voice.session_update import UNSUPPORTED, VoiceChoices, tool_spec
from voice.tools import ToolSpec

#: ``metadata``: at most this many pairs, keys and values this long (as the Realtime API).
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


@dataclass(frozen=True)
class ResponseRequest:
    """One ``response.create``'s parameters (``None``: the session's own setting)."""

    instructions: str | None = None
    modalities: list[Modality] | None = None
    #: ``None``: the session's limit; ``0``: no limit ("inf").
    max_output_tokens: int | None = None
    voice: str | None = None
    metadata: dict[str, str] | None = None
    #: False for ``conversation: "none"``: an out-of-band response.
    in_conversation: bool = True
    #: The response's own context instead of the conversation (``input``), if given.
    input: list[Item] | None = None
    #: The response's own tools or tool choice (over the session's), if given.
    tools: ToolSpec | None = None
    not_applied: list[str] = field(default_factory=list)

    def with_audio(self, session_modalities: tuple[Modality, ...]) -> bool:
        return "audio" in (self.modalities or session_modalities)


def response_request(
    event: ResponseCreateEvent, voices: VoiceChoices, config: SessionConfig
) -> ResponseRequest:
    """The parameters of ``event`` in a session configured as ``config``, checked (raises
    :class:`ProtocolError`; a transcription session creates no responses at all)."""
    if not config.replies:
        raise ProtocolError("a transcription session creates no responses", param="response")
    params = event.response
    if params is None:
        return ResponseRequest()
    given = params.model_fields_set
    modalities = params.output_modalities
    if modalities is not None:
        modalities = check_modalities(modalities, "response.output_modalities")
    tokens = params.max_output_tokens if "max_output_tokens" in given else None
    voice = None
    audio_out = getattr(getattr(params, "audio", None), "output", None)
    if audio_out is not None and getattr(audio_out, "voice", None) is not None:
        voice = voices.resolve(audio_out.voice, "response.audio.output.voice")
    conversation = params.conversation if "conversation" in given else "auto"
    if conversation not in (None, "auto", "none"):
        raise ProtocolError(
            f"unknown conversation {conversation!r}; use 'auto' or 'none'",
            param="response.conversation",
        )
    skipped: list[str] = []
    tools = None
    if "tools" in given or "tool_choice" in given:
        tools = tool_spec(params, config.tools, skipped, "response")
    return ResponseRequest(
        tools=tools,
        instructions=params.instructions,
        modalities=modalities,
        max_output_tokens=0 if tokens == "inf" else tokens,
        voice=voice,
        metadata=_metadata(params.metadata),
        in_conversation=conversation != "none",
        input=_input_items(params.input) if params.input is not None else None,
        not_applied=skipped + [name for name in UNSUPPORTED if getattr(params, name, None)],
    )


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        raise ProtocolError(
            f"metadata must be an object of at most {MAX_METADATA_PAIRS} pairs",
            param="response.metadata",
        )
    for key, text in value.items():
        if (
            not isinstance(text, str)
            or len(key) > MAX_METADATA_KEY
            or len(text) > MAX_METADATA_VALUE
        ):
            raise ProtocolError(
                f"metadata keys are at most {MAX_METADATA_KEY} characters and values strings "
                f"of at most {MAX_METADATA_VALUE}",
                param="response.metadata",
            )
    return dict(value)


def _input_items(value: list[Any]) -> list[Item]:
    """The messages of ``response.input``, as the conversation items of its context."""
    found: list[Item] = []
    for index, wire in enumerate(value):
        if getattr(wire, "type", None) != "message":
            raise ProtocolError(
                f"response.input items of type '{getattr(wire, 'type', None)}' are not "
                "supported; use 'message'",
                param=f"response.input[{index}].type",
            )
        role: Role = wire.role
        texts = [
            getattr(part, "text", None) or getattr(part, "transcript", None) or ""
            for part in wire.content
        ]
        found.append(Item(wire.id or new_id("item"), role, text="".join(texts)))
    return found
