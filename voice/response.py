"""One bot reply: the model's text spoken clause by clause while it writes, and its calls.

A :class:`ResponseRun` is a handle that the :class:`~voice.floor.Floor` starts and may stop
(barge-in, ``response.cancel``). Its outputs are a spoken (or written) message, and the
function calls the model makes (``function_call`` items, never spoken). It keeps what it
said (``text``, and for audio the ``segments``: each clause with where its audio lies),
but it does not decide what was heard, nor touch the conversation: it tells the floor of
each output item as it appears (``on_output``) and when it ends (``on_end``).

A run started with ``held=True`` is *prepared* ahead of the user's turn: the model writes
and the first clauses are synthesized, but nothing reaches the client or the audio output
until :meth:`ResponseRun.release`. Stopping a held run leaves no trace on the wire.

A run can also be *split* when the client was told the user is speaking over it (and so
flushed its audio): the response the client knew ends there as cancelled
(:meth:`ResponseRun.end_for_speech`), and the run goes on, held, as a new response whose
audio starts again at the clause that was cut (:meth:`ResponseRun.reopen`). Released, it
is the continuation; stopped, it leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from openai.types.realtime import RealtimeResponseUsage

from voice.clock import Clock
from voice.conversation import Item, ItemStatus, SpokenSegment
from voice.interfaces import ChatModel
from voice.llm import StreamReport
from voice.playout import AudioOutput
from voice.protocol import new_id
from voice.speech import Speaker, TurnTimings
from voice.tasks import cancel_and_wait
from voice.tools import Message, ToolCallDelta, ToolSpec
from voice.voices import Voice
from voice.wire import ServerEvents
from voice.wire_items import (
    CancelReason,
    ResponseStatus,
    WireItem,
    assistant_item,
    response_object,
    usage_of,
    wire_item,
)

log = logging.getLogger(__name__)

#: Told of each output item as it is announced; returns the id of the item before it in
#: the conversation (None: first, or out of band).
OnOutput = Callable[["ResponseRun", Item], str | None]


@dataclass(frozen=True)
class ReplyPlan:
    """What a reply is made of (see :class:`voice.prepared.ReplyRecipe` for its identity)."""

    messages: list[Message]
    voice: Voice
    with_audio: bool
    max_tokens: int | None
    #: Spoken as is instead of asking the model (a greeting).
    script: str | None = None
    #: False for an out-of-band reply: not added to the conversation, nor remembered.
    in_conversation: bool = True
    #: The client's tags, echoed in ``response.created`` / ``response.done``.
    metadata: dict[str, str] | None = None
    #: Functions the model may call in this reply.
    tools: ToolSpec | None = None


class ResponseRun:
    """Generates one reply: a message from the LLM (spoken by the TTS), and its calls."""

    def __init__(
        self,
        plan: ReplyPlan,
        *,
        llm: ChatModel,
        output: AudioOutput,
        events: ServerEvents,
        clock: Clock,
        on_output: OnOutput,
        on_end: Callable[[ResponseRun], None],
        held: bool = False,
        first_chunk_phrase_words: int = 0,
    ) -> None:
        self.id = new_id("resp")
        #: The id the reply's message item has (or will have, once it says something).
        self.item_id = new_id("item")
        #: The conversation item before the message's, once it is announced.
        self.previous_item_id: str | None = None
        self.status: ResponseStatus = "in_progress"
        #: What the reply said so far (for a cancelled reply, what the user heard).
        self.text = ""
        #: For audio: each spoken chunk's text and where its audio lies in the output.
        self.segments: list[SpokenSegment] = []
        #: The function calls the model made, in order.
        self.calls: list[Item] = []
        self.timings = TurnTimings(created=clock.now())
        #: What the model's stream said of itself (finish reason, tokens).
        self.report = StreamReport()
        #: A held run that failed before release (a fresh run should answer instead).
        self.failure: BaseException | None = None
        #: ``response.created`` went (or is going) out: from now on the client knows this run.
        self.announced = False
        #: The run was split (:meth:`reopen`): the client knew an earlier response of it.
        self.reopened = False
        #: Its usage was counted (once per run, however often it was split).
        self.usage_counted = False
        self._plan = plan
        self._llm = llm
        self._output = output
        self._events = events
        self._clock = clock
        self._on_output = on_output
        self._on_end = on_end
        self._first_chunk_phrase_words = first_chunk_phrase_words
        self._task: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        if not held:
            self._released.set()
        self._open_lock = asyncio.Lock()
        #: Output items in the order they were announced (their output_index).
        self._outputs: list[str] = []
        #: The model wrote words (the message comes before any call that follows them).
        self._wrote = False
        self._call_index: dict[int, Item] = {}
        #: After a split: audio sent under earlier responses, and how to wait for the audio
        #: that is being sent again; the status a run that had ended will end with again.
        self._earlier_audio_ms = 0.0
        self._replayed: Callable[[], Awaitable[None]] | None = None
        self._ended_as: ResponseStatus | None = None
        self._usage_told = False

    @property
    def done(self) -> bool:
        return self.status != "in_progress"

    async def finished(self) -> None:
        """Wait until the run has ended, however it ends (waiting is not stopping it)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    @property
    def held(self) -> bool:
        return not self._released.is_set()

    @property
    def with_audio(self) -> bool:
        return self._plan.with_audio

    @property
    def in_conversation(self) -> bool:
        return self._plan.in_conversation

    @property
    def message_announced(self) -> bool:
        return self.item_id in self._outputs

    def start(self) -> asyncio.Task[None]:
        """Start generating; a held run answers only after :meth:`release`."""
        self._task = asyncio.create_task(self._run(), name=f"response-{self.id}")
        return self._task

    async def release(self) -> None:
        """Make a held run the live response: announce it and let its audio out."""
        self.timings.released = self._clock.now()
        self._released.set()
        await self._opened()
        if self.reopened and self.segments and not self.message_announced:
            self._open_message(begin_output=False)  # the output was rewound for it
            self._events.transcript_delta(
                self.id, self.item_id, self._index(self.item_id), self.text
            )

    @property
    def audio_ms(self) -> float:
        """Where the audio of the chunks spoken so far ends."""
        return self.segments[-1].end_ms if self.segments else 0.0

    @property
    def audio_sent_ms(self) -> float:
        """Audio of the current response sent so far."""
        return self._output.sent_ms() if self.with_audio and self.message_announced else 0.0

    @property
    def audio_out_ms(self) -> float:
        """Audio the run sent in all, over every response it was split into."""
        return self._earlier_audio_ms + self.audio_sent_ms

    async def stop(self) -> bool:
        """Stop generating and sending. True if that stopped it; False if it had ended.

        A stopped run stays ``in_progress`` until :meth:`end_cancelled` says what was heard.
        """
        if self.done:
            return False
        await cancel_and_wait(self._task)
        return not self.done  # it may have finished on its own while being stopped

    def end_cancelled(self, reason: CancelReason, heard: str, *, emit: bool = True) -> None:
        """A stopped run ends as cancelled, keeping ``heard`` as its text.

        A run never announced (held) ends silently: the client never heard of it. With
        ``emit=False`` (the client is gone) no closing events are sent either.
        """
        self.status = "cancelled"
        self.text = heard
        for call in self.calls:
            if call.status == "in_progress":
                call.status = "incomplete"
        if self.announced and emit:
            self._emit_end(reason)
        self._on_end(self)

    def end_for_speech(self, heard: str) -> None:
        """The client was told the user speaks over the reply: the response it knows ends
        now, cancelled (``turn_detected``), with ``heard`` as its text. A run that had
        ended already keeps the end it had. Generation goes on: :meth:`reopen` follows.
        """
        if self.done:
            self._ended_as = self.status
            return
        self.status, self.text = "cancelled", heard
        self._emit_end("turn_detected")

    def reopen(self, from_ms: float, replayed: Callable[[], Awaitable[None]]) -> None:
        """After :meth:`end_for_speech`: the run is held as a new response (new ids) whose
        audio starts at ``from_ms`` of the old one (a clause's start), which the output
        sends again on release; ``replayed`` waits until it has. A run that had ended
        ends again once that audio is out.
        """
        self._earlier_audio_ms += self.audio_sent_ms
        self.segments = [
            SpokenSegment(segment.text, segment.start_ms - from_ms, segment.end_ms - from_ms)
            for segment in self.segments
            if segment.start_ms >= from_ms - 0.5
        ]
        self.text = " ".join(segment.text for segment in self.segments if segment.text)
        self.id, self.item_id, self.previous_item_id = new_id("resp"), new_id("item"), None
        self.status, self.announced, self.reopened = "in_progress", False, True
        self._outputs = []
        self._replayed = replayed
        self._released.clear()
        if self._ended_as is not None:
            self._task = asyncio.create_task(self._say_again(), name=f"response-{self.id}")

    async def _say_again(self) -> None:
        """A run that had ended, split: once released, its cut audio goes out again."""
        await self._opened()
        assert self._ended_as is not None and self._replayed is not None
        await self._replayed()
        self.status = self._ended_as
        self._emit_end(None)
        self._on_end(self)

    # --- the pipeline -----------------------------------------------------------------

    async def _opened(self) -> None:
        """Wait for release, then announce the response (once) before its first output."""
        if self.announced:
            return
        await self._released.wait()
        async with self._open_lock:
            if not self.announced:
                self.announced = True
                self._events.response_created(
                    response_object(
                        self.id, self.status, [], with_audio=self.with_audio,
                        metadata=self._plan.metadata,
                    )
                )  # fmt: skip

    async def _message_opened(self) -> None:
        """Announce the message item (once) before its first text or audio."""
        await self._opened()
        if not self.message_announced:
            self._open_message(begin_output=True)

    def _open_message(self, *, begin_output: bool) -> None:
        item = Item(self.item_id, "assistant", status="in_progress", from_audio=self.with_audio)
        self.previous_item_id = self._announce(item)
        self._events.content_part_added(
            self.id, self.item_id, self._index(self.item_id), with_audio=self.with_audio
        )
        if self.with_audio and begin_output:
            self._output.begin(self.id, self.item_id)

    def _announce(self, item: Item) -> str | None:
        """A new output item: to the client, and to the floor (for the conversation)."""
        self._outputs.append(item.id)
        wire = self._wire(item.id)
        self._events.output_item_added(self.id, self._index(item.id), wire)
        previous = self._on_output(self, item)
        if self.in_conversation:
            self._events.item_added(wire, previous)
        return previous

    def _index(self, item_id: str) -> int:
        return self._outputs.index(item_id)

    async def _run(self) -> None:
        if not self.held:
            await self._opened()
        speaker = Speaker(
            self._plan.voice, self._output, self._clock, self.timings,
            first_chunk_phrase_words=self._first_chunk_phrase_words, spoken=self._spoken,
        )  # fmt: skip
        failure: BaseException | None = None
        try:
            async with (
                speaker.speaking(self.with_audio),
                contextlib.aclosing(self._pieces()) as pieces,  # a TTS error closes the stream
            ):
                async for piece in pieces:
                    if isinstance(piece, ToolCallDelta):
                        await self._call(piece)
                    elif self.with_audio:
                        self._wrote = True
                        await speaker.push(piece)
                    else:
                        await self._write(piece)
        except* Exception as errors:  # LLM or TTS error: the response fails, the call goes on
            failure = errors.exceptions[0]
        if failure is not None and self.held:
            self.failure = failure  # the floor answers with a fresh run instead
        await self._opened()
        if not self._outputs or (self.text and not self.message_announced):
            await self._message_opened()  # an empty reply still has its (empty) message
        if failure is not None:
            log.warning("response %s failed: %r", self.id, failure)
            self.status = "failed"
            self._settle_calls("incomplete")
            self._emit_end(None, error=f"{type(failure).__name__}: {failure}")
            self._on_end(self)
            return
        if self._replayed is not None:
            await self._replayed()  # the audio said again is out before the response ends
        self.status = "incomplete" if self.report.cut_off else "completed"
        self._settle_calls(self.status)  # a call cut at the limit has partial arguments
        self._emit_end(None)
        self._on_end(self)

    async def _pieces(self) -> AsyncGenerator[str | ToolCallDelta, None]:
        """The reply as it is written: the model's stream, or the script."""
        if self._plan.script is not None:
            yield self._plan.script
            return
        stream = self._llm.stream(
            self._plan.messages, max_tokens=self._plan.max_tokens, report=self.report,
            tools=self._plan.tools,
        )  # fmt: skip
        # Read at the speech's pace (the Speaker takes text as fast as its audio plays): on
        # a busy machine a model writing far ahead took the cores from the other calls'
        # first clauses. The copy of the model stays held meanwhile (voice.llm_pool).
        async for piece in stream:
            if self.timings.first_text is None:
                self.timings.first_text = self._clock.now()
            yield piece

    async def _write(self, delta: str) -> None:
        """Text output: each delta goes out as it comes."""
        await self._message_opened()
        self.text += delta
        self._events.text_delta(self.id, self.item_id, self._index(self.item_id), delta)

    async def _spoken(self, text: str, duration_ms: float) -> None:
        """The speaker is about to send a chunk's audio: record where its words lie in the
        reply's audio, and send them (a barge-in landing while it plays maps the play
        position onto the right words). Trailing audio with no words extends the last."""
        await self._message_opened()
        start_ms = self.audio_sent_ms
        if not text and self.segments:
            self.segments[-1].end_ms = start_ms + duration_ms
            return
        self.segments.append(SpokenSegment(text, start_ms, start_ms + duration_ms))
        separator = " " if self.text and text else ""
        self.text += separator + text
        if text:
            self._events.transcript_delta(
                self.id, self.item_id, self._index(self.item_id), separator + text
            )

    async def _call(self, delta: ToolCallDelta) -> None:
        """A piece of a function call: a new ``function_call`` item, or its arguments."""
        await (self._message_opened() if self._wrote else self._opened())
        call = self._call_index.get(delta.index)
        if call is None:
            call = Item(
                new_id("item"), "assistant", status="in_progress", kind="function_call",
                call_id=delta.call_id or new_id("call"), name=delta.name or "",
            )  # fmt: skip
            self._call_index[delta.index] = call
            self.calls.append(call)
            self._announce(call)
        if delta.arguments:
            call.arguments += delta.arguments
            self._events.arguments_delta(
                self.id, call.id, self._index(call.id), call.call_id, delta.arguments
            )

    def _settle_calls(self, status: ItemStatus) -> None:
        for call in self.calls:
            if call.status == "in_progress":
                call.status = status

    # --- lifecycle events ---------------------------------------------------------------

    @property
    def item_status(self) -> ItemStatus:
        """The status of the reply's message: in progress, completed, or incomplete."""
        if not self.done:
            return "in_progress"
        return "completed" if self.status == "completed" else "incomplete"

    def wire_item(self) -> WireItem:
        return assistant_item(self.item_id, self.text, self.item_status, with_audio=self.with_audio)

    def _wire(self, item_id: str) -> WireItem:
        if item_id == self.item_id:
            return self.wire_item()
        return wire_item(next(call for call in self.calls if call.id == item_id))

    def _usage(self) -> RealtimeResponseUsage | None:
        """The tokens for ``response.done``: told once per run, so a split run's
        continuation, whose tokens its first response told already, tells zeros."""
        if self._plan.script is not None:
            return None
        if self._usage_told:
            return usage_of(StreamReport(input_tokens=0, output_tokens=0))
        usage = usage_of(self.report)
        self._usage_told = usage is not None
        return usage

    def _emit_end(self, reason: CancelReason | None, error: str | None = None) -> None:
        events = self._events
        for item_id in self._outputs:
            index, wire = self._index(item_id), self._wire(item_id)
            if item_id == self.item_id:
                events.content_done(self.id, item_id, index, self.text, with_audio=self.with_audio)
            else:
                call = next(call for call in self.calls if call.id == item_id)
                if call.status == "completed":
                    events.arguments_done(
                        self.id, call.id, index, call.call_id, call.name, call.arguments
                    )
            events.output_item_done(self.id, index, wire)
            if self.in_conversation:
                events.item_done(wire, self.previous_item_id if item_id == self.item_id else None)
        output = [self._wire(item_id) for item_id in self._outputs]
        events.response_done(
            response_object(
                self.id, self.status, output, with_audio=self.with_audio, reason=reason,
                error=error, metadata=self._plan.metadata,
                usage=self._usage(),
            )
        )  # fmt: skip
