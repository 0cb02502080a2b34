"""The user's turns: the sole owner of their transcriptions and of the items they become.

Turn-taking (in the :class:`~voice.listener.Listener`) decides *when*; this carries it
out: a speculative transcription during a pause (its result may let the session prepare
a reply), a word check of speech over the bot, and at the end of a turn the user item,
transcribed (reusing the guess when the turn ended as guessed). Every transcription job
is started, reused or cancelled here and nowhere else; jobs are tagged with the
turn-taker's generation, so a stale result is recognised and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from openai.types.realtime import AudioTranscription

from voice.audio import Float32Array
from voice.clock import Clock
from voice.conversation import Conversation, Item
from voice.echo_words import is_own_echo
from voice.endpointing import SpeechStarted, SpeechStopped
from voice.inference import ModelBusyError, Priority, at_priority
from voice.interfaces import EndOfTurnModel, SpeechToText
from voice.listener import Listener
from voice.protocol import ProtocolError, new_id
from voice.remote_speech import RemoteSpeechError
from voice.stt import CONFIDENT_MIN_LOGPROB, STT_SAMPLE_RATE, SttOptions, Transcript
from voice.tasks import cancel_and_wait
from voice.turns import (
    Action,
    CheckWords,
    CommitTurn,
    DropSpeculative,
    IdleTimeout,
    StartSpeculative,
)
from voice.wire import ServerEvents
from voice.wire_items import wire_item

log = logging.getLogger(__name__)

#: A reply asked for right after a commit waits at most this long for the turn's words.
TRANSCRIPTION_WAIT_S = 5.0

#: The confidence bar (Whisper's mean log-probability) for speech over the first audio
#: of a reply to a turn that just ended (the soft commit): that is most often the user
#: going on, in a fragment of a sentence, which Whisper transcribes with less confidence
#: than a whole one. Other speech over the bot needs ``CONFIDENT_MIN_LOGPROB``.
CONTINUATION_MIN_LOGPROB = -1.0

#: Called with a user item once its words are known, its turn's times, whether the turn
#: asks for a reply (server VAD with ``create_response``), and for an idle timeout's empty
#: turn how long the user had been silent (ms; else None).
OnTranscribed = Callable[[Item, "TurnTimes", bool, int | None], Awaitable[None]]


@dataclass
class TurnTimes:
    """Clock marks of one user turn, for latency logs and metrics."""

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


class UserTurns:
    """Transcription jobs and user items of one call."""

    def __init__(
        self,
        stt: SpeechToText,
        listener: Listener,
        conversation: Conversation,
        events: ServerEvents,
        clock: Clock,
        *,
        on_guess: Callable[[int, str], asyncio.Task[None] | None],
        on_actions: Callable[[list[Action]], Awaitable[None]],
        on_transcribed: OnTranscribed,
        turn_model: EndOfTurnModel | None = None,
        bot_words: Callable[[], str] = lambda: "",
    ) -> None:
        self._stt = stt
        self._turn_model = turn_model
        self._listener = listener
        self._conversation = conversation
        self._events = events
        self._clock = clock
        self._on_guess = on_guess
        self._on_actions = on_actions
        self._on_transcribed = on_transcribed
        #: The bot's words played just before it paused for speech over it.
        self._bot_words = bot_words
        self.pending = PendingTurn(new_id("item"), 0)
        #: What the client asked of transcriptions; ``None``: it wants no transcription events
        #: (turns are transcribed all the same: the reply needs the words).
        self.transcription: AudioTranscription | None = None
        #: Transcriptions started ahead of a commit (guesses, word checks), by generation.
        self._jobs: dict[int, asyncio.Task[Transcript]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Committed user items whose words are not known yet.
        self._transcribing: set[asyncio.Task[None]] = set()

    @property
    def busy_tasks(self) -> int:
        running = sum(1 for task in self._tasks if not task.done())
        return running + sum(1 for job in self._jobs.values() if not job.done())

    async def aclose(self) -> None:
        """Cancel every transcription and turn in flight. Safe to call twice."""
        self._cancel_jobs()
        for task in list(self._tasks):
            await cancel_and_wait(task)

    async def settle(self, timeout: float = TRANSCRIPTION_WAIT_S) -> None:
        """Wait (at most ``timeout`` s) until every committed user item is transcribed.

        A reply asked for right after a commit (push-to-talk) must see the user's words;
        past ``timeout`` the client is told that it will not. Cancelling the wait cancels
        no transcription.
        """
        pending = [task for task in self._transcribing if not task.done()]
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        if late:
            message = f"a turn was still being transcribed after {timeout:g} s; the reply is "
            message += "made without its words"
            self._events.error(
                ProtocolError(message, code="transcription_pending", kind="server_error")
            )

    # --- turn-taking's decisions ------------------------------------------------------------

    def take(self, action: Action, *, create_response: bool) -> None:
        """Carry out the user's side of a turn-taking decision (others are the floor's)."""
        match action:
            case SpeechStarted(audio_start_ms=start_ms):
                self.speech_started(start_ms)
            case SpeechStopped(audio_end_ms=end_ms):
                self.speech_stopped(end_ms)
            case StartSpeculative(end_ms=end_ms, generation=generation):
                self.guess(end_ms, generation)
            case DropSpeculative(generation=generation):
                self.drop_guess(generation)
            case CheckWords(start_ms=start_ms, end_ms=end_ms, generation=generation):
                self.check_words(start_ms, end_ms, generation)
            case CommitTurn(generation=generation):
                self.commit(generation, create_response=create_response)
            case IdleTimeout(start_ms=start_ms, end_ms=end_ms):
                self.idle(start_ms, end_ms, create_response=create_response)

    def speech_started(self, onset_ms: int) -> None:
        self.pending = PendingTurn(new_id("item"), onset_ms)
        self._listener.speech_started(onset_ms)
        self._events.speech_started(self.pending.item_id, onset_ms)

    def speech_stopped(self, end_ms: int) -> None:
        times = self.pending.times
        times.speech_stopped = self._clock.now()
        times.speech_end_arrived = self._listener.arrival_of(end_ms)
        self._events.speech_stopped(self.pending.item_id, end_ms)

    def guess(self, end_ms: int, generation: int) -> None:
        """Transcribe the turn so far; a finished-sounding result may prepare a reply.

        Under ``semantic_vad`` the end-of-turn model hears the same audio meanwhile (on its
        own thread); the two verdicts together may end the turn early or hold it.
        """
        self._cancel_jobs()
        audio = self._listener.turn_audio(end_ms)
        log.debug("guess %d of %d ms of speech", generation, end_ms)
        job = self._start(generation, audio)
        job.add_done_callback(lambda done: self._guessed(generation, done))
        if self._turn_model is not None and self._listener.asks_turn_model:
            self._own(self._judge(generation, audio, self._turn_model), f"judge-{generation}")

    def drop_guess(self, generation: int) -> None:
        """The user went on: the guess ``generation`` will not be used."""
        job = self._jobs.pop(generation, None)
        if job is not None:
            job.cancel()

    def check_words(self, start_ms: int, end_ms: int, generation: int) -> None:
        """Transcribe short speech over the bot; its words decide interrupt or resume."""
        job = self._start(generation, self._listener.stretch(start_ms, end_ms))
        bar = CONTINUATION_MIN_LOGPROB if self._listener.continues_turn else CONFIDENT_MIN_LOGPROB
        self._own(self._words_checked(generation, job, end_ms, bar), f"check-{generation}")

    def commit(
        self, generation: int | None, *, create_response: bool, idle_ms: int | None = None
    ) -> None:
        """End the turn: the buffered audio becomes a user item, transcribed.

        An idle timeout's turn (``idle_ms``: how long the user was silent) is not
        transcribed: it is the silence itself.
        """
        guess = self._jobs.pop(generation, None) if generation else None
        self._cancel_jobs()
        turn, audio = self.pending, self._listener.take()
        self.pending = PendingTurn(new_id("item"), self._listener.buffer.end_ms)
        turn.times.committed = self._clock.now()
        item = Item(turn.item_id, "user", status="in_progress", from_audio=True)
        previous = self._conversation.add(item)
        self._events.committed(item.id, previous)
        self._events.item_added(wire_item(item), previous)
        words = self._transcribe(item, audio, turn.times, create_response, guess, idle_ms)
        self._own(words, item.id, transcribing=True)

    def idle(self, start_ms: int, end_ms: int, *, create_response: bool) -> None:
        """The user stayed silent after the bot's reply: commit the silence, ask for a reply."""
        self._events.timeout_triggered(self.pending.item_id, start_ms, end_ms)
        self.commit(None, create_response=create_response, idle_ms=end_ms - start_ms)

    def add_audio_item(self, item: Item, audio: Float32Array, previous: str | None) -> None:
        """A user item the client created with audio content: transcribe it like a turn."""
        self._events.item_added(wire_item(item), previous)
        words = self._transcribe(item, audio, TurnTimes(), False, None, None)
        self._own(words, item.id, transcribing=True)

    def clear(self) -> None:
        """The client cleared the input buffer: no turn is pending any more."""
        self._cancel_jobs()
        self.pending = PendingTurn(new_id("item"), self._listener.buffer.end_ms)
        self._events.cleared()

    def stop_guessing(self) -> None:
        """Turn detection changed: guesses and word checks in flight are void."""
        self._cancel_jobs()

    # --- transcriptions ------------------------------------------------------------------

    def _options(self) -> SttOptions:
        wanted = self.transcription
        if wanted is None:
            return SttOptions()
        return SttOptions(language=wanted.language, prompt=wanted.prompt)

    def _start(self, generation: int, audio: Float32Array) -> asyncio.Task[Transcript]:
        with at_priority(Priority.NOW):  # the task waits for the model at it
            job = asyncio.create_task(
                self._stt.transcribe(audio, self._options()), name=f"stt-{generation}"
            )
        self._jobs[generation] = job
        return job

    def _cancel_jobs(self) -> None:
        """Drop transcriptions nobody will use (unstarted ones never run)."""
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()

    def _guessed(self, generation: int, job: asyncio.Task[Transcript]) -> None:
        if job.cancelled() or job.exception() is not None:
            return
        text = job.result().text
        log.debug("guess %d transcribed in %.3f s", generation, job.result().compute_s)
        if self._listener.guessed(generation, text):
            preparing = self._on_guess(generation, text)
            if preparing is None:
                self._ready(generation)
            else:  # a turn ended while its reply is planned would be answered afresh
                preparing.add_done_callback(lambda _: self._ready(generation))

    def _ready(self, generation: int) -> None:
        self._listener.ready(generation)
        self._end_if_due()

    async def _judge(self, generation: int, audio: Float32Array, model: EndOfTurnModel) -> None:
        if not self._listener.is_guessing(generation):
            return
        try:
            probability = await model.complete(audio)
        except Exception as exc:  # busy or failed: the words alone decide this pause
            log.warning("end-of-turn model failed: %s", type(exc).__name__)
            return
        log.debug("end-of-turn model: %.2f complete (guess %d)", probability, generation)
        self._listener.judged(generation, probability)
        self._end_if_due()

    def _end_if_due(self) -> None:
        """The verdicts so far may have ended the turn: carry that out."""
        actions = self._listener.end_if_due()
        if actions:
            self._own(self._carry_out(actions), "early-end")

    async def _carry_out(self, actions: list[Action]) -> None:
        await self._on_actions(actions)

    async def _words_checked(
        self, generation: int, job: asyncio.Task[Transcript], end_ms: int, min_logprob: float
    ) -> None:
        try:
            transcript: Transcript | None = await job
        except Exception as exc:  # busy, or the model failed: the words cannot be known
            log.warning("word check failed: %s", type(exc).__name__)
            transcript = None
        if transcript is None:
            text = "?"  # could not tell: treat it as an interruption, the safer choice
        else:  # Whisper invents words for a cough or a hum: only confident words count
            text = transcript.text if transcript.confident(min_logprob) else ""
            if text and self._listener.may_echo and is_own_echo(text, self._bot_words()):
                log.debug("speech over the bot: its own echo, %d words", len(text.split()))
                text = ""
        actions = self._listener.heard_words(generation, text, end_ms)
        log.debug("speech over the bot: %d words, %s", len(text.split()), actions[:2])
        await self._on_actions(actions)

    async def _transcribe(
        self,
        item: Item,
        audio: Float32Array,
        times: TurnTimes,
        create_response: bool,
        guess: asyncio.Task[Transcript] | None,
        idle_ms: int | None,
    ) -> None:
        events, report = self._events, self.transcription is not None
        if idle_ms is not None:  # the silence of an idle timeout: nothing to transcribe
            words: Transcript | None = Transcript("", len(audio) / STT_SAMPLE_RATE, 0.0)
        else:
            words = await self._words(item, audio, guess)
        if words is None:
            return
        transcript = words
        times.transcribed = self._clock.now()
        times.stt_compute_s = transcript.compute_s
        item.text = transcript.text
        item.status = "completed"
        if report:
            if transcript.text:
                events.transcription_delta(item.id, transcript.text)
            events.transcription_completed(item.id, transcript.text, transcript.audio_s)
        events.item_done(wire_item(item), self._conversation.previous_id(item.id))
        log.debug("user turn %s transcribed in %.3f s", item.id, transcript.compute_s)
        await self._on_transcribed(item, times, create_response, idle_ms)

    async def _words(
        self, item: Item, audio: Float32Array, guess: asyncio.Task[Transcript] | None
    ) -> Transcript | None:
        """The words of ``item``'s audio (the guess's, if it had them); None if they failed."""
        transcript = await _result_or_none(guess) if guess is not None else None
        if transcript is not None:
            return transcript
        report = self.transcription is not None
        try:
            with at_priority(Priority.NOW):
                return await self._stt.transcribe(audio, self._options())
        except ModelBusyError as exc:
            item.status = "incomplete"
            if report:
                self._events.transcription_failed(item.id, "server_busy", str(exc))
            self._events.error(ProtocolError(str(exc), code="server_busy", kind="server_error"))
        except RemoteSpeechError as exc:  # its message names the endpoint and the reason
            log.warning("user turn %s: %s", item.id, exc)
            item.status = "incomplete"
            if report:
                self._events.transcription_failed(item.id, f"remote_{exc.reason}", str(exc))
        except Exception as exc:  # the model failed: this turn has no words, the call goes on
            log.warning("user turn %s: transcription failed: %r", item.id, exc)
            item.status = "incomplete"
            if report:
                self._events.transcription_failed(
                    item.id, "transcription_failed", f"speech to text failed: {type(exc).__name__}"
                )
        return None

    def _own(
        self, coroutine: Coroutine[Any, Any, None], name: str, *, transcribing: bool = False
    ) -> None:
        task = asyncio.create_task(coroutine, name=f"turn-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if transcribing:
            self._transcribing.add(task)
            task.add_done_callback(self._transcribing.discard)


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
