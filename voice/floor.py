"""The bot's turn: at most one live reply and one prepared reply, and the audio they play.

The :class:`Floor` is the only caller of the audio output's ``pause``, ``resume``,
``clear`` and ``finish``, and the one place that decides what the user heard of a reply:
when a reply is stopped or truncated it reads the play position once, keeps the words
whose audio lies before it, and writes that into the conversation. A reply is a
:class:`~voice.response.ResponseRun`; it says what it produced, the floor puts it into
the conversation when it is announced and settles its item when it ends. (A reply's
output is one message today; items that are not audio, such as function calls, fit the
same lifecycle.)

When the client is told of speech over the reply as soon as the bot pauses (the
WebSocket: its client holds audio and flushes it), the reply is split there: the response
the client knew ends with what was heard, and the rest is held as a *continuation* that
starts again at the clause that was cut. Speech that does not interrupt releases it;
speech that does drops it unheard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from voice.clock import Clock
from voice.conversation import Conversation, Item, text_heard
from voice.echo_words import LOOKAHEAD_MS, RECENT_MS, words_played
from voice.endpointing import SpeechStarted
from voice.interfaces import ChatModel
from voice.playout import AudioOutput, WebSocketAudioOutput
from voice.prepared import BuildPlan, PreparedReply, ReplyRecipe
from voice.protocol import ProtocolError
from voice.response import ReplyPlan, ResponseRun
from voice.tasks import cancel_and_wait
from voice.turn_log import TurnLog
from voice.turns import Action, DropSpeculative, InterruptBot, PauseBot, ResumeBot
from voice.user_turns import TurnTimes
from voice.wire import ServerEvents
from voice.wire_items import CancelReason

log = logging.getLogger(__name__)

#: Told when an announced reply ended: the run, and its conversation item (as heard).
OnReplyEnd = Callable[[ResponseRun, Item], None]


class Floor:
    """Who speaks for the bot, and what of it was heard."""

    def __init__(
        self,
        output: AudioOutput,
        llm: ChatModel,
        conversation: Conversation,
        events: ServerEvents,
        clock: Clock,
        turn_log: TurnLog,
        *,
        on_reply_end: OnReplyEnd,
        first_chunk_phrase_words: int = 0,
        on_run_end: Callable[[ResponseRun], None] = lambda run: None,
    ) -> None:
        self.output = output
        self._llm = llm
        self._conversation = conversation
        self._events = events
        self._clock = clock
        self._turn_log = turn_log
        self._on_reply_end = on_reply_end
        self._on_run_end = on_run_end
        self._first_chunk_phrase_words = first_chunk_phrase_words
        #: The reply the client knows of (speaking, or finished but maybe still playing).
        self.live: ResponseRun | None = None
        #: Out-of-band replies that only write text, beside the live one, by id.
        self._side: dict[str, ResponseRun] = {}
        self._prepared = PreparedReply()
        self._preparing: asyncio.Task[None] | None = None
        self._times: dict[str, TurnTimes] = {}
        #: Onset of the latest user speech, and whether the bot was paused for it.
        self._onset_ms = 0
        self._paused_for_speech = False
        #: The rest of a reply split at a noticed pause, held until the speech is decided.
        self._continuation: ResponseRun | None = None
        #: The bot's words played just before it last paused for speech over it: what its
        #: echo in that speech would say.
        self.words_before_pause = ""

    @property
    def responding(self) -> bool:
        return self.live is not None and not self.live.done

    @property
    def bot_audible(self) -> bool:
        """Bot audio is playing (or paused mid-reply) for the user right now."""
        if self._continuation is not None:
            return True  # paused for speech over it, to go on unless it interrupts
        run, output = self.live, self.output
        if run is None or not run.with_audio or not run.message_announced:
            return False
        if output.sent_ms() <= 0:
            return False
        return not run.done or output.played_ms() < output.sent_ms()

    @property
    def busy_tasks(self) -> int:
        runs = (self.live, self._prepared.run, *self._side.values())
        preparing = self._preparing is not None and not self._preparing.done()
        return preparing + sum(1 for run in runs if run is not None and not run.done)

    # --- replies ----------------------------------------------------------------------

    async def reply(
        self, plan: ReplyPlan, recipe: ReplyRecipe | None, times: TurnTimes | None = None
    ) -> ResponseRun:
        """Answer now: with the prepared reply if it was made for ``recipe``, else afresh.

        Any other prepared reply is dropped unheard. An out-of-band reply that only writes
        text runs beside the live one; any other reply becomes the live one.
        """
        if not plan.in_conversation and not plan.with_audio:
            run = self._new_run(plan, held=False)
            self._side[run.id] = run
            run.start()
            return run
        await cancel_and_wait(self._preparing)
        prepared = self._prepared.take(recipe) if recipe is not None else None
        await self._prepared.discard()
        run = prepared or self._new_run(plan, held=False)
        self.live = run
        if times is not None:
            self._times[run.id] = times
        if prepared is not None:
            await prepared.release()
        else:
            run.start()
        return run

    async def say_to_end(self, plan: ReplyPlan) -> None:
        """Say ``plan`` (a script) and wait until the client has played all of it."""
        run = await self.reply(plan, None)
        await run.finished()
        while self.output.played_ms() < self.output.sent_ms():
            await self._clock.sleep(0.05)

    def prepare(self, build: BuildPlan) -> asyncio.Task[None]:
        """Prepare the reply ``build`` works out, held until :meth:`reply` asks for it.

        It replaces any reply prepared or being prepared before. The task returned is done
        once the reply is held (or was not wanted): a turn must not end before that, or its
        reply is made afresh.
        """
        if self._preparing is not None:
            self._preparing.cancel()
        self._preparing = asyncio.create_task(self._prepare(build), name="prepare-reply")
        return self._preparing

    async def _prepare(self, build: BuildPlan) -> None:
        started = self._clock.now()
        await self._prepared.discard()
        built = await build()
        if built is None:
            return
        plan, recipe = built
        run = self._new_run(plan, held=True)
        run.start()
        self._prepared.hold(recipe, run)
        log.debug("reply prepared (planned in %.3f s)", self._clock.now() - started)

    async def drop_prepared(self) -> None:
        """Drop the prepared reply (and one being prepared) unheard."""
        await cancel_and_wait(self._preparing)
        await self._prepared.discard()

    def _new_run(self, plan: ReplyPlan, *, held: bool) -> ResponseRun:
        return ResponseRun(
            plan,
            llm=self._llm,
            output=self.output,
            events=self._events,
            clock=self._clock,
            on_output=self._placed,
            on_end=self._ended,
            held=held,
            first_chunk_phrase_words=self._first_chunk_phrase_words,
        )

    def _placed(self, run: ResponseRun, output: Item) -> str | None:
        """A run's new output item joins the conversation (unless it is out of band)."""
        if not run.in_conversation:
            return None
        return self._conversation.add(
            Item(
                output.id, "assistant", status="in_progress", from_audio=output.from_audio,
                kind=output.kind, call_id=output.call_id, name=output.name,
            )
        )  # fmt: skip

    def _ended(self, run: ResponseRun) -> None:
        """A run ended (after its closing events): settle its items, finish its audio."""
        times = self._times.pop(run.id, None)
        self._side.pop(run.id, None)
        if (run.announced or run.reopened) and not run.usage_counted:
            run.usage_counted = True  # every response the client knew of, in conversation or not
            self._on_run_end(run)
        if not run.announced:
            return
        if run.with_audio and run.message_announced:
            self.output.finish(run.id)
        if not run.in_conversation:
            return
        for call in run.calls:
            if (placed := self._conversation.get(call.id)) is not None:
                placed.arguments, placed.status = call.arguments, call.status
        item = self._conversation.get(run.item_id)
        if item is None:  # deleted while it was speaking, or it never spoke (calls only)
            item = Item(run.item_id, "assistant", from_audio=run.with_audio)
        item.text, item.segments, item.status = run.text, list(run.segments), run.item_status
        if times is not None:
            self._turn_log.reply_ended(times, run)
        self._on_reply_end(run, item)

    # --- interruptions -------------------------------------------------------------------

    async def take(self, action: Action, *, interrupt_response: bool) -> None:
        """Carry out the bot's side of a turn-taking decision (others are the user's)."""
        match action:
            case SpeechStarted(audio_start_ms=start_ms):
                self._onset_ms = start_ms
                await self.drop_prepared()
                # A reply not audible yet (still being written) would answer too early.
                if interrupt_response and self.responding and not self.bot_audible:
                    await self.interrupt("turn_detected")
            case DropSpeculative():
                await self.drop_prepared()
            case PauseBot(onset_ms=onset_ms, noticed=noticed):
                self.words_before_pause = self._last_words()
                self.pause()
                self._paused_for_speech = True
                self._turn_log.barge_in_stopped(onset_ms)
                if noticed:
                    self._split()
            case ResumeBot():
                self._paused_for_speech = False
                continuation, self._continuation = self._continuation, None
                if continuation is not None and not continuation.done:
                    await continuation.release()
                self.resume()
            case InterruptBot():
                if not self._paused_for_speech and self.bot_audible:
                    # Interrupted at onset: the stop is measured now (else at the pause).
                    self._turn_log.barge_in_stopped(self._onset_ms)
                self._paused_for_speech = False
                await self.interrupt("turn_detected")

    def pause(self) -> None:
        """Speech over the bot: stop its audio while turn-taking decides."""
        self.output.pause()

    def _last_words(self) -> str:
        """The live reply's words played in the last moments (its echo may follow them)."""
        run = self.live
        if run is None or not run.with_audio:
            return ""
        played = self.output.played_ms()
        return words_played(run.segments, played - RECENT_MS, played + LOOKAHEAD_MS)

    def _split(self) -> None:
        """The client was told of speech over the reply and flushes its audio: end the
        response it knew at what was heard, and hold the rest, from the start of the clause
        that was cut, as the continuation. Left as it is when there is nothing unheard, when
        the reply made calls, or when that audio is no longer kept."""
        run, output = self.live, self.output
        if not isinstance(output, WebSocketAudioOutput) or run is None or run.calls:
            return
        if not run.with_audio or not run.message_announced:
            return
        played = output.played_ms()
        cut = next((segment for segment in run.segments if segment.end_ms > played), None)
        start_ms = cut.start_ms if cut is not None else output.sent_ms()
        if (cut is None and run.done) or not output.can_rewind(start_ms):
            return
        heard, item_id, segments, was_done = (
            text_heard(run.segments, played), run.item_id, list(run.segments), run.done
        )  # fmt: skip
        run.end_for_speech(heard)
        self._events.item_truncated(item_id, played)
        item = self._conversation.get(item_id) if run.in_conversation else None
        if item is not None:
            item.text, item.segments, item.status = heard, segments, "incomplete"
            if not was_done:  # a reply that had ended was recorded then (this item, as heard)
                self._on_reply_end(run, item)
        if (times := self._times.pop(run.id, None)) is not None:
            self._turn_log.reply_ended(times, run)
        run.reopen(start_ms, output.replayed)
        output.rewind(run.id, run.item_id, start_ms)
        self._continuation = run
        log.debug("reply split at %.0f ms for speech over it", played)

    async def _drop_continuation(self) -> bool:
        """The speech over the reply interrupts: its continuation goes unheard."""
        continuation, self._continuation = self._continuation, None
        if continuation is None:
            return False
        if not continuation.done:
            await self._stop(continuation, "turn_detected")
        await self.output.clear()
        return True

    def resume(self) -> None:
        """It was not an interruption: the bot goes on where it paused."""
        self.output.resume()

    async def interrupt(self, reason: CancelReason) -> None:
        """Barge-in: stop the reply and keep in history only what was (likely) heard."""
        run = self.live
        if run is None or await self._drop_continuation():
            return
        if not run.done:
            await self._stop(run, reason, truncated=True)
            return
        # Generation finished, but the client may still be playing the audio we sent.
        await self.output.clear()
        played = self.output.played_ms() if run.with_audio else 0.0
        item = self._conversation.get(run.item_id)
        if item is not None and item.segments and played < self.output.sent_ms():
            item.text = text_heard(item.segments, played)
            self._events.item_truncated(item.id, played)

    def check_free(self) -> None:
        """``response.create`` needs the floor free: no reply may be generating."""
        if self.responding:
            raise ProtocolError(
                "conversation already has an active response; cancel it first",
                code="conversation_already_has_active_response",
            )

    async def cancel(self, response_id: str | None = None) -> None:
        """``response.cancel``: stop the reply ``response_id`` (default: the live one).

        An error when it is not generating (or does not exist).
        """
        run = self.live if response_id is None else self._run_by_id(response_id)
        if run is None or run.done or run is self._continuation:  # it ended for the client
            which = f"with id '{response_id}'" if response_id else "to cancel"
            raise ProtocolError(f"no active response {which}", code="response_cancel_not_active")
        await self._stop(run, "client_cancelled")

    def _run_by_id(self, response_id: str) -> ResponseRun | None:
        if self.live is not None and self.live.id == response_id:
            return self.live
        return self._side.get(response_id)

    async def truncate(self, item: Item, audio_end_ms: int) -> None:
        """The client heard ``item`` up to ``audio_end_ms`` and no further."""
        run = self.live
        if run is not None and run.item_id == item.id:
            if not run.done:
                await self._stop(run, "client_cancelled", played_ms=audio_end_ms)
            await self.output.clear()  # drop what is still queued beyond that point
        item.text = text_heard(item.segments, audio_end_ms)
        item.status = "incomplete"
        self._events.item_truncated(item.id, audio_end_ms)

    async def stop_item(self, item_id: str) -> None:
        """The reply writing ``item_id`` stops (the item is being deleted)."""
        if self.live is not None and self.live.item_id == item_id and not self.live.done:
            await self._stop(self.live, "client_cancelled")

    async def _stop(
        self,
        run: ResponseRun,
        reason: CancelReason,
        *,
        truncated: bool = False,
        played_ms: float | None = None,
        emit: bool = True,
    ) -> None:
        """Stop ``run``; its text becomes what was heard (at ``played_ms``, default: now)."""
        if not await run.stop():
            return  # it finished on its own meanwhile
        heard, played = run.text, 0.0
        if run.message_announced and run.with_audio:
            await self.output.clear()
            played = self.output.played_ms() if played_ms is None else played_ms
            heard = text_heard(run.segments, played)
        run.end_cancelled(reason, heard, emit=emit)
        if truncated and run.announced and emit:
            self._events.item_truncated(run.item_id, played)

    async def aclose(self) -> None:
        """Stop every reply without a word to the client (it is gone). Safe twice."""
        self._continuation = None
        await self.drop_prepared()
        for run in [self.live, *self._side.values()]:
            if run is not None and not run.done:
                await self._stop(run, "client_cancelled", emit=False)
