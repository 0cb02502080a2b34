"""The call's ear: input audio in, turn-taking actions out. No I/O, no awaits.

:meth:`Listener.push` takes the samples a client sent (at their own rate) and the time
they arrived, and runs them through the input side of a call in order: resampling to
16 kHz, the echo guard (the bot's own voice taken out), the input buffer and its arrival
log, the Silero VAD, and the turn-taker, whose decisions it returns as actions for the
session to carry out. It also holds what the user turns need from the input: the audio of
a turn or of a stretch of it, and the turn-taker's answers to transcripts.
"""

from __future__ import annotations

from collections.abc import Callable

from voice.audio import Float32Array, StreamResampler
from voice.echo import EchoGuard, EchoReference
from voice.input_buffer import ArrivalLog, InputBuffer, ms_to_samples, samples_to_ms
from voice.playout import Monitor
from voice.protocol import ProtocolError
from voice.stt import STT_SAMPLE_RATE
from voice.turns import Action, TurnConfig, TurnTaker
from voice.vad import SileroVadStream

#: Speech transcribed for a guess or a word check runs this much past its end.
TAIL_MS = 100


class Listener:
    """Input audio of one call, from the wire to turn-taking actions."""

    def __init__(
        self,
        turns: TurnConfig | None,
        *,
        prefix_padding_ms: int,
        max_buffer_ms: float,
        echo_guard: bool,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        """``alone``: whether the call has the machine to itself right now (the
        turn-taker's, :class:`~voice.turns.TurnTaker`)."""
        self._alone = alone
        self.buffer = InputBuffer()
        self.arrivals = ArrivalLog()
        self._max_samples = ms_to_samples(max_buffer_ms)
        self._prefix_ms = prefix_padding_ms
        self._resampler: StreamResampler | None = None
        self._echo = EchoGuard() if echo_guard else None
        self._reference: EchoReference | None = None
        self._vad = SileroVadStream()
        self._turns = TurnTaker(turns, self._alone) if turns is not None else None

    # --- configuration ------------------------------------------------------------------

    def detect_turns(self, turns: TurnConfig | None, prefix_padding_ms: int) -> list[Action]:
        """Take turns with ``turns`` from now on (None: the client commits by hand)."""
        actions = self.reset()
        self._turns = TurnTaker(turns, self._alone) if turns is not None else None
        self._prefix_ms = prefix_padding_ms
        self._vad.reset()
        return actions

    def echo_monitor(self, output_rate: int) -> Monitor | None:
        """A monitor for the output the bot speaks through, so its echo can be taken out."""
        if self._echo is None:
            return None
        self._reference = EchoReference(self._echo, rate=output_rate)
        return self._reference.on_audio

    # --- the input path -------------------------------------------------------------------

    def push(
        self, samples: Float32Array, rate: int, now: float, *, bot_audible: bool
    ) -> list[Action]:
        """Audio the client sent at ``rate`` Hz, arrived at ``now``: what turn-taking decides.

        Raises :class:`~voice.protocol.ProtocolError` when a hand-committed buffer is full.
        """
        if self._resampler is None or self._resampler.in_rate != rate:
            self._resampler = StreamResampler(rate, STT_SAMPLE_RATE)
        samples = self._resampler.process(samples)
        if not samples.size:
            return []
        arrived_until = self.buffer.end + samples.size
        self.arrivals.mark(arrived_until, now)
        if self._echo is not None and self._reference is not None:
            self._reference.on_input(arrived_until, now)
            samples = self._echo.process(samples, self.buffer.end)
        if self._turns is None and len(self.buffer) + samples.size > self._max_samples:
            seconds = self._max_samples / STT_SAMPLE_RATE
            raise ProtocolError(
                f"input audio buffer is full ({seconds:.0f} s); commit or clear it",
                code="input_audio_buffer_full",
            )
        self.buffer.append(samples)
        if self._turns is None:
            return []
        actions: list[Action] = []
        for window_start, probability in self._vad.process(samples):
            actions += self._turns.on_vad(
                probability,
                samples_to_ms(window_start),
                self._vad.window_ms,
                bot_audible=bot_audible,
            )
        if not self._turns.in_speech:
            self.buffer.trim(self.buffer.end - ms_to_samples(self._prefix_ms))
        return actions

    def speech_started(self, onset_ms: int) -> None:
        """A turn began at ``onset_ms``: keep its prefix padding, drop what came before."""
        self.buffer.trim(ms_to_samples(onset_ms - self._prefix_ms))

    # --- what the user turns need -----------------------------------------------------------

    @property
    def in_speech(self) -> bool:
        """The user is speaking (or may be: speech over the bot not yet decided)."""
        return self._turns is not None and self._turns.in_speech

    def buffered_ms(self) -> int:
        return samples_to_ms(len(self.buffer))

    def take(self) -> Float32Array:
        """The buffered turn; the buffer is empty afterwards."""
        return self.buffer.take()

    def turn_audio(self, end_ms: int) -> Float32Array:
        """The current turn's audio up to ``end_ms`` (a speculative guess)."""
        return self.buffer.slice(self.buffer.start, ms_to_samples(end_ms + TAIL_MS))

    def stretch(self, start_ms: int, end_ms: int) -> Float32Array:
        """The audio of ``[start_ms, end_ms]`` with its prefix padding (a word check)."""
        return self.buffer.slice(
            ms_to_samples(start_ms - self._prefix_ms), ms_to_samples(end_ms + TAIL_MS)
        )

    def arrival_of(self, ms: int) -> float | None:
        """When the input at stream position ``ms`` arrived (clock seconds), if known."""
        return self.arrivals.arrival_of(ms_to_samples(ms))

    def guessed(self, generation: int, text: str) -> bool:
        """A speculative transcript: whether it is current and sounds finished."""
        return self._turns is not None and self._turns.on_speculative(generation, text)

    @property
    def asks_turn_model(self) -> bool:
        """Whether the end-of-turn model's verdict on a guess counts (``semantic_vad``)."""
        return self._turns is not None and self._turns.config.complete_threshold is not None

    def judged(self, generation: int, probability: float) -> None:
        """The end-of-turn model's verdict on guess ``generation``."""
        if self._turns is not None:
            self._turns.on_turn_model(generation, probability)

    def ready(self, generation: int) -> None:
        """The reply to guess ``generation`` is held (or none is made ahead)."""
        if self._turns is not None:
            self._turns.on_ready(generation)

    def end_if_due(self) -> list[Action]:
        """End the turn now if the verdicts so far make the silence enough."""
        return self._turns.end_if_due() if self._turns is not None else []

    def is_guessing(self, generation: int) -> bool:
        """Whether guess ``generation`` is still the one the turn would commit with."""
        return self._turns is not None and self._turns.is_speculating(generation)

    @property
    def continues_turn(self) -> bool:
        """The speech over the bot began right after the user's last turn ended (the soft
        commit): it most likely goes on with that turn."""
        return self._turns is not None and self._turns.continues_turn

    @property
    def may_echo(self) -> bool:
        """Whether the client's microphone may carry the bot's voice: unless the echo guard
        found the client cancelling its own echo (without the guard, nobody can tell)."""
        return self._echo is None or self._echo.echo_seen is not False

    def heard_words(self, generation: int, text: str, end_ms: int) -> list[Action]:
        """The words of speech over the bot: interrupt, or resume the bot."""
        return self._turns.on_words(generation, text, end_ms) if self._turns else []

    def reset(self) -> list[Action]:
        """Forget speech in progress (the client committed or cleared the buffer)."""
        return self._turns.reset() if self._turns is not None else []

    @property
    def barge_in(self) -> str:
        return self._turns.config.barge_in if self._turns is not None else "off"

    def clear(self) -> list[Action]:
        """Drop the buffered audio and any speech in progress."""
        self.buffer.clear()
        return self.reset()
