"""Every server event of a session, built in one place.

The parts of a call (the session, its user turns, the floor, a reply, an audio output)
tell :class:`ServerEvents` what happened in their own terms ("speech started at 320 ms
for item X", "this reply is done"); it builds the Realtime API (GA) event from the
``openai.types.realtime`` models and hands it to the transport's ``send``. No I/O here:
``send`` only queues (see :mod:`voice.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemDeletedEvent,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    ConversationItemInputAudioTranscriptionFailedEvent,
    ConversationItemTruncatedEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggered,
    RateLimitsUpdatedEvent,
    RealtimeResponse,
    RealtimeSessionCreateRequest,
    RealtimeTranscriptionSessionCreateRequest,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from openai.types.realtime.conversation_item_input_audio_transcription_completed_event import (
    UsageTranscriptTextUsageDuration,
)
from openai.types.realtime.conversation_item_input_audio_transcription_failed_event import (
    Error as TranscriptionError,
)
from openai.types.realtime.realtime_server_event import (
    ConversationItemRetrieved,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
)
from openai.types.realtime.response_content_part_added_event import Part as AddedPart
from openai.types.realtime.response_content_part_done_event import Part as DonePart

from voice.protocol import ProtocolError, ServerEvent, new_id
from voice.wire_items import WireItem

Send = Callable[[ServerEvent], None]
SessionObject = RealtimeSessionCreateRequest | RealtimeTranscriptionSessionCreateRequest


def _event_id() -> str:
    return new_id("event")


class ServerEvents:
    """The server events of one session, handed to the transport's ``send`` as built."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def error(self, error: ProtocolError) -> None:
        self._send(error.to_event())

    # --- the session --------------------------------------------------------------------

    def rate_limits(self, limits: list[dict[str, Any]]) -> None:
        """``rate_limits.updated``: what is left of the user's allowances."""
        self._send(
            RateLimitsUpdatedEvent.model_validate(
                {"type": "rate_limits.updated", "event_id": new_id("event"), "rate_limits": limits}
            )
        )

    def session_created(self, session: SessionObject) -> None:
        self._send(
            SessionCreatedEvent(type="session.created", event_id=_event_id(), session=session)
        )

    def session_updated(self, session: SessionObject) -> None:
        self._send(
            SessionUpdatedEvent(type="session.updated", event_id=_event_id(), session=session)
        )

    # --- the input audio buffer ---------------------------------------------------------

    def speech_started(self, item_id: str, audio_start_ms: int) -> None:
        self._send(
            InputAudioBufferSpeechStartedEvent(
                type="input_audio_buffer.speech_started", event_id=_event_id(),
                audio_start_ms=audio_start_ms, item_id=item_id,
            )
        )  # fmt: skip

    def speech_stopped(self, item_id: str, audio_end_ms: int) -> None:
        self._send(
            InputAudioBufferSpeechStoppedEvent(
                type="input_audio_buffer.speech_stopped", event_id=_event_id(),
                audio_end_ms=audio_end_ms, item_id=item_id,
            )
        )  # fmt: skip

    def timeout_triggered(self, item_id: str, audio_start_ms: int, audio_end_ms: int) -> None:
        self._send(
            InputAudioBufferTimeoutTriggered(
                type="input_audio_buffer.timeout_triggered", event_id=_event_id(),
                item_id=item_id, audio_start_ms=audio_start_ms, audio_end_ms=audio_end_ms,
            )
        )  # fmt: skip

    def committed(self, item_id: str, previous_item_id: str | None) -> None:
        self._send(
            InputAudioBufferCommittedEvent(
                type="input_audio_buffer.committed", event_id=_event_id(),
                item_id=item_id, previous_item_id=previous_item_id,
            )
        )  # fmt: skip

    def cleared(self) -> None:
        self._send(
            InputAudioBufferClearedEvent(type="input_audio_buffer.cleared", event_id=_event_id())
        )

    # --- conversation items ---------------------------------------------------------------

    def item_added(self, item: WireItem, previous_item_id: str | None) -> None:
        self._send(
            ConversationItemAdded(
                type="conversation.item.added", event_id=_event_id(), item=item,
                previous_item_id=previous_item_id,
            )
        )  # fmt: skip

    def item_done(self, item: WireItem, previous_item_id: str | None) -> None:
        self._send(
            ConversationItemDone(
                type="conversation.item.done", event_id=_event_id(), item=item,
                previous_item_id=previous_item_id,
            )
        )  # fmt: skip

    def item_deleted(self, item_id: str) -> None:
        self._send(
            ConversationItemDeletedEvent(
                type="conversation.item.deleted", event_id=_event_id(), item_id=item_id
            )
        )

    def item_retrieved(self, item: WireItem) -> None:
        self._send(
            ConversationItemRetrieved(
                type="conversation.item.retrieved", event_id=_event_id(), item=item
            )
        )

    def item_truncated(self, item_id: str, audio_end_ms: float) -> None:
        self._send(
            ConversationItemTruncatedEvent(
                type="conversation.item.truncated", event_id=_event_id(), item_id=item_id,
                content_index=0, audio_end_ms=round(audio_end_ms),
            )
        )  # fmt: skip

    def transcription_delta(self, item_id: str, delta: str) -> None:
        self._send(
            ConversationItemInputAudioTranscriptionDeltaEvent(
                type="conversation.item.input_audio_transcription.delta",
                event_id=_event_id(), item_id=item_id, content_index=0, delta=delta,
            )
        )  # fmt: skip

    def transcription_completed(self, item_id: str, transcript: str, audio_s: float) -> None:
        self._send(
            ConversationItemInputAudioTranscriptionCompletedEvent(
                type="conversation.item.input_audio_transcription.completed",
                event_id=_event_id(), item_id=item_id, content_index=0, transcript=transcript,
                usage=UsageTranscriptTextUsageDuration(type="duration", seconds=round(audio_s, 3)),
            )
        )  # fmt: skip

    def transcription_failed(self, item_id: str, code: str, message: str) -> None:
        self._send(
            ConversationItemInputAudioTranscriptionFailedEvent(
                type="conversation.item.input_audio_transcription.failed",
                event_id=_event_id(), item_id=item_id, content_index=0,
                error=TranscriptionError(type="transcription_error", code=code, message=message),
            )
        )  # fmt: skip

    # --- responses --------------------------------------------------------------------------

    def response_created(self, response: RealtimeResponse) -> None:
        self._send(
            ResponseCreatedEvent(type="response.created", event_id=_event_id(), response=response)
        )

    def response_done(self, response: RealtimeResponse) -> None:
        self._send(ResponseDoneEvent(type="response.done", event_id=_event_id(), response=response))

    def output_item_added(self, response_id: str, output_index: int, item: WireItem) -> None:
        self._send(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added", event_id=_event_id(),
                response_id=response_id, output_index=output_index, item=item,
            )
        )  # fmt: skip

    def output_item_done(self, response_id: str, output_index: int, item: WireItem) -> None:
        self._send(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done", event_id=_event_id(),
                response_id=response_id, output_index=output_index, item=item,
            )
        )  # fmt: skip

    def content_part_added(
        self, response_id: str, item_id: str, output_index: int, *, with_audio: bool
    ) -> None:
        part = (
            AddedPart(type="audio", transcript="")
            if with_audio
            else AddedPart(type="text", text="")
        )
        self._send(
            ResponseContentPartAddedEvent(
                type="response.content_part.added", event_id=_event_id(),
                response_id=response_id, item_id=item_id, output_index=output_index,
                content_index=0, part=part,
            )
        )  # fmt: skip

    def text_delta(self, response_id: str, item_id: str, output_index: int, delta: str) -> None:
        self._send(
            ResponseTextDeltaEvent(
                type="response.output_text.delta", event_id=_event_id(),
                response_id=response_id, item_id=item_id, output_index=output_index,
                content_index=0, delta=delta,
            )
        )  # fmt: skip

    def transcript_delta(
        self, response_id: str, item_id: str, output_index: int, delta: str
    ) -> None:
        self._send(
            ResponseAudioTranscriptDeltaEvent(
                type="response.output_audio_transcript.delta", event_id=_event_id(),
                response_id=response_id, item_id=item_id, output_index=output_index,
                content_index=0, delta=delta,
            )
        )  # fmt: skip

    def arguments_delta(
        self, response_id: str, item_id: str, output_index: int, call_id: str, delta: str
    ) -> None:
        self._send(
            ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta", event_id=_event_id(),
                response_id=response_id, item_id=item_id, output_index=output_index,
                call_id=call_id, delta=delta,
            )
        )  # fmt: skip

    def arguments_done(
        self, response_id: str, item_id: str, output_index: int, call_id: str, name: str,
        arguments: str,
    ) -> None:  # fmt: skip
        self._send(
            ResponseFunctionCallArgumentsDoneEvent(
                type="response.function_call_arguments.done", event_id=_event_id(),
                response_id=response_id, item_id=item_id, output_index=output_index,
                call_id=call_id, name=name, arguments=arguments,
            )
        )  # fmt: skip

    def audio_delta(self, response_id: str, item_id: str, audio_base64: str) -> None:
        self._send(
            ResponseAudioDeltaEvent(
                type="response.output_audio.delta", event_id=_event_id(),
                response_id=response_id, item_id=item_id, output_index=0, content_index=0,
                delta=audio_base64,
            )
        )  # fmt: skip

    def content_done(
        self, response_id: str, item_id: str, output_index: int, text: str, *, with_audio: bool
    ) -> None:
        """The end of a message's content: audio and transcript, or text; then the part."""
        common: dict[str, Any] = {
            "response_id": response_id, "item_id": item_id,
            "output_index": output_index, "content_index": 0,
        }  # fmt: skip
        if with_audio:
            self._send(
                ResponseAudioDoneEvent(
                    type="response.output_audio.done", event_id=_event_id(), **common
                )
            )
            self._send(
                ResponseAudioTranscriptDoneEvent(
                    type="response.output_audio_transcript.done", event_id=_event_id(),
                    transcript=text, **common,
                )
            )  # fmt: skip
            part = DonePart(type="audio", transcript=text)
        else:
            self._send(
                ResponseTextDoneEvent(
                    type="response.output_text.done", event_id=_event_id(), text=text, **common
                )
            )
            part = DonePart(type="text", text=text)
        self._send(
            ResponseContentPartDoneEvent(
                type="response.content_part.done", event_id=_event_id(), part=part, **common
            )
        )

    # --- the output audio buffer (WebRTC: audio is on the track) --------------------------

    def output_buffer_started(self, response_id: str) -> None:
        self._send(
            OutputAudioBufferStarted(
                type="output_audio_buffer.started", event_id=_event_id(), response_id=response_id
            )
        )

    def output_buffer_stopped(self, response_id: str) -> None:
        self._send(
            OutputAudioBufferStopped(
                type="output_audio_buffer.stopped", event_id=_event_id(), response_id=response_id
            )
        )

    def output_buffer_cleared(self, response_id: str) -> None:
        self._send(
            OutputAudioBufferCleared(
                type="output_audio_buffer.cleared", event_id=_event_id(), response_id=response_id
            )
        )
