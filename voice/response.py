"""One bot turn: LLM text streamed into clauses, each clause synthesized while the model writes.

A :class:`ResponseRun` is a handle. The session starts it, may cancel it (barge-in,
``response.cancel``), and learns from it how much audio it sent, so the history can keep
only what the user heard.

A run started with ``held=True`` is *prepared* ahead of the user's turn: the model writes
and the first clauses are synthesized, but nothing reaches the client or the audio output
until :meth:`ResponseRun.release`. Cancelling a held run leaves no trace on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.realtime import (
    ConversationItemAdded,
    RealtimeConversationItemAssistantMessage,
    RealtimeResponse,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.realtime.realtime_conversation_item_assistant_message import Content
from openai.types.realtime.realtime_response_status import Error, RealtimeResponseStatus
from openai.types.realtime.response_content_part_added_event import Part as AddedPart
from openai.types.realtime.response_content_part_done_event import Part as DonePart

from voice.audio import Float32Array, StreamResampler
from voice.chunking import SentenceChunker
from voice.conversation import Item, SpokenSegment, text_heard
from voice.delivery import plan_speech, plan_transcript
from voice.llm import ChatLLM
from voice.playout import AudioOutput
from voice.protocol import ServerEvent, new_id
from voice.tasks import cancel_and_wait
from voice.tts import synthesize_plan
from voice.voices import Voice

log = logging.getLogger(__name__)

Emit = Callable[[ServerEvent], Awaitable[None]]
#: Text chunks waiting for synthesis; when full, reading from the LLM pauses (backpressure).
MAX_PENDING_CHUNKS = 8


@dataclass
class TurnTimings:
    """Timestamps (seconds on the session clock) of one response's milestones."""

    created: float = 0.0
    first_text: float | None = None
    #: The first clause's audio was synthesized (for a held run: maybe before release).
    first_synthesized: float | None = None
    #: A held run was released (its reply became the answer to the user's turn).
    released: float | None = None
    first_audio: float | None = None
    last_audio: float | None = None


class ResponseRun:
    """Generates one assistant message: text from the LLM, audio from the TTS."""

    def __init__(
        self,
        *,
        item: Item,
        output_index: int,
        llm: ChatLLM,
        voice: Voice,
        messages: list[dict[str, str]],
        output: AudioOutput,
        with_audio: bool,
        max_tokens: int | None,
        emit: Emit,
        clock: Callable[[], float] = time.perf_counter,
        script: str | None = None,
        held: bool = False,
        first_chunk_phrase_words: int = 0,
    ) -> None:
        self.id = new_id("resp")
        #: The conversation item before this reply's, known once it joins the conversation.
        self.previous_item_id: str | None = None
        self.item = item
        self.output_index = output_index
        self.status: Literal["in_progress", "completed", "cancelled", "failed"] = "in_progress"
        self._clock = clock
        self.timings = TurnTimings(created=clock())
        self._llm = llm
        self._voice = voice
        self._messages = messages
        self._output = output
        self._script = script
        self._first_chunk_phrase_words = first_chunk_phrase_words
        #: Set by the session once the reply went into the companion's memory.
        self.recorded = False
        self._with_audio = with_audio
        self._max_tokens = max_tokens
        self._emit = emit
        self._task: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        if not held:
            self._released.set()
        self._open_lock = asyncio.Lock()
        #: ``response.created`` went (or is going) out: from now on the client knows this run.
        self._announced = False
        self._open = False
        #: A held run that failed before release (a fresh run should answer instead).
        self.failure: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.status != "in_progress"

    @property
    def held(self) -> bool:
        return not self._released.is_set()

    @property
    def with_audio(self) -> bool:
        return self._with_audio

    def start(self, previous_item_id: str | None = None) -> asyncio.Task[None]:
        """Start generating; a held run answers only after :meth:`release`."""
        if not self.held:
            self.previous_item_id = previous_item_id
        self._task = asyncio.create_task(self._run(), name=f"response-{self.id}")
        return self._task

    async def release(self, previous_item_id: str | None) -> None:
        """Make a held run the live response: announce it and let its audio out."""
        self.previous_item_id = previous_item_id
        self.timings.released = self._clock()
        self._released.set()
        await self._opened()

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    @property
    def audio_sent_ms(self) -> float:
        return self._output.sent_ms() if self._with_audio else 0.0

    def played_ms(self) -> float:
        """How much of this response's audio the user has heard by now."""
        return self._output.played_ms() if self._with_audio else 0.0

    async def cancel(
        self, reason: Literal["turn_detected", "client_cancelled"], *, emit: bool = True
    ) -> None:
        """Stop generating and sending; the item keeps the text heard so far (estimated).

        With ``emit=False`` (the client is gone) no closing events are sent. A run never
        announced (held) is dropped silently: the client never heard of it.
        """
        if self.done:
            return
        await cancel_and_wait(self._task)
        if self.done:  # it finished on its own while being cancelled
            return
        self.status = "cancelled"
        if not self._announced:
            self.item.status = "incomplete"
            return
        if self._with_audio:
            await self._output.clear()
            self.item.text = text_heard(self.item.segments, self._output.played_ms())
        self.item.status = "incomplete"
        if emit:
            await self._emit_end(reason)

    # --- the pipeline -----------------------------------------------------------------

    async def _opened(self) -> None:
        """Wait for release, then announce the response (once) before its first output."""
        if self._open:
            return
        await self._released.wait()
        async with self._open_lock:
            if self._open:
                return
            self._announced = True
            await self._emit_start()
            if self._with_audio:
                self._output.begin(self.id, self.item.id)
            self._open = True

    async def _run(self) -> None:
        if not self.held:
            await self._opened()
        failure: BaseException | None = None
        try:
            if self._with_audio:
                chunks: asyncio.Queue[str | None] = asyncio.Queue(MAX_PENDING_CHUNKS)
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._write_text(chunks))
                    group.create_task(self._speak(chunks))
            else:
                await self._write_text(None)
        except* Exception as errors:  # LLM or TTS error: the response fails, the call goes on
            failure = errors.exceptions[0]
        if failure is not None and self.held:
            self.failure = failure  # the session answers with a fresh run instead
        await self._opened()
        if failure is not None:
            log.warning("response %s failed: %r", self.id, failure)
            self.status = "failed"
            self.item.status = "incomplete"
            await self._emit_end(None, error=f"{type(failure).__name__}: {failure}")
            return
        self.status = "completed"
        self.item.status = "completed"
        await self._emit_end(None)

    async def _write_text(self, chunks: asyncio.Queue[str | None] | None) -> None:
        """Read the LLM stream; cut it into chunks for the TTS (or send text deltas)."""
        chunker = SentenceChunker(first_chunk_phrase_words=self._first_chunk_phrase_words)
        async for delta in self._text():
            if self.timings.first_text is None:
                self.timings.first_text = self._clock()
            if chunks is None:
                await self._opened()
                self.item.text += delta
                await self._emit(
                    ResponseTextDeltaEvent(
                        type="response.output_text.delta", event_id=new_id("event"),
                        response_id=self.id, item_id=self.item.id,
                        output_index=self.output_index, content_index=0, delta=delta,
                    )
                )  # fmt: skip
                continue
            for chunk in chunker.push(delta):
                await chunks.put(chunk)
        if chunks is not None:
            for chunk in chunker.flush():
                await chunks.put(chunk)
            await chunks.put(None)

    async def _text(self) -> AsyncIterator[str]:
        """The reply's text as it is written: the model's stream, or the script."""
        if self._script is not None:
            yield self._script
            return
        async for delta in self._llm.stream(self._messages, max_tokens=self._max_tokens):
            yield delta

    async def _speak(self, chunks: asyncio.Queue[str | None]) -> None:
        """Synthesize each chunk and send its transcript and audio."""
        tts = self._voice.tts
        resampler = StreamResampler(tts.sample_rate, self._output.sample_rate)
        delivery = self._voice.delivery_state()
        while (chunk := await chunks.get()) is not None:
            # Stage directions become prosody, never words; numbers are spelled out.
            plan = plan_speech(chunk, delivery)
            text = plan_transcript(plan)
            samples = resampler.process(await synthesize_plan(tts, plan))
            if not samples.size:
                continue
            if self.timings.first_synthesized is None:
                self.timings.first_synthesized = self._clock()
            await self._opened()
            separator = " " if self.item.text and text else ""
            # Record where this chunk's audio lies before sending it: a barge-in may land
            # while it plays, and the history must then map the play position onto it.
            start_ms = self.audio_sent_ms
            duration_ms = len(samples) * 1000 / self._output.sample_rate
            self.item.segments.append(SpokenSegment(text, start_ms, start_ms + duration_ms))
            self.item.text += separator + text
            if text:
                await self._emit(
                    ResponseAudioTranscriptDeltaEvent(
                        type="response.output_audio_transcript.delta", event_id=new_id("event"),
                        response_id=self.id, item_id=self.item.id,
                        output_index=self.output_index, content_index=0, delta=separator + text,
                    )
                )  # fmt: skip
            await self._send_audio(samples)
        tail = resampler.flush()
        if tail.size:
            await self._opened()
            await self._send_audio(tail)
            if self.item.segments:
                self.item.segments[-1].end_ms = self.audio_sent_ms

    async def _send_audio(self, samples: Float32Array) -> None:
        if self.timings.first_audio is None:
            self.timings.first_audio = self._clock()
        await self._output.write(samples)
        self.timings.last_audio = self._clock()

    # --- lifecycle events ---------------------------------------------------------------

    def wire_item(self) -> RealtimeConversationItemAssistantMessage:
        text = self.item.text
        content = (
            Content(type="output_audio", transcript=text)
            if self._with_audio
            else Content(type="output_text", text=text)
        )
        return RealtimeConversationItemAssistantMessage(
            type="message", role="assistant", id=self.item.id, object="realtime.item",
            status=self.item.status, content=[content],
        )  # fmt: skip

    def _response(self, status_details: RealtimeResponseStatus | None = None) -> RealtimeResponse:
        return RealtimeResponse(
            id=self.id, object="realtime.response", status=self.status,
            status_details=status_details,
            output=[self.wire_item()] if self.status != "in_progress" else [],
            output_modalities=["audio"] if self._with_audio else ["text"],
        )  # fmt: skip

    async def _emit_start(self) -> None:
        await self._emit(
            ResponseCreatedEvent(
                type="response.created", event_id=new_id("event"), response=self._response()
            )
        )
        await self._emit(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added", event_id=new_id("event"),
                response_id=self.id, output_index=self.output_index, item=self.wire_item(),
            )
        )  # fmt: skip
        await self._emit(
            ConversationItemAdded(
                type="conversation.item.added", event_id=new_id("event"),
                item=self.wire_item(), previous_item_id=self.previous_item_id,
            )
        )  # fmt: skip
        part = (
            AddedPart(type="audio", transcript="")
            if self._with_audio
            else AddedPart(type="text", text="")
        )
        await self._emit(
            ResponseContentPartAddedEvent(
                type="response.content_part.added", event_id=new_id("event"),
                response_id=self.id, item_id=self.item.id, output_index=self.output_index,
                content_index=0, part=part,
            )
        )  # fmt: skip

    async def _emit_end(
        self,
        reason: Literal["turn_detected", "client_cancelled"] | None,
        error: str | None = None,
    ) -> None:
        common: dict[str, Any] = {
            "response_id": self.id, "item_id": self.item.id,
            "output_index": self.output_index, "content_index": 0,
        }  # fmt: skip
        text = self.item.text
        if self._with_audio:
            await self._emit(
                ResponseAudioDoneEvent(
                    type="response.output_audio.done", event_id=new_id("event"), **common
                )
            )
            await self._emit(
                ResponseAudioTranscriptDoneEvent(
                    type="response.output_audio_transcript.done", event_id=new_id("event"),
                    transcript=text, **common,
                )
            )  # fmt: skip
            part = DonePart(type="audio", transcript=text)
        else:
            await self._emit(
                ResponseTextDoneEvent(
                    type="response.output_text.done", event_id=new_id("event"), text=text,
                    **common,
                )
            )  # fmt: skip
            part = DonePart(type="text", text=text)
        await self._emit(
            ResponseContentPartDoneEvent(
                type="response.content_part.done", event_id=new_id("event"), part=part, **common
            )
        )
        await self._emit(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done", event_id=new_id("event"),
                response_id=self.id, output_index=self.output_index, item=self.wire_item(),
            )
        )  # fmt: skip
        details: RealtimeResponseStatus | None = None
        if self.status == "cancelled":
            details = RealtimeResponseStatus(type="cancelled", reason=reason)
        elif self.status == "failed":
            details = RealtimeResponseStatus(
                type="failed", error=Error(type="server_error", code=error)
            )
        await self._emit(
            ResponseDoneEvent(
                type="response.done", event_id=new_id("event"), response=self._response(details)
            )
        )
