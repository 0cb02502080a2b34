"""What happened in one benchmark turn, derived from stamped server events (no I/O).

The client stamps every server event it receives with one monotonic clock and reduces it
to an :class:`Observation`. Everything here is arithmetic on those observations: which
events belong to the measured turn, how long each stage took after the user's end of
speech, and whether the stages arrived in the order the protocol implies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from voice.bench.wer import word_count, word_error_rate

# Server event types the bench looks at.
SPEECH_STARTED = "input_audio_buffer.speech_started"
SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
COMMITTED = "input_audio_buffer.committed"
TRANSCRIBED = "conversation.item.input_audio_transcription.completed"
RESPONSE_CREATED = "response.created"
TEXT_DELTA = "response.output_audio_transcript.delta"
AUDIO_DELTA = "response.output_audio.delta"
REPLY_TEXT_DONE = "response.output_audio_transcript.done"
RESPONSE_DONE = "response.done"
ERROR = "error"

#: Stages of a spoken turn, in the order the protocol implies.
STAGES: tuple[str, ...] = (
    "speech_stopped",
    "transcribed",
    "first_text",
    "first_audio",
    "last_audio",
    "done",
)

BargeInOutcome = Literal["interrupted", "idle_at_onset", "not_interrupted", "incomplete"]
TransportName = Literal["websocket", "webrtc"]

#: Stage pairs whose order a transport does not imply. Over WebRTC ``response.done`` is
#: sent when the reply is generated, while its audio is still playing out in real time.
UNORDERED: Mapping[TransportName, frozenset[frozenset[str]]] = {
    "websocket": frozenset(),
    "webrtc": frozenset({frozenset({"done", "first_audio"}), frozenset({"done", "last_audio"})}),
}


@dataclass(frozen=True)
class Observation:
    """One server event as the client saw it: its type, arrival time and linking ids.

    ``text`` holds a user transcript or a reply transcript, only long enough to count
    words and score the transcription; it is never logged nor written out. ``audio_ms``
    is the duration of an audio delta. (Over WebRTC, which has no audio deltas, the client
    makes one ``AUDIO_DELTA`` observation per audible frame it receives.)
    """

    type: str
    at: float
    item_id: str | None = None
    response_id: str | None = None
    status: str | None = None
    detail: str | None = None
    text: str | None = None
    audio_ms: float | None = None


def _ms(mark: float | None, origin: float) -> float | None:
    return None if mark is None else round((mark - origin) * 1000.0, 3)


def _first(
    observations: Sequence[Observation], predicate: Callable[[Observation], bool], start: int = 0
) -> tuple[int, Observation] | None:
    for index in range(start, len(observations)):
        if predicate(observations[index]):
            return index, observations[index]
    return None


def _errors(observations: Sequence[Observation]) -> list[str]:
    return [o.detail or "error" for o in observations if o.type == ERROR]


@dataclass
class TurnTimeline:
    """Client-clock marks (seconds) of one spoken turn; ``t0`` is the end of user speech.

    ``t0`` is when the audio chunk holding the clip's last speech sample was sent. Marks
    are arrival times of: ``speech_stopped``, the user item's transcription ``completed``,
    the reply's first ``output_audio_transcript.delta`` (``first_text``), its first and
    last ``output_audio.delta`` and its ``response.done``; ``None`` when one never came.
    Over WebRTC, t0 is when the frame holding that sample was handed to the sender, and
    first and last audio are the first and last audible frames of the reply received.
    """

    clip: str
    call: int
    t0: float
    transport: TransportName = "websocket"
    response_id: str | None = None
    speech_stopped: float | None = None
    transcribed: float | None = None
    first_text: float | None = None
    first_audio: float | None = None
    last_audio: float | None = None
    done: float | None = None
    status: str | None = None
    user_turns: int = 0
    transcript_words: int | None = None
    reply_words: int | None = None
    reply_audio_ms: float | None = None
    wer: float | None = None
    errors: list[str] = field(default_factory=list)

    def mark(self, stage: str) -> float | None:
        value: float | None = getattr(self, stage)
        return value

    def stages_ms(self) -> dict[str, float | None]:
        """Milliseconds from the end of user speech to each stage (``None``: missing)."""
        return {stage: _ms(self.mark(stage), self.t0) for stage in STAGES}

    @property
    def complete(self) -> bool:
        return all(self.mark(stage) is not None for stage in STAGES)

    def inconsistencies(self) -> list[str]:
        """Stages that arrived before a stage the protocol says comes first."""
        marks = {stage: self.mark(stage) for stage in STAGES}
        return _order_problems(marks, UNORDERED.get(self.transport, frozenset()))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stages_ms"] = self.stages_ms()
        data["inconsistencies"] = self.inconsistencies()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**_own_fields(cls, data))


def _order_problems(
    marks: Mapping[str, float | None], unordered: frozenset[frozenset[str]]
) -> list[str]:
    present = [(name, at) for name, at in marks.items() if at is not None]
    problems = []
    for index, (name, at) in enumerate(present):
        for earlier_name, earlier_at in present[:index]:
            if at < earlier_at and frozenset({name, earlier_name}) not in unordered:
                problems.append(f"{name} before {earlier_name}")
    return problems


def _own_fields(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def turn_from_observations(
    clip: str,
    call: int,
    t0: float,
    observations: Sequence[Observation],
    reference: str | None = None,
    transport: TransportName = "websocket",
) -> TurnTimeline:
    """The measured turn: the last user turn the server ended, and the response to it.

    The server may split a clip into several user turns (a long pause inside it); the
    turn that ends with the clip's end of speech is the last one, so the last
    ``speech_stopped`` whose item was committed is measured (speech over the bot that
    did not interrupt it also stops, but is no turn). Its response is the first one
    created after its transcription. ``reference`` (the clip's known transcript) gives
    the word error rate of all the clip's user turns' transcripts, joined in order.
    """
    turn = TurnTimeline(clip, call, t0, transport, errors=_errors(observations))
    committed = {o.item_id for o in observations if o.type == COMMITTED}
    stops = [
        (i, o)
        for i, o in enumerate(observations)
        if o.type == SPEECH_STOPPED and o.item_id in committed
    ]
    turn.user_turns = len(stops)
    if not stops:
        return turn
    stop_index, stop = stops[-1]
    turn.speech_stopped = stop.at
    found = _first(
        observations, lambda o: o.type == TRANSCRIBED and o.item_id == stop.item_id, stop_index
    )
    if found is None:
        return turn
    transcribed_index, transcription = found
    turn.transcribed = transcription.at
    text = " ".join(_transcripts(observations, [o.item_id for _, o in stops]))
    turn.transcript_words = word_count(text)
    if reference is not None:
        turn.wer = round(word_error_rate(reference, text), 4)
    created = _first(observations, lambda o: o.type == RESPONSE_CREATED, transcribed_index)
    if created is None:
        return turn
    turn.response_id = created[1].response_id
    reply = _response_marks(observations, turn.response_id)
    turn.first_text = reply.first_text
    turn.first_audio = reply.first_audio
    turn.last_audio = reply.last_audio
    turn.done = reply.done
    turn.status = reply.status
    turn.reply_words = reply.words
    turn.reply_audio_ms = round(reply.audio_ms, 3)
    return turn


def _transcripts(observations: Sequence[Observation], item_ids: Sequence[str | None]) -> list[str]:
    texts = {o.item_id: o.text or "" for o in observations if o.type == TRANSCRIBED}
    return [texts[item] for item in item_ids if item in texts]


@dataclass
class _ResponseMarks:
    first_text: float | None = None
    first_audio: float | None = None
    last_audio: float | None = None
    done: float | None = None
    status: str | None = None
    reason: str | None = None
    words: int | None = None
    audio_ms: float = 0.0
    #: Audio received before ``until`` (see :func:`_response_marks`).
    audio_ms_before: float = 0.0


def _response_marks(
    observations: Sequence[Observation], response_id: str | None, until: float | None = None
) -> _ResponseMarks:
    marks = _ResponseMarks()
    for o in observations:
        if o.response_id != response_id:
            continue
        if o.type == TEXT_DELTA and marks.first_text is None:
            marks.first_text = o.at
        elif o.type == AUDIO_DELTA:
            if marks.first_audio is None:
                marks.first_audio = o.at
            marks.last_audio = o.at
            marks.audio_ms += o.audio_ms or 0.0
            if until is not None and o.at < until:
                marks.audio_ms_before += o.audio_ms or 0.0
        elif o.type == REPLY_TEXT_DONE:
            marks.words = word_count(o.text or "")
        elif o.type == RESPONSE_DONE and marks.done is None:
            marks.done, marks.status, marks.reason = o.at, o.status, o.detail
    return marks


def turn_settled(observations: Sequence[Observation]) -> bool:
    """Whether waiting longer cannot change the turn: its response is done, or an error came."""
    kinds = {o.type for o in observations}
    if ERROR in kinds:
        return True
    if RESPONSE_DONE not in kinds:  # cheap: checked on every event while waiting
        return False
    return turn_from_observations("", 0, 0.0, observations).done is not None


@dataclass
class BargeInTimeline:
    """Client-clock marks (seconds) of one barge-in test; ``onset`` is the user's first word.

    ``onset`` is when the audio chunk holding the clip's first speech sample was sent,
    while the long reply ``response_id`` was playing. ``audio_ms_before_onset`` is how
    much reply audio had arrived by then.
    """

    clip: str
    call: int
    delay_s: float
    onset: float
    response_id: str | None = None
    first_audio: float | None = None
    speech_started: float | None = None
    last_audio: float | None = None
    done: float | None = None
    status: str | None = None
    reason: str | None = None
    audio_ms_before_onset: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def queued_ms(self) -> float | None:
        """Reply audio a real-time player still had queued at the onset: what a client
        must flush on ``speech_started`` for the user to stop hearing the reply."""
        if self.first_audio is None:
            return None
        played = max(0.0, (self.onset - self.first_audio) * 1000.0)
        return round(max(0.0, self.audio_ms_before_onset - played), 3)

    @property
    def outcome(self) -> BargeInOutcome:
        """``interrupted``: cancelled while audio was still arriving after the onset;
        ``idle_at_onset``: cancelled, but its last audio had arrived before the onset (the
        server was between clauses: there was nothing to stop);
        ``not_interrupted``: the reply completed anyway; ``incomplete``: no ``response.done``.
        """
        if self.done is None:
            return "incomplete"
        if self.status != "cancelled":
            return "not_interrupted"
        if self.last_audio is None or self.last_audio < self.onset:
            return "idle_at_onset"
        return "interrupted"

    def stages_ms(self) -> dict[str, float | None]:
        """Milliseconds from the speech onset: server noticed, last audio, reply closed."""
        stop = _ms(self.last_audio, self.onset) if self.outcome == "interrupted" else None
        cancelled = _ms(self.done, self.onset) if self.status == "cancelled" else None
        return {
            "detected": _ms(self.speech_started, self.onset),
            "stopped": stop,
            "cancelled": cancelled,
        }

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["outcome"] = self.outcome
        data["queued_ms"] = self.queued_ms
        data["stages_ms"] = self.stages_ms()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**_own_fields(cls, data))


#: Barge-in figures, in report order.
BARGE_IN_STAGES: tuple[str, ...] = ("detected", "stopped", "cancelled")


def barge_in_from_observations(
    clip: str,
    call: int,
    delay_s: float,
    onset: float,
    observations: Sequence[Observation],
    response_id: str | None,
) -> BargeInTimeline:
    """The interrupted reply's marks and the server's first ``speech_started``."""
    started = _first(observations, lambda o: o.type == SPEECH_STARTED)
    reply = _response_marks(observations, response_id, until=onset)
    return BargeInTimeline(
        clip=clip,
        call=call,
        delay_s=delay_s,
        onset=onset,
        response_id=response_id,
        first_audio=reply.first_audio,
        speech_started=None if started is None else started[1].at,
        last_audio=reply.last_audio,
        done=reply.done,
        status=reply.status,
        reason=reply.reason,
        audio_ms_before_onset=round(reply.audio_ms_before, 3),
        errors=_errors(observations),
    )
