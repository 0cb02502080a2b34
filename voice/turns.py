"""Turn-taking: who speaks when. Timestamped observations in, actions out, no I/O.

Time is the position in the input audio stream (milliseconds, from sample counts), so
every rule runs on a scripted timeline in tests. The session feeds it VAD windows (with
whether the bot is audible right now) and transcription results, and carries out the
actions it returns.

Policies, each configurable in :class:`TurnConfig`:

* **Endpointing.** A turn ends after ``silence_ms`` of silence. After
  ``speculative_after_ms`` of silence the session is asked to transcribe the speech so
  far (:class:`StartSpeculative`); if the user goes on, that transcript is dropped
  (:class:`DropSpeculative`), if the silence is confirmed the turn is committed with it,
  so the transcript is (nearly) ready at commit time. A guess that sounds finished lets
  the session prepare the reply during the rest of the silence. While the call is alone
  on the machine, ``speculative_alone_ms`` (if set) replaces ``speculative_after_ms``.
* **Semantic hold.** If the speculative transcript trails off ("and then I…", "so um";
  with ``hold_unpunctuated``, also when it ends no sentence),
  or the end-of-turn model (:meth:`TurnTaker.on_turn_model`, on the audio of the same
  guess; asked only with a ``complete_threshold``) hears an unfinished turn, the silence
  needed is extended by ``hold_ms`` once per pause.
* **Early end.** With ``early_silence_ms``, a pause whose guess sounds finished to both
  (the words do not trail off and the model's probability of a complete turn reaches
  ``early_threshold``, or ``complete_threshold`` without one) ends the turn after that
  much silence instead of ``silence_ms``, once the caller is ready to answer it
  (:meth:`TurnTaker.on_ready`: its prepared reply is held); that reply is then released
  that much sooner. A high ``early_threshold`` with a long ``silence_ms`` answers the
  pauses the model is sure of at once and waits out the others.
* **Barge-in** (``barge_in="pause"``, the default). Speech while the bot is audible first
  pauses the bot (:class:`PauseBot`, after ``barge_in_onset_ms``). Speech that goes on for
  ``barge_in_confirm_ms`` interrupts (:class:`InterruptBot`). Shorter speech is
  transcribed (:class:`CheckWords`): words that are not a backchannel ("mm-hmm", "yeah")
  interrupt and become the user's turn; a backchannel, a cough or noise resume the bot
  (:class:`ResumeBot`). ``"immediate"`` interrupts at onset; ``"off"`` ignores speech
  while the bot is audible. With ``notice_at_pause`` (transports whose client holds the
  bot's audio and must flush it, the WebSocket) the user's :class:`SpeechStarted` goes
  with the pause, so the client stops playing at once; speech that does not interrupt then
  ends in :class:`SpeechStopped` before the bot resumes. Otherwise (WebRTC, where the
  server holds the audio) it goes out only once the speech interrupts.
* **Soft commit** (``soft_commit_ms``). Speech over the first ``soft_commit_ms`` of the
  bot's audio after a turn ended is taken as the user going on with that turn, not as a
  remark on the reply: its words count even when the transcription is not confident
  (:attr:`TurnTaker.continues_turn`: the word check uses a lower bar), so a user who only
  paused loses nothing. The reply stops as any interruption does, and the prompt joins the
  two pieces into one user message when nothing of the reply between was heard
  (:func:`voice.reply_plan.chat_turns`).
* **Monologue cap.** A turn whose speech reaches ``max_turn_ms`` ends there, as if the
  user had paused (the input buffer is bounded).
* **Idle timeout** (``idle_timeout_ms``, off by default). Once the bot's audio has finished
  playing, silence that long from the user ends in :class:`IdleTimeout` (the session then
  asks for a reply, as the Realtime API's server VAD does). It fires once per bot reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from voice.endpointing import Endpointer, EndpointingConfig, SpeechStarted, SpeechStopped

BACKCHANNELS = frozenset(
    "mm mmm mhm mmhmm hmm hm uh um uhhuh uh-huh mm-hmm ah oh aha ha yeah yep yes yup ok okay "
    "right sure cool nice wow true gotcha alright".split()
)
TRAILING_WORDS = frozenset(
    "and but so or because cause um uh like the a an to then if that with of my i we "
    "when which who is was".split()
)


#: How a transcript ends a sentence (Whisper's marks, Latin and CJK).
SENTENCE_ENDS = (".", "?", "!", "\u3002", "\uff1f", "\uff01")


@dataclass(frozen=True)
class StartSpeculative:
    """Transcribe the buffered speech up to ``end_ms`` now; tag the result ``generation``."""

    end_ms: int
    generation: int


@dataclass(frozen=True)
class DropSpeculative:
    """The user went on after a pause: the speculative ``generation`` will not be used."""

    generation: int


@dataclass(frozen=True)
class CommitTurn:
    """The user's turn ended at ``end_ms``; reuse speculative ``generation`` if not None."""

    end_ms: int
    generation: int | None


@dataclass(frozen=True)
class PauseBot:
    """Stop sending bot audio now (possible interruption that began at ``onset_ms``).

    ``noticed``: the client was told (a :class:`SpeechStarted` came just before).
    """

    onset_ms: int
    noticed: bool = False


@dataclass(frozen=True)
class ResumeBot:
    """It was not an interruption: resume the bot's audio."""


@dataclass(frozen=True)
class InterruptBot:
    """Cancel the bot's response; the user has the floor."""


@dataclass(frozen=True)
class CheckWords:
    """Transcribe the short speech ``[start_ms, end_ms]`` heard over the bot."""

    start_ms: int
    end_ms: int
    generation: int


@dataclass(frozen=True)
class IdleTimeout:
    """The user said nothing in ``[start_ms, end_ms]`` after the bot's audio had ended."""

    start_ms: int
    end_ms: int


Action = (
    SpeechStarted
    | SpeechStopped
    | StartSpeculative
    | DropSpeculative
    | CommitTurn
    | PauseBot
    | ResumeBot
    | InterruptBot
    | CheckWords
    | IdleTimeout
)


@dataclass
class TurnConfig:
    """Thresholds and policies of turn-taking (see the module docstring)."""

    endpointing: EndpointingConfig = field(default_factory=EndpointingConfig)
    speculative_after_ms: int | None = 160
    #: ``speculative_after_ms`` while the call is alone on the machine (the turn-taker's
    #: ``alone``): earlier guesses, more of them thrown away; None: the same.
    speculative_alone_ms: int | None = None
    hold_ms: int = 0
    #: Hold a pause whose guess ends no sentence (no full stop, question or exclamation
    #: mark) as one that trails off.
    hold_unpunctuated: bool = False
    #: Silence that ends a turn both the words and the end-of-turn model call finished;
    #: None: the turn always waits for ``silence_ms``.
    early_silence_ms: int | None = None
    #: The end-of-turn model's probability from which a turn counts as complete; None:
    #: no model is asked (``server_vad``: the silence alone ends a turn).
    complete_threshold: float | None = None
    #: The model's probability from which a pause may end early (``early_silence_ms``);
    #: None: ``complete_threshold``.
    early_threshold: float | None = None
    barge_in: Literal["pause", "immediate", "off"] = "pause"
    barge_in_onset_ms: int = 64
    barge_in_confirm_ms: int = 1000
    #: Tell the client of speech over the bot when the bot pauses, not when it interrupts.
    notice_at_pause: bool = False
    backchannels: frozenset[str] = BACKCHANNELS
    #: A turn is ended when its speech (from onset) gets this long; None: no cap.
    max_turn_ms: int | None = None
    #: Silence this long after the bot's audio ended is an :class:`IdleTimeout`; None: off.
    idle_timeout_ms: int | None = None
    #: Speech over the first this-many ms of bot audio after a turn ended continues that
    #: turn (its words count at a lower confidence bar); None: off.
    soft_commit_ms: int | None = None


def normalized_words(text: str) -> list[str]:
    """Lower-case words without punctuation or bracketed noise tags like ``[coughs]``."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*", " ", text.lower())
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text)


_HUM = re.compile(r"^[hmnu]+(?:-[hmnu]+)*$")  # mm, hmm, mhm, m-h-m, uh-huh's relatives


def is_meaningful(text: str, backchannels: frozenset[str] = BACKCHANNELS) -> bool:
    """Whether ``text`` holds any word that is not a backchannel, filler or hum."""
    return any(word not in backchannels and not _HUM.match(word) for word in normalized_words(text))


def trails_off(text: str, *, unpunctuated: bool = False) -> bool:
    """Whether a partial transcript sounds unfinished ("and then I…", "so um").

    ``unpunctuated``: also when it does not end a sentence (no ".", "?" or "!"): Whisper
    writes the full stop of a sentence it heard end, and mostly leaves it out of one cut
    in its middle.
    """
    stripped = text.strip()
    if stripped.endswith(("...", "\u2026", ",", "-")):
        return True
    ends_sentence = stripped.endswith(SENTENCE_ENDS)
    if unpunctuated and stripped and not ends_sentence:
        return True
    words = normalized_words(stripped)
    return bool(words) and words[-1] in TRAILING_WORDS and not ends_sentence


class TurnTaker:
    """The turn-taking state machine of one session."""

    def __init__(self, config: TurnConfig, alone: Callable[[], bool] | None = None) -> None:
        """``alone`` says whether this call has the machine to itself right now
        (:attr:`voice.call_load.CallLoad.alone`); None: never."""
        self.config = config
        self._alone = alone
        self._endpointer = Endpointer(config.endpointing)
        self._state: Literal["idle", "speech", "overlap", "checking"] = "idle"
        self._overlap_start_ms = 0
        self._turn_start_ms = 0
        self._generation = 0
        self._speculative: int | None = None  # generation of the speculative STT in flight
        self._held = False
        #: The current guess's verdicts: words finished, the model's probability that the
        #: turn is complete (None: not known).
        self._words_done: bool | None = None
        self._complete: float | None = None
        #: The caller is ready to answer the guess (its reply is held): it may end early.
        self._ready = False
        self._silence_ms = 0
        self._last_speech_end_ms = 0
        #: The idle timeout is armed by bot audio; where the user's silence after it began.
        self._idle_armed = False
        self._idle_since: int | None = None
        #: Bot audio heard since the last turn ended, while the soft commit is open (None:
        #: closed); and whether the speech over the bot began inside it.
        self._soft_audible_ms: int | None = None
        self._soft_closed_at_ms: int | None = None  # where the last soft commit closed
        self._continues = False

    @property
    def in_speech(self) -> bool:
        """The user is speaking (or may be: speech over the bot not yet decided)."""
        return self._state != "idle"

    @property
    def continues_turn(self) -> bool:
        """The speech over the bot began within the soft commit: the user is going on with
        the turn that just ended, so words of low confidence still count."""
        return self._continues and self.bot_paused

    @property
    def bot_paused(self) -> bool:
        """The bot was paused for speech over it that is not decided yet."""
        return self._state in ("overlap", "checking")

    def reset(self) -> list[Action]:
        """Forget speech in progress (the input buffer was cleared or committed by hand).

        A bot paused for speech over it is resumed: that speech is gone.
        """
        paused = self.bot_paused
        self._endpointer.reset()
        self._state = "idle"
        self._speculative = None
        self._forget_guess()
        self._generation += 1
        self._soft_audible_ms = self._soft_closed_at_ms = None
        self._continues = False
        return [ResumeBot()] if paused else []

    def on_vad(
        self, probability: float, start_ms: int, window_ms: int, *, bot_audible: bool
    ) -> list[Action]:
        """One VAD window of the input stream; ``bot_audible``: bot audio is playing."""
        cfg = self.config
        actions: list[Action] = []
        if self._state == "overlap" and not bot_audible:
            # The bot finished while the user was talking over it: an ordinary turn now.
            self._state = "speech"
            self._turn_start_ms = self._overlap_start_ms
            if not cfg.notice_at_pause:
                actions.append(SpeechStarted(self._overlap_start_ms))
        overlapping = bot_audible and self._state in ("idle", "checking")
        min_speech = cfg.barge_in_onset_ms if overlapping else cfg.endpointing.min_speech_ms
        silence_needed = self._silence_needed()
        if self._state in ("overlap", "checking"):
            silence_needed = min(silence_needed, 2 * window_ms)  # short speech: decide fast
        event = self._endpointer.process(
            probability, start_ms, window_ms, min_speech_ms=min_speech, silence_ms=silence_needed
        )
        if isinstance(event, SpeechStarted):
            actions.extend(self._speech_started(event, bot_audible))
        elif isinstance(event, SpeechStopped):
            actions.extend(self._speech_stopped(event))
        elif self._state == "speech":
            actions.extend(self._during_speech())
            if (
                cfg.max_turn_ms is not None
                and start_ms + window_ms - self._turn_start_ms >= cfg.max_turn_ms
            ):
                actions.extend(self._end_monologue(start_ms + window_ms))
        elif self._state == "overlap":
            if start_ms + window_ms - self._overlap_start_ms >= cfg.barge_in_confirm_ms:
                actions.extend(self._confirm_interruption())
        if cfg.idle_timeout_ms is not None:
            actions.extend(self._idle(start_ms, start_ms + window_ms, bot_audible))
        self._count_soft(start_ms + window_ms, window_ms, bot_audible)
        return actions

    def _count_soft(self, end_ms: int, window_ms: int, bot_audible: bool) -> None:
        """The soft commit closes once the bot has been audible ``soft_commit_ms``."""
        limit = self.config.soft_commit_ms
        if self._soft_audible_ms is None or limit is None or not bot_audible:
            return
        if self._state == "idle":
            self._soft_audible_ms += window_ms
            if self._soft_audible_ms >= limit:
                self._soft_audible_ms, self._soft_closed_at_ms = None, end_ms

    def _open_soft(self) -> None:
        """A turn ended: speech over the reply's first audio will continue it."""
        self._soft_audible_ms = 0 if self.config.soft_commit_ms else None
        self._soft_closed_at_ms = None

    def _began_in_soft(self, onset_ms: int) -> bool:
        """Whether speech from ``onset_ms`` began within the soft commit (its onset is
        known only some windows later, which may have closed it meanwhile)."""
        if self._soft_audible_ms is not None:
            return True
        return self._soft_closed_at_ms is not None and onset_ms < self._soft_closed_at_ms

    def _silence_needed(self) -> int:
        cfg = self.config
        if cfg.early_silence_ms is not None and self._words_done and self._ready:
            threshold = cfg.early_threshold or cfg.complete_threshold
            if threshold is not None and (self._complete or 0.0) >= threshold:
                return cfg.early_silence_ms
        return cfg.endpointing.silence_ms + (cfg.hold_ms if self._held else 0)

    def _forget_guess(self) -> None:
        self._held = False
        self._words_done = self._complete = None
        self._ready = False

    def _idle(self, start_ms: int, end_ms: int, bot_audible: bool) -> list[Action]:
        """Count the user's silence after the bot's audio ended; fire once it is too long."""
        if bot_audible or self._state != "idle":
            self._idle_armed = bot_audible or (self._idle_armed and self._state == "idle")
            self._idle_since = None
            return []
        if not self._idle_armed:
            return []
        if self._idle_since is None:
            self._idle_since = start_ms
        assert self.config.idle_timeout_ms is not None
        if end_ms - self._idle_since < self.config.idle_timeout_ms:
            return []
        self._idle_armed, since, self._idle_since = False, self._idle_since, None
        return [IdleTimeout(since, end_ms)]

    def _speech_started(self, event: SpeechStarted, bot_audible: bool) -> list[Action]:
        cfg = self.config
        self._forget_guess()
        if self._state == "idle":
            self._continues = self._began_in_soft(event.audio_start_ms)
            self._soft_audible_ms = self._soft_closed_at_ms = None
        if bot_audible and self._state in ("idle", "checking"):
            if cfg.barge_in == "off":
                self._endpointer.reset()  # speech over the bot is not a turn
                return []
            if cfg.barge_in == "immediate":
                self._state = "speech"
                self._turn_start_ms = event.audio_start_ms
                return [event, InterruptBot()]
            paused = self.bot_paused  # still paused from an undecided check
            if self._state == "idle":
                self._overlap_start_ms = event.audio_start_ms
            self._state = "overlap"
            self._generation += 1  # a pending word check is superseded
            if paused:
                return []
            if cfg.notice_at_pause:
                onset = self._overlap_start_ms
                return [SpeechStarted(onset), PauseBot(onset, noticed=True)]
            return [PauseBot(self._overlap_start_ms)]
        self._state = "speech"
        self._turn_start_ms = event.audio_start_ms
        return [event]

    def _during_speech(self) -> list[Action]:
        """Silence inside a turn: start the speculative transcription once."""
        silence = self._endpointer.silence_ms
        if silence == 0:
            if self._speculative is not None:  # the user went on: drop the guess
                dropped, self._speculative = self._speculative, None
                self._forget_guess()
                self._generation += 1
                return [DropSpeculative(dropped)]
            return []
        if self._speculative is not None:
            return []
        after = self._speculate_after()
        if after is not None and silence >= after:
            self._generation += 1
            self._speculative = self._generation
            return [StartSpeculative(self._endpointer.last_speech_end_ms, self._generation)]
        return []

    def _speculate_after(self) -> int | None:
        cfg = self.config
        if cfg.speculative_after_ms is None:
            return None
        if cfg.speculative_alone_ms is not None and self._alone is not None and self._alone():
            return cfg.speculative_alone_ms
        return cfg.speculative_after_ms

    def _speech_stopped(self, event: SpeechStopped) -> list[Action]:
        if self._state in ("overlap", "checking"):
            self._state = "checking"
            self._generation += 1
            return [CheckWords(self._overlap_start_ms, event.audio_end_ms, self._generation)]
        self._state = "idle"
        generation, self._speculative = self._speculative, None
        self._forget_guess()
        self._open_soft()
        return [event, CommitTurn(event.audio_end_ms, generation)]

    def _end_monologue(self, end_ms: int) -> list[Action]:
        """The turn has gone on too long: end it here, as if the user had paused."""
        self._endpointer.reset()
        self._state = "idle"
        self._speculative = None
        self._forget_guess()
        self._generation += 1
        self._open_soft()  # a capped monologue goes on as naturally as a paused one
        return [SpeechStopped(end_ms), CommitTurn(end_ms, None)]

    def _confirm_interruption(self) -> list[Action]:
        self._state = "speech"
        self._turn_start_ms = self._overlap_start_ms
        return [*self._late_notice(), InterruptBot()]

    def _late_notice(self) -> list[Action]:
        """The client learns of speech over the bot once it interrupts (unless told at the
        pause)."""
        return [] if self.config.notice_at_pause else [SpeechStarted(self._overlap_start_ms)]

    def on_speculative(self, generation: int, text: str) -> bool:
        """A speculative transcript arrived; it may extend the wait (semantic hold).

        Returns whether the guess is current and sounds finished: if the silence holds,
        the turn will be committed with it, so a reply to it can be prepared now.
        """
        if not self.is_speculating(generation):
            return False
        unfinished = trails_off(text, unpunctuated=self.config.hold_unpunctuated)
        self._words_done = bool(normalized_words(text)) and not unfinished
        if not self._words_done and normalized_words(text):
            self._hold()
        return self._words_done

    def on_turn_model(self, generation: int, probability: float) -> None:
        """The end-of-turn model's probability that the guess's turn is complete."""
        threshold = self.config.complete_threshold
        if threshold is None or not self.is_speculating(generation):
            return
        self._complete = probability
        if probability < threshold:
            self._hold()

    def on_ready(self, generation: int) -> None:
        """The caller can answer guess ``generation`` at once (its reply is prepared, or
        none is made ahead): only then may it end the turn early."""
        if self.is_speculating(generation):
            self._ready = True

    def _hold(self) -> None:
        if self.config.hold_ms and not self._held:
            self._held = True

    def end_if_due(self) -> list[Action]:
        """End the turn now if a verdict that just came made the silence so far enough."""
        if self._state != "speech" or not self._endpointer.in_speech:
            return []
        silence = self._endpointer.silence_ms
        if silence == 0 or silence < self._silence_needed():
            return []
        return self._speech_stopped(self._endpointer.stop())

    def is_speculating(self, generation: int) -> bool:
        """Whether speculative ``generation`` is still the guess the turn would commit with."""
        return generation == self._speculative and self._state == "speech"

    def on_words(self, generation: int, text: str, end_ms: int) -> list[Action]:
        """The words of a short speech over the bot: interrupt, or resume the bot."""
        if generation != self._generation or self._state != "checking":
            return []
        self._state = "idle"
        if is_meaningful(text, self.config.backchannels):
            self._open_soft()
            return [
                *self._late_notice(),
                InterruptBot(),
                SpeechStopped(end_ms),
                CommitTurn(end_ms, generation),  # reuse these words as the transcript
            ]
        if self.config.notice_at_pause:  # the client was told the user spoke: and stopped
            return [SpeechStopped(end_ms), ResumeBot()]
        return [ResumeBot()]
