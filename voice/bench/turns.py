"""The two scripted conversations the bench measures: a spoken turn, and a barge-in.

They run over any :class:`~voice.bench.transport.Transport`: the call says planned
utterances at real-time pace and records the server's events as observations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from openai.types.realtime import (
    ConversationItemCreateEvent,
    RealtimeConversationItemUserMessage,
    RealtimeSessionCreateRequest,
    ResponseCreateEvent,
    SessionUpdateEvent,
)
from openai.types.realtime.realtime_conversation_item_user_message import Content

from voice.audio import Float32Array
from voice.bench.client import has_event
from voice.bench.clips import BenchClip
from voice.bench.timeline import (
    AUDIO_DELTA,
    ERROR,
    RESPONSE_DONE,
    SPEECH_STOPPED,
    BargeInTimeline,
    Observation,
    TurnTimeline,
    barge_in_from_observations,
    turn_from_observations,
    turn_settled,
)
from voice.bench.transport import BenchCall, CallClosed, Clock, Target, Transport, Utterance
from voice.vad import VAD_SAMPLE_RATE

PlanT = TypeVar("PlanT")

LEAD_SILENCE_S = 0.3
TAIL_SILENCE_S = 1.5
BARGE_IN_TAIL_S = 1.0
SETUP_TIMEOUT_S = 10.0
#: After the last audio is sent, the server's VAD must have ended the turn within this.
SPEECH_STOPPED_TIMEOUT_S = 5.0
#: After ``response.done``, the rest of the reply's audio must have arrived within this
#: (WebRTC plays it out in real time; a WebSocket has already delivered it).
AUDIO_DRAIN_TIMEOUT_S = 10.0

TURN_INSTRUCTIONS = "You are a helpful companion. Answer in one short sentence."
STORY_INSTRUCTIONS = "You are a storyteller. Tell long, detailed stories in plain speech."
STORY_PROMPT = "Tell me a long story about a lighthouse keeper and a storm, with many details."


class TurnFailed(Exception):
    """The script could not go on (an error event, or a step that never happened)."""


def _silence(seconds: float) -> Float32Array:
    return np.zeros(round(seconds * VAD_SAMPLE_RATE), dtype=np.float32)


def turn_audio(clip: BenchClip) -> Utterance:
    """Lead silence, the clip, tail silence; marked at the clip's last speech sample."""
    lead = _silence(LEAD_SILENCE_S)
    samples = np.concatenate([lead, clip.samples, _silence(TAIL_SILENCE_S)])
    return Utterance(samples, lead.size + clip.speech_end - 1)


def barge_in_audio(clip: BenchClip) -> Utterance:
    """The clip and a little silence; marked at the clip's first speech sample."""
    samples = np.concatenate([clip.samples, _silence(BARGE_IN_TAIL_S)])
    return Utterance(samples, clip.speech_start)


async def _expect(call: BenchCall[PlanT], event_type: str, timeout: float) -> Observation:
    try:
        found = await call.wait_for(has_event(event_type), timeout)
    except TimeoutError:
        raise TurnFailed(f"no {event_type} within {timeout:g} s") from None
    if found.type == ERROR:
        raise TurnFailed(f"server error while waiting for {event_type}: {found.detail}")
    return found


async def _configure(
    call: BenchCall[PlanT], instructions: str, turn_detection: dict[str, Any] | None = None
) -> None:
    await _expect(call, "session.created", SETUP_TIMEOUT_S)
    session = RealtimeSessionCreateRequest(type="realtime", instructions=instructions)
    if turn_detection is not None:
        session = RealtimeSessionCreateRequest.model_validate(
            {"type": "realtime", "instructions": instructions,
             "audio": {"input": {"turn_detection": turn_detection}}}
        )  # fmt: skip
    await call.send(SessionUpdateEvent(type="session.update", session=session))
    await _expect(call, "session.updated", SETUP_TIMEOUT_S)


def _speech_stopped_or_error(observations: Sequence[Observation]) -> bool:
    return any(o.type in (SPEECH_STOPPED, ERROR) for o in observations)


async def run_turn(
    transport: Transport[PlanT],
    target: Target,
    clip: BenchClip,
    plan: PlanT,
    call_index: int,
    *,
    timeout: float,
    clock: Clock,
) -> TurnTimeline:
    """One fresh session: say ``clip``, wait for the whole reply; never raises for a bad turn.

    Server errors, timeouts and a dropped connection end the turn early and are listed in
    its ``errors``; only an unreachable server (``ServerUnreachable``) is raised.
    """
    said = await say_turn(transport, target, plan, timeout=timeout, clock=clock)
    turn = turn_from_observations(
        clip.name, call_index, said.t0, said.observations, clip.transcript, transport.name
    )
    turn.errors += said.errors
    return turn


@dataclass(frozen=True)
class SaidTurn:
    """A turn as the call saw it: when its marked sample was sent, every server event, and
    what went wrong (server errors, timeouts, schema problems)."""

    t0: float
    observations: list[Observation]
    errors: list[str]


async def say_turn(
    transport: Transport[PlanT],
    target: Target,
    plan: PlanT,
    *,
    timeout: float,
    clock: Clock,
    turn_detection: dict[str, Any] | None = None,
) -> SaidTurn:
    """One fresh session (with ``turn_detection``, if given): say ``plan``, wait for the
    whole reply. Only an unreachable server (``ServerUnreachable``) is raised."""
    problem: str | None = None
    t0: float | None = None
    async with transport.connect(target, clock) as call:
        try:
            await _configure(call, TURN_INSTRUCTIONS, turn_detection)
            t0 = await call.say(plan)
            try:
                await call.wait_for(_speech_stopped_or_error, SPEECH_STOPPED_TIMEOUT_S)
                await call.wait_for(turn_settled, timeout)
            except TimeoutError:
                problem = f"the reply did not finish within {timeout:g} s"
            else:
                measured = turn_from_observations("", 0, 0.0, call.observations)
                await call.reply_heard(measured.response_id, AUDIO_DRAIN_TIMEOUT_S)
        except (TurnFailed, CallClosed) as exc:
            problem = str(exc)
        observations = list(call.observations)
        errors = list(call.schema_errors) + ([problem] if problem else [])
        t0 = clock() if t0 is None else t0
    return SaidTurn(t0, observations, errors)


def _response_done(response_id: str | None) -> Callable[[Sequence[Observation]], bool]:
    def done(observations: Sequence[Observation]) -> bool:
        return any(
            o.type == ERROR or (o.type == RESPONSE_DONE and o.response_id == response_id)
            for o in observations
        )

    return done


async def run_barge_in(
    transport: Transport[PlanT],
    target: Target,
    clip: BenchClip,
    plan: PlanT,
    call_index: int,
    *,
    delay_s: float,
    timeout: float,
    clock: Clock,
) -> BargeInTimeline:
    """Ask for a long story; ``delay_s`` after its first audio, talk over it with ``clip``."""
    problem: str | None = None
    onset: float | None = None
    response_id: str | None = None
    async with transport.connect(target, clock) as call:
        try:
            await _configure(call, STORY_INSTRUCTIONS)
            await call.send(
                ConversationItemCreateEvent(
                    type="conversation.item.create",
                    item=RealtimeConversationItemUserMessage(
                        type="message",
                        role="user",
                        content=[Content(type="input_text", text=STORY_PROMPT)],
                    ),
                )
            )
            await call.send(ResponseCreateEvent(type="response.create"))
            response_id = (await _expect(call, AUDIO_DELTA, timeout)).response_id
            await asyncio.sleep(delay_s)
            onset = await call.say(plan)
            try:
                await call.wait_for(_response_done(response_id), timeout)
            except TimeoutError:
                problem = f"the interrupted reply did not end within {timeout:g} s"
            else:
                await call.reply_heard(response_id, AUDIO_DRAIN_TIMEOUT_S)
        except (TurnFailed, CallClosed) as exc:
            problem = str(exc)
        observations = list(call.observations)
        schema_errors = list(call.schema_errors)
        onset = clock() if onset is None else onset
    result = barge_in_from_observations(
        clip.name, call_index, round(delay_s, 3), onset, observations, response_id
    )
    result.errors += schema_errors + ([problem] if problem else [])
    return result
