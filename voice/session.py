"""One Realtime session: the composition root of a call, and typed dispatch of client events.

A transport hands the session client messages and input audio, and gives it ``send`` for
server events (which only queues), a :class:`~voice.clock.Clock`, and for WebRTC its own
audio output. Each job of a call has one owner, composed here (docs/architecture.md):

* :class:`~voice.listener.Listener`: input audio → echo guard → VAD → turn-taking actions;
* :class:`~voice.user_turns.UserTurns`: transcriptions and the user items they become;
* :class:`~voice.floor.Floor`: the bot's replies, the audio output, what was heard;
* :class:`~voice.persona.Persona`: the companion, and her transcript in spoken order.

Everything the session starts, it stops in :meth:`RealtimeSession.aclose`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Literal, assert_never

from openai.types import realtime as rt

from voice import items
from voice.allowance import CallAllowance
from voice.audio import Float32Array
from voice.clock import Clock, LoopClock
from voice.companion import Companions
from voice.config import Settings
from voice.conversation import Conversation, Item
from voice.floor import Floor
from voice.interfaces import SessionEngines
from voice.listener import Listener
from voice.metrics import Metrics
from voice.persona import Persona
from voice.playout import AudioOutput, WebSocketAudioOutput
from voice.protocol import ClientEvent, ProtocolError, new_id, parse_client_event
from voice.reply_plan import ReplyMaker
from voice.response import ResponseRun
from voice.response_request import ResponseRequest, response_request
from voice.session_config import SessionConfig, SessionKind
from voice.session_update import VoiceChoices, apply_update
from voice.stt import STT_SAMPLE_RATE
from voice.turn_log import TurnLog
from voice.turns import Action
from voice.usage import UsageMeter
from voice.user_turns import TurnTimes, UserTurns
from voice.wire import Send, ServerEvents, SessionObject


class RealtimeSession:
    """State and behaviour of one call."""

    def __init__(
        self,
        engines: SessionEngines,
        settings: Settings,
        send: Send,
        clock: Clock | None = None,
        output: AudioOutput | None = None,
        *,
        companions: Companions | None = None,
        user_id: str = "local",
        character: str | None = None,
        user_name: str | None = None,
        metrics: Metrics | None = None,
        kind: SessionKind = "realtime",
        usage: UsageMeter | None = None,
    ) -> None:
        self.id = new_id("sess")
        self.user_id = user_id
        self._engines = engines
        self._settings = settings
        self._clock = clock or LoopClock()
        self._events = ServerEvents(send)
        self._voices = VoiceChoices(engines.voices.names, engines.voices.aliases)
        self._persona = Persona(companions, user_id=user_id, session_id=self.id)
        self.conversation = Conversation()
        self.config = SessionConfig.defaults(
            settings, voice=engines.voices.default, user_name=user_name, kind=kind,
            character=character or (companions.default_character if companions else None),
        )  # fmt: skip
        self._listener = Listener(
            self.config.turn_config(settings, notice_at_pause=output is None),
            prefix_padding_ms=self.config.prefix_padding_ms,
            max_buffer_ms=settings.max_buffer_s * 1000, echo_guard=settings.echo_guard,
            alone=lambda: engines.calls.alone,
        )  # fmt: skip
        #: A transport with its own audio path (WebRTC) passes its sink; else audio deltas.
        self._fixed_output = output is not None
        self._turns = UserTurns(
            engines.stt, self._listener, self.conversation, self._events, self._clock,
            on_guess=self._guessed, on_actions=self._apply, on_transcribed=self._transcribed,
            turn_model=engines.turn_model, bot_words=lambda: self._floor.words_before_pause,
        )  # fmt: skip
        self._turns.transcription = self.config.transcription
        #: The user's daily allowance; ``allowance.ending`` is set when the call must end.
        self.allowance = CallAllowance(
            usage, self._events, goodbye=settings.usage_limit_message, speak=self._say_to_end
        )
        self._floor = Floor(
            self._output(output), engines.llm, self.conversation, self._events, self._clock,
            TurnLog(self.id, self._clock, metrics, self._listener.arrival_of),
            on_reply_end=self._persona.reply_ended, on_run_end=self.allowance.run_ended,
            first_chunk_phrase_words=settings.first_chunk_phrase_words,
        )  # fmt: skip
        self._replies = ReplyMaker(
            engines.voices, self.conversation, settings,
            config=lambda: self.config, companion=lambda: self._persona.companion,
        )  # fmt: skip
        #: This call's place among the calls sharing the models, until it is closed.
        self._load = engines.calls.join()
        self._closed = False

    def _output(self, given: AudioOutput | None = None) -> AudioOutput:
        """``given`` (a transport's own) or paced audio deltas, shown to the echo guard."""
        output = given if given is not None else WebSocketAudioOutput(
            self._events, self.config.output_codec,
            lead_ms=self._settings.output_lead_ms, clock=self._clock,
        )  # fmt: skip
        output.set_monitor(self._listener.echo_monitor(output.sample_rate))
        return output

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Greet the client: ``session.created``, then the character's greeting, if any."""
        error: ProtocolError | None = None
        await self.allowance.open()
        if self.config.character is not None and self.config.replies:
            try:
                await self._persona.become(self.config.character, self.config.user_name)
            except ProtocolError as exc:
                error = exc
        if self._persona.companion is None:
            self.config = dataclasses.replace(self.config, character=None)
        self._events.session_created(self.describe())
        if error is not None:
            self._events.error(error)
        if (greeting := self._persona.greeting()) is not None:
            text, voice = greeting
            if voice is not None and voice in self._voices.presets:
                self.config = dataclasses.replace(self.config, voice=voice)
            await self._respond(script=text)  # she speaks first, as on a phone she picked up

    async def aclose(self) -> None:
        """Stop every turn and reply in flight, then record what was said. Safe twice."""
        self._closed = True
        self._load.leave()
        await self._turns.aclose()
        await self._floor.aclose()
        await self.allowance.aclose()
        await self._persona.aclose()

    @property
    def busy_tasks(self) -> int:
        """Tasks this session still runs (turns and replies); zero once closed."""
        return self._turns.busy_tasks + self._floor.busy_tasks

    @property
    def response(self) -> ResponseRun | None:
        """The reply the client knows of, if any."""
        return self._floor.live

    def describe(self) -> SessionObject:
        """The effective session configuration, as sent in ``session.created/updated``."""
        return self.config.describe(self._engines.llm.model)

    # --- client events --------------------------------------------------------------------

    async def handle_text(self, text: str | bytes) -> None:
        """Parse one client message and act on it; client mistakes become ``error`` events."""
        event: ClientEvent | None = None
        try:
            event = parse_client_event(text)
            await self._dispatch(event)
        except ProtocolError as error:
            error.event_id = error.event_id or (event.event_id if event is not None else None)
            self._events.error(error)

    async def _dispatch(self, event: ClientEvent) -> None:
        match event:
            case rt.SessionUpdateEvent():
                await self._update(event)
            case rt.InputAudioBufferAppendEvent():
                codec = self.config.input_codec
                await self.push_audio(items.decode_audio(event.audio, codec), codec.sample_rate)
            case rt.InputAudioBufferCommitEvent():
                items.check_commit(self._listener.buffered_ms())
                await self._apply(self._listener.reset())
                await self._floor.drop_prepared()
                self._turns.commit(None, create_response=False)
            case rt.InputAudioBufferClearEvent():
                actions = self._listener.clear()
                self._turns.clear()
                await self._floor.drop_prepared()
                await self._apply(actions)
            case rt.ResponseCreateEvent():
                await self._on_response_create(event)
            case rt.ResponseCancelEvent():
                await self._floor.cancel(event.response_id)
            case rt.OutputAudioBufferClearEvent():
                await self.interrupt("client_cancelled")
            case rt.ConversationItemCreateEvent():
                created = items.created(
                    event, self.conversation, self._events, self._turns, self.config.input_codec
                )
                if created is not None:  # typed turns count; audio ones once transcribed
                    self._persona.said(created.role, created.text)
            case rt.ConversationItemTruncateEvent():
                item = items.truncatable(event, self.conversation, self._floor.live)
                await self._floor.truncate(item, event.audio_end_ms)
            case rt.ConversationItemDeleteEvent():
                await self._floor.stop_item(event.item_id)
                items.delete(event, self.conversation, self._events)
            case rt.ConversationItemRetrieveEvent():
                items.retrieve(event, self.conversation, self._events, self._floor.live)
            case _:
                assert_never(event)

    async def _update(self, event: rt.SessionUpdateEvent) -> None:
        old = self.config
        new = apply_update(
            old, event.session, settings=self._settings, voices=self._voices,
            multilingual=self._engines.stt.multilingual,
        )  # fmt: skip
        if new.character != old.character:  # may fail: then nothing was applied
            await self._persona.become(new.character, new.user_name)
        self.config = new
        self._turns.transcription = new.transcription
        if not new.replies and old.replies:
            await self._floor.interrupt("client_cancelled")
        if new.output_codec != old.output_codec and not self._fixed_output:
            self._floor.output = self._output()
        if (new.turn_detection, new.kind) != (old.turn_detection, old.kind):
            self._turns.stop_guessing()
            turns = new.turn_config(self._settings, notice_at_pause=not self._fixed_output)
            await self._apply(self._listener.detect_turns(turns, new.prefix_padding_ms))
        self._events.session_updated(self.describe())

    async def _on_response_create(self, event: rt.ResponseCreateEvent) -> None:
        request = response_request(event, self._voices, self.config)
        if request.in_conversation or request.with_audio(self.config.output_modalities):
            self._floor.check_free()
        await self._turns.settle()  # push-to-talk: commit and response.create back to back
        await self._respond(request)

    async def interrupt(self, reason: Literal["turn_detected", "client_cancelled"]) -> None:
        """Barge-in: stop the reply and keep in history only what was (likely) heard."""
        await self._floor.interrupt(reason)

    # --- input audio and turn-taking -------------------------------------------------------

    async def push_audio(self, samples: Float32Array, rate: int = STT_SAMPLE_RATE) -> None:
        """Input audio at ``rate`` Hz: buffer it and, with server VAD, take turns on it."""
        now, audible = self._clock.now(), self._floor.bot_audible
        self.allowance.heard(samples.size / rate)
        await self._apply(self._listener.push(samples, rate, now, bot_audible=audible))

    async def _apply(self, actions: list[Action]) -> None:
        """Carry out what turn-taking decided: the user's side, then the bot's."""
        create, interrupts = self.config.creates_responses, self.config.interrupts
        for action in actions:
            self._turns.take(action, create_response=create)
            await self._floor.take(action, interrupt_response=interrupts)

    async def _transcribed(
        self, item: Item, times: TurnTimes, create_response: bool, idle_ms: int | None
    ) -> None:
        self._persona.said("user", item.text)
        # Speech that began while transcribing will make its own turn; answer then.
        if create_response and not self._listener.in_speech and not self._floor.responding:
            note = [] if idle_ms is None else [items.silence_note(idle_ms)]
            await self._respond(times=times, pending=note)

    # --- replies ------------------------------------------------------------------------

    async def _respond(
        self,
        request: ResponseRequest | None = None,
        *,
        script: str | None = None,
        times: TurnTimes | None = None,
        pending: Sequence[Item] = (),
    ) -> None:
        """Reply now: from the model, or ``script`` spoken as is (a greeting)."""
        plan, recipe = await self._replies.make(request, script=script, pending=pending)
        await self._floor.reply(plan, recipe if script is None else None, times)

    async def _say_to_end(self, text: str) -> None:
        """Speak ``text`` and wait until it has been played (the call's last words)."""
        plan, _ = await self._replies.make(script=text)
        await self._floor.say_to_end(plan)

    def _guessed(self, generation: int, text: str) -> asyncio.Task[None] | None:
        """The turn's guess sounds finished: prepare its reply during the rest of the pause."""
        if not self._may_prepare(generation):
            return None
        guess = Item(new_id("item"), "user", text=text, from_audio=True)
        build = self._replies.ahead(guess, partial(self._may_prepare, generation))
        return self._floor.prepare(build)  # the turn ends no earlier than it is held

    def _may_prepare(self, generation: int) -> bool:
        """Whether a reply to guess ``generation`` of the turn may be made before it ends."""
        wanted = self._settings.prepare_reply and self.config.creates_responses
        floor, guessing = self._floor, self._listener.is_guessing(generation)
        return wanted and guessing and not (self._closed or floor.responding or floor.bot_audible)
