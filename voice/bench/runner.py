"""Runs the benchmark: warm-up, then each concurrency level's simultaneous calls.

A *call* is one simulated user: it says every clip in turn, ``repeat`` times (a fresh
session per clip, so no turn pays for a longer history than another), then runs its
barge-in tests. Call ``i`` of a level starts ``i * CALL_STAGGER_S`` after the first and
goes through the clips starting at clip ``i``, so simultaneous calls do not all speak the
same clip at the same moment. Calls are WebSocket sessions or WebRTC calls
(``BenchOptions.transport``); the scripts and the arithmetic are the same for both.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from voice.bench.client import WEBSOCKET, fetch_health
from voice.bench.clips import BenchClip
from voice.bench.machine import load_average, machine_info
from voice.bench.progress import Progress
from voice.bench.report import BenchReport, LevelResult
from voice.bench.timeline import BargeInTimeline, TransportName, TurnTimeline
from voice.bench.transport import Clock, ServerUnreachable, Target, Transport
from voice.bench.turns import barge_in_audio, run_barge_in, run_turn, turn_audio
from voice.bench.webrtc_call import WEBRTC

PlanT = TypeVar("PlanT")

CALL_STAGGER_S = 0.5
#: The barge-in starts this long (uniform, seeded) after the first audio of the reply.
BARGE_IN_DELAY_S = (0.3, 1.0)


@dataclass(frozen=True)
class BenchOptions:
    """What to run; also recorded in the report."""

    concurrency: tuple[int, ...] = (1,)
    barge_ins: int = 3
    repeat: int = 1
    seed: int = 0
    warmup: int = 1
    turn_timeout_s: float = 90.0
    clips_dir: str | None = None
    max_seconds: float | None = None
    command: tuple[str, ...] = ()
    transport: TransportName = "websocket"


@dataclass(frozen=True)
class _Plans(Generic[PlanT]):
    transport: Transport[PlanT]
    clips: Sequence[BenchClip]
    turns: Sequence[PlanT]
    barge_ins: Sequence[PlanT]


async def _run_call(
    target: Target,
    plans: _Plans[PlanT],
    options: BenchOptions,
    concurrency: int,
    index: int,
    progress: Progress | None,
    clock: Clock,
) -> tuple[list[TurnTimeline], list[BargeInTimeline]]:
    await asyncio.sleep(index * CALL_STAGGER_S)
    count = len(plans.clips)
    turns = []
    for k in range(count * options.repeat):
        at = (index + k) % count
        turns.append(
            await run_turn(
                plans.transport,
                target,
                plans.clips[at],
                plans.turns[at],
                index,
                timeout=options.turn_timeout_s,
                clock=clock,
            )
        )
        if progress:
            progress.advance()
    rng = random.Random(f"{options.seed}:{concurrency}:{index}")
    barge_ins = []
    for k in range(options.barge_ins):
        at = (index + k) % count
        barge_ins.append(
            await run_barge_in(
                plans.transport,
                target,
                plans.clips[at],
                plans.barge_ins[at],
                index,
                delay_s=rng.uniform(*BARGE_IN_DELAY_S),
                timeout=options.turn_timeout_s,
                clock=clock,
            )
        )
        if progress:
            progress.advance()
    return turns, barge_ins


async def _run_level(
    target: Target,
    plans: _Plans[PlanT],
    options: BenchOptions,
    concurrency: int,
    progress: Progress | None,
    clock: Clock,
) -> LevelResult:
    started = clock()
    fatal: ServerUnreachable | None = None
    try:
        async with asyncio.TaskGroup() as group:
            calls = [
                group.create_task(
                    _run_call(target, plans, options, concurrency, i, progress, clock),
                    name=f"bench-call-{i}",
                )
                for i in range(concurrency)
            ]
    except* ServerUnreachable as errors:  # the others were cancelled: report the first
        fatal = _first_leaf(errors)
    if fatal is not None:
        raise fatal
    level = LevelResult(concurrency, wall_s=round(clock() - started, 3))
    for call in calls:
        turns, barge_ins = call.result()
        level.turns += turns
        level.barge_ins += barge_ins
    return level


def _first_leaf(group: BaseExceptionGroup[ServerUnreachable]) -> ServerUnreachable:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _clip_info(clip: BenchClip) -> dict[str, Any]:
    return {
        "name": clip.name,
        "seconds": round(clip.seconds, 3),
        "speech_start_s": round(clip.speech_start_s, 3),
        "speech_end_s": round(clip.speech_end_s, 3),
        "has_transcript": clip.transcript is not None,
    }


async def run_bench(
    target: Target,
    clips: Sequence[BenchClip],
    options: BenchOptions,
    *,
    progress: Progress | None = None,
    clock: Clock = time.perf_counter,
) -> BenchReport:
    """Measure a running server; raises ``ServerUnreachable`` if it cannot be reached."""
    if not clips:
        raise ValueError("no clips to run")
    if options.transport == "webrtc":
        return await _measure(_plans(WEBRTC, clips), target, options, progress, clock)
    return await _measure(_plans(WEBSOCKET, clips), target, options, progress, clock)


def _plans(transport: Transport[PlanT], clips: Sequence[BenchClip]) -> _Plans[PlanT]:
    turns = [transport.plan(turn_audio(clip)) for clip in clips]
    return _Plans(transport, clips, turns, [transport.plan(barge_in_audio(c)) for c in clips])


async def _measure(
    plans: _Plans[PlanT],
    target: Target,
    options: BenchOptions,
    progress: Progress | None,
    clock: Clock,
) -> BenchReport:
    health = await fetch_health(target)
    for _ in range(options.warmup):  # first inferences are slow; not measured
        await run_turn(
            plans.transport,
            target,
            plans.clips[0],
            plans.turns[0],
            -1,
            timeout=options.turn_timeout_s,
            clock=clock,
        )
    machine = {**machine_info(), "load_average_start": load_average()}
    levels = [
        await _run_level(target, plans, options, concurrency, progress, clock)
        for concurrency in options.concurrency
    ]
    machine["load_average_end"] = load_average()
    return BenchReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        url=target.url,
        options={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
        machine=machine,
        server_health=health,
        clips=[_clip_info(clip) for clip in plans.clips],
        levels=levels,
    )


def total_steps(clips: int, options: BenchOptions) -> int:
    """Turns plus barge-ins over all levels: the progress bar's length."""
    return sum(n * (clips * options.repeat + options.barge_ins) for n in options.concurrency)
