"""One Realtime session: client events in, server events out, shared models borrowed.

The session knows nothing about the transport. A transport (WebSocket, WebRTC) hands it
parsed client events and gives it an ``emit`` coroutine for server events; everything
the session starts, it owns and stops in :meth:`RealtimeSession.aclose`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemDeletedEvent,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemTruncatedEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeConversationItemAssistantMessage,
    RealtimeConversationItemSystemMessage,
    RealtimeConversationItemUserMessage,
    RealtimeSessionCreateRequest,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from openai.types.realtime.conversation_item_input_audio_transcription_completed_event import (
    UsageTranscriptTextUsageDuration,
)
from openai.types.realtime.realtime_server_event import ConversationItemRetrieved

from voice.audio import AudioFormatError, Float32Array, StreamResampler
from voice.companion import Companion, Companions, UnknownCharacterError
from voice.config import Settings
from voice.conversation import Conversation, Item, text_heard
from voice.echo import EchoGuard, EchoReference
from voice.endpointing import SpeechStarted, SpeechStopped
from voice.engines import Engines
from voice.inference import ModelBusyError
from voice.input_buffer import ArrivalLog, InputBuffer, ms_to_samples, samples_to_ms
from voice.metrics import Metrics
from voice.playout import AudioOutput, WebSocketAudioOutput
from voice.prepared import PreparedReply, ReplyRecipe
from voice.protocol import ClientEvent, ProtocolError, ServerEvent, new_id, parse_client_event
from voice.response import ResponseRun
from voice.session_config import Modality, SessionConfig, check_modalities
from voice.stt import STT_SAMPLE_RATE, Transcript
from voice.tasks import cancel_and_wait
from voice.turns import (
    Action,
    CheckWords,
    CommitTurn,
    DropSpeculative,
    InterruptBot,
    PauseBot,
    ResumeBot,
    StartSpeculative,
    TurnTaker,
)
from voice.vad import SileroVadStream
from voice.voices import Voice
from voice.wire import wire_item

log = logging.getLogger(__name__)

Emit = Callable[[ServerEvent], Awaitable[None]]
WireItem = (
    RealtimeConversationItemUserMessage
    | RealtimeConversationItemAssistantMessage
    | RealtimeConversationItemSystemMessage
)
#: The shortest audio ``input_audio_buffer.commit`` accepts (as the Realtime API does).
MIN_COMMIT_MS = 100


@dataclass
class TurnTimes:
    """Session-clock marks of one user turn, for latency logs and metrics."""

    speech_end_arrived: float | None = None  # the last audio of the speech reached us
    speech_stopped: float | None = None  # end of turn decided
    committed: float | None = None
    transcribed: float | None = None
    stt_compute_s: float | None = None


@dataclass
class PendingTurn:
    """The user turn being spoken: its future item id and when it started."""

    item_id: str
    audio_start_ms: int
    times: TurnTimes = field(default_factory=TurnTimes)


class RealtimeSession:
    """State and behaviour of one call."""

    def __init__(
        self,
        engines: Engines,
        settings: Settings,
        emit: Emit,
        clock: Callable[[], float] = time.perf_counter,
        output: AudioOutput | None = None,
        *,
        companions: Companions | None = None,
        user_id: str = "local",
        character: str | None = None,
        user_name: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.id = new_id("sess")
        self._metrics = metrics
        self._arrivals = ArrivalLog()
        self.user_id = user_id
        self._companions = companions
        self.companion: Companion | None = None
        self._clock = clock
        self._engines = engines
        self._settings = settings
        self._emit = emit
        self.conversation = Conversation()
        self.config = SessionConfig.defaults(
            settings,
            voice=engines.voices.default,
            character=character or (companions.default_character if companions else None),
            user_name=user_name,
        )
        #: A transport with its own audio path (WebRTC) passes its sink; else audio deltas.
        self._fixed_output = output
        self.output: AudioOutput = output or self._delta_output()
        self._echo = EchoGuard() if settings.echo_guard else None
        self._reference: EchoReference | None = None
        self._input = InputBuffer()
        self._watch_echo()
        # Input audio, at 16 kHz: the buffer holds samples [buffer_start, stream_samples).
        self._input_resampler = StreamResampler(
            self.config.input_codec.sample_rate, STT_SAMPLE_RATE
        )
        self._vad = SileroVadStream()
        self._turns = TurnTaker(self.config.turn_config(settings))
        self._pending_turn = PendingTurn(new_id("item"), 0)
        #: Transcriptions started ahead of a commit (speculative, word checks), by generation.
        self._stt_jobs: dict[int, asyncio.Task[Transcript]] = {}
        # Output.
        self.response: ResponseRun | None = None
        #: A reply started during the end-of-turn silence, sent if the turn ends as guessed.
        self._prepared = PreparedReply()
        self._turn_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    def _watch_echo(self) -> None:
        """Show the echo guard what the output plays, on the input stream's time axis."""
        if self._echo is None:
            return
        self._reference = EchoReference(self._echo, rate=self.output.sample_rate)
        self.output.set_monitor(self._reference.on_audio)

    def _delta_output(self) -> AudioOutput:
        return WebSocketAudioOutput(
            self._emit,
            self.config.output_codec,
            lead_ms=self._settings.output_lead_ms,
            clock=self._clock,
        )

    async def start(self) -> None:
        """Greet the client: ``session.created``, then the character's greeting, if any."""
        error: ProtocolError | None = None
        if self.config.character is not None:
            try:
                self.companion = await self._open_companion(self.config.character)
            except ProtocolError as exc:
                error, self.config = exc, dataclasses.replace(self.config, character=None)
        await self._emit(
            SessionCreatedEvent(
                type="session.created", event_id=new_id("event"), session=self.describe()
            )
        )
        if error is not None:
            await self._emit(error.to_event())
        await self._greet()

    async def _open_companion(self, character: str) -> Companion:
        if self._companions is None:
            raise ProtocolError("this server has no characters", param="session.character")
        try:
            return await self._companions.open(
                character,
                user_id=self.user_id,
                session_id=self.id,
                user_name=self.config.user_name,
            )
        except UnknownCharacterError as exc:
            raise ProtocolError(str(exc), param="session.character") from None

    async def _greet(self) -> None:
        """The companion speaks first, as in a phone call she picked up."""
        greeting = self.companion.greeting() if self.companion else None
        if greeting and self.companion and self.companion.voice in self._engines.voices.names:
            self.config = dataclasses.replace(self.config, voice=self.companion.voice)
        if greeting:
            await self._create_response(script=greeting)

    async def aclose(self) -> None:
        """Cancel the response and every turn in flight. Safe to call twice."""
        self._closed = True
        self._cancel_stt_jobs()
        await self._prepared.discard()
        tasks = list(self._turn_tasks)
        for task in tasks:
            await cancel_and_wait(task)
        response = self.response
        if response is not None:
            if not response.done:
                await response.cancel("client_cancelled", emit=False)
            await self._record_reply(response)
        if self.companion is not None:
            companion, self.companion = self.companion, None
            await companion.aclose()

    @property
    def busy_tasks(self) -> int:
        """Tasks this session still runs (turns and the response); zero once closed."""
        running = sum(1 for task in self._turn_tasks if not task.done())
        running += sum(1 for task in self._stt_jobs.values() if not task.done())
        runs = (self.response, self._prepared.run)
        return running + sum(1 for run in runs if run is not None and not run.done)

    # --- client events --------------------------------------------------------------------

    async def handle_text(self, text: str | bytes) -> None:
        """Parse one client message and act on it; client mistakes become ``error`` events."""
        try:
            event = parse_client_event(text)
            await self.handle(event)
        except ProtocolError as error:
            await self._emit(error.to_event())

    async def handle(self, event: ClientEvent) -> None:
        handler = getattr(self, "_on_" + event.type.replace(".", "_"))
        try:
            await handler(event)
        except ProtocolError as error:
            error.event_id = error.event_id or event.event_id
            raise

    async def _on_session_update(self, event: Any) -> None:
        old = self.config
        new = old.updated(event.session, settings=self._settings, voices=self._engines.voices.names)
        companion = self.companion
        if new.character != old.character:  # may fail: then nothing was applied
            companion = await self._open_companion(new.character) if new.character else None
        if companion is not self.companion and self.companion is not None:
            self._own(self.companion.aclose(), f"memory-{self.id}")
        self.companion, self.config = companion, new
        if new.output_codec != old.output_codec and self._fixed_output is None:
            self.output = self._delta_output()
            self._watch_echo()
        if new.input_codec != old.input_codec:
            self._input_resampler = StreamResampler(new.input_codec.sample_rate, STT_SAMPLE_RATE)
        if new.turn_detection != old.turn_detection:
            self._turns = TurnTaker(new.turn_config(self._settings))
            self._cancel_stt_jobs()
            self._vad.reset()
        await self._emit(
            SessionUpdatedEvent(
                type="session.updated", event_id=new_id("event"), session=self.describe()
            )
        )

    async def _on_input_audio_buffer_append(self, event: Any) -> None:
        try:
            data = base64.b64decode(event.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(
                "input_audio_buffer.append: 'audio' is not valid base64",
                code="invalid_base64", param="audio",
            ) from None  # fmt: skip
        try:
            samples = self.config.input_codec.decode(data)
        except AudioFormatError as exc:
            raise ProtocolError(
                f"input_audio_buffer.append: {exc} (session input format is "
                f"{self.config.input_codec.name} at {self.config.input_codec.sample_rate} Hz)",
                code="invalid_audio_format", param="audio",
            ) from None  # fmt: skip
        await self.push_audio(self._input_resampler.process(samples))

    async def push_audio(self, samples: Float32Array) -> None:
        """Add 16 kHz input audio: buffer it and, with server VAD, take turns on it."""
        if not samples.size:
            return
        arrived_until, now = self._input.end + samples.size, self._clock()
        self._arrivals.mark(arrived_until, now)
        if self._echo is not None and self._reference is not None:
            self._reference.on_input(arrived_until, now)
            samples = self._echo.process(samples, self._input.end)
        max_samples = ms_to_samples(self._settings.max_buffer_s * 1000)
        if self.config.turn_detection is None and len(self._input) + samples.size > max_samples:
            raise ProtocolError(
                f"input audio buffer is full ({self._settings.max_buffer_s:.0f} s); "
                "commit or clear it",
                code="input_audio_buffer_full",
            )
        self._input.append(samples)
        if self.config.turn_detection is None:
            return
        for window_start, probability in self._vad.process(samples):
            actions = self._turns.on_vad(
                probability,
                samples_to_ms(window_start),
                self._vad.window_ms,
                bot_audible=self.bot_audible,
            )
            await self._apply(actions)
        if not self._turns.in_speech:
            self._input.trim(self._input.end - self._prefix_samples())
        elif len(self._input) > max_samples:  # a monologue: end the turn here
            self._turns.reset()
            await self._apply([SpeechStopped(self._input.end_ms), CommitTurn(0, None)])

    @property
    def bot_audible(self) -> bool:
        """Bot audio is playing (or paused mid-response) for the user right now."""
        response = self.response
        if response is None or not response.with_audio or self.output.sent_ms() <= 0:
            return False
        return not response.done or self.output.played_ms() < self.output.sent_ms()

    def _prefix_samples(self) -> int:
        padding = self.config.turn_detection.prefix_padding_ms if self.config.turn_detection else 0
        return ms_to_samples(padding or 0)

    async def _apply(self, actions: list[Action]) -> None:
        """Carry out what turn-taking decided."""
        for action in actions:
            match action:
                case SpeechStarted(audio_start_ms=start_ms):
                    await self._on_speech_started(start_ms)
                case SpeechStopped(audio_end_ms=end_ms):
                    await self._on_speech_stopped(end_ms)
                case CommitTurn(generation=generation):
                    create = bool(
                        self.config.turn_detection and self.config.turn_detection.create_response
                    )
                    guess = self._stt_jobs.pop(generation, None) if generation else None
                    self._cancel_stt_jobs()
                    await self._commit(self._pending_turn, create_response=create, guess=guess)
                case StartSpeculative(end_ms=end_ms, generation=generation):
                    self._cancel_stt_jobs()
                    audio = self._input.slice(self._input.start, ms_to_samples(end_ms + 100))
                    job = self._start_stt(generation, audio)
                    job.add_done_callback(partial(self._speculated, generation))
                case DropSpeculative():
                    await self._prepared.discard()
                case CheckWords(start_ms=start_ms, end_ms=end_ms, generation=generation):
                    audio = self._input.slice(
                        ms_to_samples(start_ms) - self._prefix_samples(),
                        ms_to_samples(end_ms + 100),
                    )
                    self._start_stt(generation, audio)
                    self._own(self._check_words(generation, end_ms), f"check-{generation}")
                case PauseBot(onset_ms=onset_ms):
                    self.output.pause()
                    self._barge_in_stopped(onset_ms)
                case ResumeBot():
                    self.output.resume()
                case InterruptBot():
                    if self._turns.config.barge_in == "immediate" and self.bot_audible:
                        # With "pause" the stop was measured at the pause already.
                        self._barge_in_stopped(self._pending_turn.audio_start_ms)
                    await self.interrupt(reason="turn_detected")

    def _speculated(self, generation: int, job: asyncio.Task[Transcript]) -> None:
        text = _text_of(job)
        if self._turns.on_speculative(generation, text) and self._may_prepare_reply():
            self._own(self._prepare_reply(generation, text), f"prepare-{generation}")

    def _may_prepare_reply(self) -> bool:
        """Whether a reply to the turn being guessed may be started before it ends."""
        detection = self.config.turn_detection
        return (
            self._settings.prepare_reply
            and not self._closed
            and detection is not None
            and bool(detection.create_response)
            and not self._responding
            and not self.bot_audible
        )

    async def _prepare_reply(self, generation: int, text: str) -> None:
        """Start the reply to the guessed turn ``text``, held until the turn is committed."""
        await self._prepared.discard()
        voice = await self._engines.voices.get(self.config.voice)
        if not self._turns.is_speculating(generation) or not self._may_prepare_reply():
            return  # the user went on, or the turn ended, while the voice was looked up
        guess = Item(new_id("item"), "user", text=text, from_audio=True)
        messages = self._prompt(None, pending=[guess])
        modalities = list(self.config.output_modalities)
        run = self._new_run(messages, voice, modalities, script=None, held=True)
        run.start()
        self._prepared.hold(self._recipe(messages, modalities), run)
        log.debug("reply prepared for speculative turn %d", generation)

    def _barge_in_stopped(self, onset_ms: int) -> None:
        """Bot audio stopped for speech that began at ``onset_ms``: how long that took."""
        arrived = self._arrivals.arrival_of(ms_to_samples(onset_ms))
        if arrived is None:
            return
        stop_s = self._clock() - arrived
        log.info("barge-in stop %.3f s", stop_s, extra={"barge_in_stop_s": round(stop_s, 4)})
        if self._metrics is not None:
            self._metrics.barge_in_stop.observe(stop_s)

    def _start_stt(self, generation: int, audio: Float32Array) -> asyncio.Task[Transcript]:
        job = asyncio.create_task(self._engines.stt.transcribe(audio), name=f"stt-{generation}")
        self._stt_jobs[generation] = job
        return job

    def _cancel_stt_jobs(self) -> None:
        """Drop speculative transcriptions nobody will use (unstarted ones never run)."""
        for job in self._stt_jobs.values():
            job.cancel()
        self._stt_jobs.clear()

    async def _check_words(self, generation: int, end_ms: int) -> None:
        job = self._stt_jobs[generation]
        try:
            transcript = await job
        except ModelBusyError:
            transcript = None
        if transcript is None:
            text = "?"  # could not tell: treat it as an interruption, the safer choice
        else:  # Whisper invents words for a cough or a hum: only confident words count
            text = transcript.text if transcript.confident() else ""
        actions = self._turns.on_words(generation, text, end_ms)
        log.debug("speech over the bot: %d words, %s", len(text.split()), actions[:2])
        await self._apply(actions)

    def _own(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._turn_tasks.add(task)
        task.add_done_callback(self._turn_tasks.discard)

    async def _on_speech_started(self, audio_start_ms: int) -> None:
        await self._prepared.discard()
        self._pending_turn = PendingTurn(new_id("item"), audio_start_ms)
        self._input.trim(ms_to_samples(audio_start_ms) - self._prefix_samples())
        await self._emit(
            InputAudioBufferSpeechStartedEvent(
                type="input_audio_buffer.speech_started", event_id=new_id("event"),
                audio_start_ms=audio_start_ms, item_id=self._pending_turn.item_id,
            )
        )  # fmt: skip
        # A reply still being prepared for the previous turn would answer too early.
        if self.config.turn_detection is not None and self.config.turn_detection.interrupt_response:
            if self._responding and not self.bot_audible:
                await self.interrupt(reason="turn_detected")

    async def _on_speech_stopped(self, audio_end_ms: int) -> None:
        times = self._pending_turn.times
        times.speech_stopped = self._clock()
        times.speech_end_arrived = self._arrivals.arrival_of(ms_to_samples(audio_end_ms))
        await self._emit(
            InputAudioBufferSpeechStoppedEvent(
                type="input_audio_buffer.speech_stopped", event_id=new_id("event"),
                audio_end_ms=audio_end_ms, item_id=self._pending_turn.item_id,
            )
        )  # fmt: skip

    async def _on_input_audio_buffer_commit(self, event: Any) -> None:
        if samples_to_ms(len(self._input)) < MIN_COMMIT_MS:
            raise ProtocolError(
                f"buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, "
                f"have {samples_to_ms(len(self._input))} ms",
                code="input_audio_buffer_commit_empty",
            )
        self._turns.reset()
        await self._prepared.discard()
        await self._commit(self._pending_turn, create_response=False)

    async def _on_input_audio_buffer_clear(self, event: Any) -> None:
        self._input.clear()
        self._turns.reset()
        self._cancel_stt_jobs()
        await self._prepared.discard()
        self._pending_turn = PendingTurn(new_id("item"), self._input.end_ms)
        await self._emit(
            InputAudioBufferClearedEvent(
                type="input_audio_buffer.cleared", event_id=new_id("event")
            )
        )

    async def _commit(
        self,
        turn: PendingTurn,
        *,
        create_response: bool,
        guess: asyncio.Task[Transcript] | None = None,
    ) -> None:
        """Make the buffered audio a user item and transcribe it (reusing ``guess``)."""
        audio = self._input.take()
        self._pending_turn = PendingTurn(new_id("item"), self._input.end_ms)
        turn.times.committed = self._clock()
        item = Item(turn.item_id, "user", status="in_progress", from_audio=True)
        previous = self.conversation.add(item)
        await self._emit(
            InputAudioBufferCommittedEvent(
                type="input_audio_buffer.committed", event_id=new_id("event"),
                item_id=item.id, previous_item_id=previous,
            )
        )  # fmt: skip
        await self._emit(
            ConversationItemAdded(
                type="conversation.item.added", event_id=new_id("event"),
                item=wire_item(item), previous_item_id=previous,
            )
        )  # fmt: skip
        self._own(
            self._transcribe_turn(item, audio, turn.times, create_response, guess),
            f"turn-{item.id}",
        )

    async def _transcribe_turn(
        self,
        item: Item,
        audio: Float32Array,
        times: TurnTimes,
        create_response: bool,
        guess: asyncio.Task[Transcript] | None,
    ) -> None:
        transcript = await _result_or_none(guess) if guess is not None else None
        try:
            if transcript is None:
                transcript = await self._engines.stt.transcribe(audio)
        except ModelBusyError as exc:
            item.status = "incomplete"
            await self._emit(ProtocolError(str(exc), code="server_busy").to_event())
            return
        times.transcribed = self._clock()
        times.stt_compute_s = transcript.compute_s
        item.text = transcript.text
        item.status = "completed"
        await self._emit(
            ConversationItemInputAudioTranscriptionCompletedEvent(
                type="conversation.item.input_audio_transcription.completed",
                event_id=new_id("event"), item_id=item.id, content_index=0,
                transcript=transcript.text,
                usage=UsageTranscriptTextUsageDuration(
                    type="duration", seconds=round(transcript.audio_s, 3)
                ),
            )
        )  # fmt: skip
        await self._emit(
            ConversationItemDone(
                type="conversation.item.done", event_id=new_id("event"),
                item=wire_item(item),
            )
        )  # fmt: skip
        log.debug("user turn %s transcribed in %.3f s", item.id, transcript.compute_s)
        await self._record("user", transcript.text)
        # Speech that began while transcribing will make its own turn; answer then.
        if create_response and not self._turns.in_speech and not self._responding:
            await self._create_response(times=times)

    async def _record(self, role: str, text: str) -> None:
        if self.companion is None:
            return
        if role == "user" and self.response is not None and self.response.done:
            # The reply before this turn goes in first, even if its follow-up task has
            # not run yet: the transcript keeps the order things were said in.
            await self._record_reply(self.response)
        await self.companion.record(role, text)

    async def _follow(self, response: ResponseRun, times: TurnTimes | None) -> None:
        """After a response: log its latencies, record what was heard."""
        await response.wait()
        if times is not None:
            self._log_turn(times, response)
        await self._record_reply(response)

    async def _record_reply(self, response: ResponseRun) -> None:
        """Record a finished reply once, as heard (a failed one was not heard at all)."""
        if response.recorded or response.status not in ("completed", "cancelled"):
            return
        response.recorded = True
        await self._record("assistant", response.item.text)

    def _log_turn(self, times: TurnTimes, response: ResponseRun) -> None:
        """Per-turn stage latencies as structured log fields and metrics (never the text)."""
        if times.speech_stopped is None:
            return
        origin = times.speech_end_arrived or times.speech_stopped
        timings = response.timings

        def span(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round(end - start, 4)

        fields = {
            "session": self.id,
            "response": response.id,
            "status": response.status,
            "end_of_turn_s": span(times.speech_end_arrived, times.speech_stopped),
            "stt_s": times.stt_compute_s,
            "stt_after_commit_s": span(times.speech_stopped, times.transcribed),
            "prepared": timings.released is not None,
            "llm_first_token_s": span(timings.created, timings.first_text),
            "tts_first_audio_s": span(timings.first_text, timings.first_synthesized),
            "speech_end_to_first_audio_s": span(origin, timings.first_audio),
            "speech_end_to_last_audio_s": span(origin, timings.last_audio),
            "audio_ms": round(response.audio_sent_ms),
        }
        log.info("turn %s", " ".join(f"{k}={v}" for k, v in fields.items()), extra=fields)
        if self._metrics is None:
            return
        metrics = self._metrics
        for histogram, value in (
            (metrics.end_of_turn_delay, fields["end_of_turn_s"]),
            (metrics.stt, fields["stt_s"]),
            (metrics.stt_wait_after_commit, fields["stt_after_commit_s"]),
            (metrics.llm_first_token, fields["llm_first_token_s"]),
            (metrics.tts_first_audio, fields["tts_first_audio_s"]),
            (metrics.speech_end_to_first_audio, fields["speech_end_to_first_audio_s"]),
        ):
            if isinstance(value, float):
                histogram.observe(value)

    # --- responses ------------------------------------------------------------------------

    @property
    def _responding(self) -> bool:
        return self.response is not None and not self.response.done

    async def _create_response(
        self,
        instructions: str | None = None,
        modalities: Sequence[Modality] | None = None,
        *,
        script: str | None = None,
        times: TurnTimes | None = None,
    ) -> ResponseRun:
        """Start a reply: from the model, or ``script`` spoken as is (a greeting).

        A reply prepared for exactly this prompt during the end-of-turn silence is used
        instead of starting a new one; any other prepared reply is dropped unheard.
        """
        modalities = list(modalities or self.config.output_modalities)
        voice = await self._engines.voices.get(self.config.voice)
        messages = self._prompt(instructions)
        prepared = (
            self._prepared.take(self._recipe(messages, modalities)) if script is None else None
        )
        await self._prepared.discard()
        if prepared is not None:
            self.response = prepared
            await prepared.release(self.conversation.add(prepared.item))
        else:
            self.response = self._new_run(messages, voice, modalities, script=script)
            self.response.start(previous_item_id=self.conversation.add(self.response.item))
        self._own(self._follow(self.response, times), f"follow-{self.response.id}")
        return self.response

    def _recipe(self, messages: list[dict[str, str]], modalities: Sequence[str]) -> ReplyRecipe:
        """What a reply with ``messages`` would be made from, under the session's settings."""
        return ReplyRecipe.of(
            messages, self.config.voice, modalities, self.config.max_output_tokens
        )

    def _new_run(
        self,
        messages: list[dict[str, str]],
        voice: Voice,
        modalities: Sequence[str],
        *,
        script: str | None,
        held: bool = False,
    ) -> ResponseRun:
        with_audio = "audio" in modalities
        return ResponseRun(
            item=Item(new_id("item"), "assistant", status="in_progress", from_audio=with_audio),
            output_index=0,
            llm=self._engines.llm,
            voice=voice,
            script=script,
            messages=messages,
            output=self.output,
            with_audio=with_audio,
            max_tokens=self.config.max_output_tokens,
            emit=self._emit,
            clock=self._clock,
            held=held,
            first_chunk_phrase_words=self._settings.first_chunk_phrase_words,
        )

    def _prompt(
        self, instructions: str | None, pending: Sequence[Item] = ()
    ) -> list[dict[str, str]]:
        """The model's messages: the character's prompt, or the session instructions.

        ``pending`` items count as part of the conversation (a turn not yet committed).
        """
        if self.companion is None:
            return self.conversation.messages(
                self.config.instructions if instructions is None else instructions,
                self._settings.history_turns,
                pending,
            )
        turns = self.conversation.messages("", self._settings.history_turns, pending)
        extra = instructions if instructions is not None else self.config.client_instructions or ""
        return self.companion.messages(turns, extra)

    async def _on_response_create(self, event: Any) -> None:
        if self._responding:
            raise ProtocolError(
                "conversation already has an active response; cancel it first",
                code="conversation_already_has_active_response",
            )
        params = event.response
        instructions = params.instructions if params is not None else None
        chosen = params.output_modalities if params is not None else None
        if chosen is not None:
            chosen = check_modalities(chosen, "response.output_modalities")
        await self._create_response(instructions, chosen)

    async def _on_response_cancel(self, event: Any) -> None:
        if not self._responding:
            raise ProtocolError("no active response to cancel", code="response_cancel_not_active")
        assert self.response is not None
        await self.response.cancel("client_cancelled")

    async def _on_output_audio_buffer_clear(self, event: Any) -> None:
        await self.interrupt(reason="client_cancelled")

    async def interrupt(self, reason: Literal["turn_detected", "client_cancelled"]) -> None:
        """Barge-in: stop the response and keep in history only what was (likely) heard."""
        response = self.response
        if response is None:
            return
        if not response.done:
            await response.cancel(reason)
            await self._report_truncation(response.item, response.played_ms())
            return
        # Generation finished, but the client may still be playing the audio we sent.
        await self.output.clear()
        played = response.played_ms()
        if response.item.segments and played < response.audio_sent_ms:
            response.item.text = text_heard(response.item.segments, played)
            await self._report_truncation(response.item, played)

    async def _report_truncation(self, item: Item, played_ms: float | None = None) -> None:
        await self._emit(
            ConversationItemTruncatedEvent(
                type="conversation.item.truncated", event_id=new_id("event"), item_id=item.id,
                content_index=0,
                audio_end_ms=round(played_ms if played_ms is not None else item.audio_ms),
            )
        )  # fmt: skip

    # --- conversation items ------------------------------------------------------------------

    async def _on_conversation_item_create(self, event: Any) -> None:
        wire = event.item
        if getattr(wire, "type", None) != "message":
            raise ProtocolError(
                f"conversation items of type '{wire.type}' are not supported; use 'message'",
                param="item.type",
            )
        if event.previous_item_id not in (None, self.conversation.last_id):
            raise ProtocolError(
                "inserting items before the end of the conversation is not supported",
                param="previous_item_id",
            )
        texts = [
            part.text or part.transcript or ""
            for part in wire.content
            if getattr(part, "type", None) in ("input_text", "output_text", "text", "output_audio")
        ]
        if not texts or not any(t.strip() for t in texts):
            raise ProtocolError(
                "message has no text content (input_text/output_text)", param="item.content"
            )
        item = Item(wire.id or new_id("item"), wire.role, text="".join(texts))
        if self.conversation.get(item.id) is not None:
            raise ProtocolError(f"item id '{item.id}' already exists", param="item.id")
        previous = self.conversation.add(item)
        for event_cls, kind in ((ConversationItemAdded, "added"), (ConversationItemDone, "done")):
            await self._emit(
                event_cls(
                    type=f"conversation.item.{kind}", event_id=new_id("event"),  # type: ignore[arg-type]
                    item=wire_item(item), previous_item_id=previous,
                )
            )  # fmt: skip
        await self._record(item.role, item.text)  # a typed turn is a turn too

    async def _on_conversation_item_truncate(self, event: Any) -> None:
        item = self.conversation.get(event.item_id)
        if item is None or item.role != "assistant":
            raise ProtocolError(f"no assistant item with id '{event.item_id}'", param="item_id")
        if not item.from_audio:
            raise ProtocolError("the item has no audio to truncate", param="item_id")
        if event.audio_end_ms > item.audio_ms + 1:
            raise ProtocolError(
                f"audio_end_ms {event.audio_end_ms} is beyond the item's audio "
                f"({item.audio_ms:.0f} ms)",
                param="audio_end_ms",
            )
        if self.response is not None and self.response.item is item and not self.response.done:
            await self.response.cancel("client_cancelled")
        item.text = text_heard(item.segments, event.audio_end_ms)
        item.status = "incomplete"
        await self._report_truncation(item, event.audio_end_ms)

    async def _on_conversation_item_delete(self, event: Any) -> None:
        if self.response is not None and self.response.item.id == event.item_id:
            await self.response.cancel("client_cancelled")
        if not self.conversation.delete(event.item_id):
            raise ProtocolError(f"no item with id '{event.item_id}'", param="item_id")
        await self._emit(
            ConversationItemDeletedEvent(
                type="conversation.item.deleted", event_id=new_id("event"), item_id=event.item_id
            )
        )

    async def _on_conversation_item_retrieve(self, event: Any) -> None:
        item = self.conversation.get(event.item_id)
        if item is None:
            raise ProtocolError(f"no item with id '{event.item_id}'", param="item_id")
        await self._emit(
            ConversationItemRetrieved(
                type="conversation.item.retrieved", event_id=new_id("event"),
                item=wire_item(item),
            )
        )  # fmt: skip

    def describe(self) -> RealtimeSessionCreateRequest:
        """The effective session configuration, as sent in ``session.created/updated``."""
        return self.config.describe(self._engines.llm.model)


def _text_of(job: asyncio.Task[Transcript]) -> str:
    if job.cancelled() or job.exception() is not None:
        return ""
    return job.result().text


async def _result_or_none(job: asyncio.Task[Transcript]) -> Transcript | None:
    """The transcript of a job started earlier, or None if it was dropped or failed.

    If the caller is cancelled while waiting, the job is cancelled too: it has no other owner.
    """
    try:
        await asyncio.wait({job})
    except asyncio.CancelledError:
        job.cancel()
        raise
    if job.cancelled() or job.exception() is not None:
        return None
    return job.result()
