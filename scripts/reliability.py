"""Reliability of a running `voice serve`: resources back to baseline after many calls, and a soak.

.venv/bin/python scripts/reliability.py cycles --spawn                 # 1000 WebSocket + 200 WebRTC
.venv/bin/python scripts/reliability.py cycles --url http://127.0.0.1:8000 --api-key KEY \\
    --websocket 30 --webrtc 10 --json cycles.json
.venv/bin/python scripts/reliability.py soak --spawn --calls 4 --minutes 30 --json soak.json

``cycles``: N WebSocket cycles (connect, one short spoken turn: a real clip from
../shared/speech sent faster than real time, or a typed one with ``--typed``; wait for
``response.done``; disconnect), then M WebRTC cycles (the same over an aiortc call, the clip
at real-time pace). Before (after a few warm-up cycles) and after (once ``/health`` says no
session, task or call is left), the server's resident memory, open file descriptors,
threads and asyncio tasks are read from ``/health`` (its ``process`` block, from
``/proc/self``): each must be back to its baseline within a tolerance (``TOLERANCE``).

``soak``: K simultaneous calls, each saying a clip at real-time pace, waiting for the whole
reply, pausing, saying the next, for T minutes. Every 30 s the server's memory is sampled;
per 5-minute window: turns, errors, and the median end of speech -> first reply audio as
measured on this side (as ``voice bench`` does).

``--spawn`` starts a ``voice serve`` of its own (temporary data folder) and stops it at the
end; ``--url`` measures a running server. Exit status 0 when every resource is within its
tolerance (cycles) or no turn failed (soak), 1 otherwise, 2 when the server is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openai.types.realtime import (
    ConversationItemCreateEvent,
    RealtimeConversationItemUserMessage,
    RealtimeSessionCreateRequest,
    ResponseCreateEvent,
    SessionUpdateEvent,
)
from openai.types.realtime.realtime_conversation_item_user_message import Content

from voice.bench.client import WEBSOCKET, AudioPlan, fetch_health, has_event, open_call
from voice.bench.clips import BenchClip, ClipsError, default_clips_dir, load_clips
from voice.bench.progress import Progress
from voice.bench.spawn import spawned_server
from voice.bench.timeline import (
    RESPONSE_DONE,
    Observation,
    turn_from_observations,
    turn_settled,
)
from voice.bench.transport import BenchCall, CallClosed, ServerUnreachable, Target, Transport
from voice.bench.turns import TURN_INSTRUCTIONS, turn_audio
from voice.bench.webrtc_call import WEBRTC
from voice.process_stats import parse_status

MiB = 1024 * 1024
#: How far each resource may end above its baseline and still count as back to it.
TOLERANCE: dict[str, int] = {"rss_bytes": 25 * MiB, "open_fds": 2, "threads": 2, "asyncio_tasks": 0}
RESOURCES = tuple(TOLERANCE)
#: Replies are kept short: a cycle is about what a call leaves behind, not about talking.
REPLY_TOKENS = 12
TYPED_TEXT = "Say hello in five words."
SETUP_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 90.0
IDLE_TIMEOUT_S = 120.0
#: The run stops when this many cycles in a row fail: the server is down, not leaking.
MAX_FAILURES_IN_A_ROW = 5


# --- the server's resources ---------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """What the server process holds (``/health``'s ``process`` block)."""

    rss_bytes: int | None
    open_fds: int | None
    threads: int | None
    asyncio_tasks: int | None

    @classmethod
    def lowest(cls, samples: Sequence[dict[str, Any]]) -> Resources:
        """Per resource, the lowest of several samples (a request in flight is not a leak)."""
        values = {}
        for name in RESOURCES:
            present = [s[name] for s in samples if s.get(name) is not None]
            values[name] = min(present) if present else None
        return cls(**values)


@dataclass(frozen=True)
class Check:
    resource: str
    before: int | None
    after: int | None
    tolerance: int

    @property
    def delta(self) -> int | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def ok(self) -> bool:
        return self.delta is not None and self.delta <= self.tolerance


def checks(before: Resources, after: Resources) -> list[Check]:
    return [
        Check(name, getattr(before, name), getattr(after, name), TOLERANCE[name])
        for name in RESOURCES
    ]


async def health(target: Target) -> dict[str, Any]:
    body = await fetch_health(target)
    if body is None or "process" not in body:
        raise ServerUnreachable(f"{target.health_url} has no 'process' block: not a voice server")
    return body


def _idle(body: dict[str, Any]) -> bool:
    return not (body["active_sessions"] or body["session_tasks"] or body.get("webrtc_calls"))


async def wait_idle(target: Target, timeout: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
    """The first ``/health`` with no session, session task or WebRTC call left."""
    deadline = time.monotonic() + timeout
    body = await health(target)
    while not _idle(body):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server is not idle after {timeout:g} s: {body}")
        await asyncio.sleep(0.2)
        body = await health(target)
    return body


async def sample(target: Target, count: int = 3, gap_s: float = 0.5) -> Resources:
    """The server's resources once it is idle: the lowest of ``count`` samples."""
    samples = []
    for index in range(count):
        if index:
            await asyncio.sleep(gap_s)
        samples.append((await wait_idle(target))["process"])
    return Resources.lowest(samples)


def llm_rss(body: dict[str, Any]) -> int | None:
    """The embedded LLM server's resident memory, when it runs on this machine."""
    pid = body.get("llm_server_pid")
    if not pid:
        return None
    try:
        return parse_status(Path(f"/proc/{pid}/status").read_text())[0]
    except OSError:
        return None


# --- one cycle ----------------------------------------------------------------------------


def _user_text(text: str) -> ConversationItemCreateEvent:
    return ConversationItemCreateEvent(
        type="conversation.item.create",
        item=RealtimeConversationItemUserMessage(
            type="message", role="user", content=[Content(type="input_text", text=text)]
        ),
    )


async def _configure(call: BenchCall[Any]) -> None:
    await _expect(call, "session.created", SETUP_TIMEOUT_S)
    await call.send(
        SessionUpdateEvent(
            type="session.update",
            session=RealtimeSessionCreateRequest(
                type="realtime", instructions=TURN_INSTRUCTIONS, max_output_tokens=REPLY_TOKENS
            ),
        )
    )
    await _expect(call, "session.updated", SETUP_TIMEOUT_S)


async def _expect(call: BenchCall[Any], event_type: str, timeout: float) -> None:
    found = await call.wait_for(has_event(event_type), timeout)
    if found.type != event_type:
        raise CallClosed(f"error while waiting for {event_type}: {found.detail}")


def answered(status: str | None) -> bool:
    """A reply written in full, or up to the token limit (the server's only "incomplete")."""
    return status in ("completed", "incomplete")


async def _reply_done(call: BenchCall[Any]) -> None:
    found = await call.wait_for(has_event(RESPONSE_DONE), REPLY_TIMEOUT_S)
    if found.type != RESPONSE_DONE:
        raise CallClosed(f"error event: {found.detail}")
    if not answered(found.status):
        raise CallClosed(f"response.done with status {found.status} ({found.detail})")


async def websocket_cycle(target: Target, plan: AudioPlan | None) -> None:
    """Connect, one turn (spoken, sent at once; typed when ``plan`` is None), disconnect."""
    async with open_call(target, time.perf_counter) as call:
        await _configure(call)
        if plan is None:
            await call.send(_user_text(TYPED_TEXT))
            await call.send(ResponseCreateEvent(type="response.create"))
        else:
            for message in plan.messages:  # faster than real time: the server takes it
                await call.send_text(message)
        await _reply_done(call)


async def webrtc_cycle(target: Target, plan: Any | None) -> None:
    """The same over an aiortc call; a spoken clip goes at real-time pace, as media does."""
    async with WEBRTC.connect(target, time.perf_counter) as call:
        await _configure(call)
        if plan is None:
            await call.send(_user_text(TYPED_TEXT))
            await call.send(ResponseCreateEvent(type="response.create"))
        else:
            await call.say(plan)
        await _reply_done(call)


# --- cycles mode --------------------------------------------------------------------------


@dataclass
class CyclesReport:
    websocket: int
    webrtc: int
    typed: bool
    warmup: int
    before: Resources
    after: Resources
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    llm_rss_before: int | None = None
    llm_rss_after: int | None = None
    #: (transport, cycles done, server RSS bytes) every CURVE_EVERY cycles, not idle-waited.
    rss_curve: list[tuple[str, int, int | None]] = field(default_factory=list)

    @property
    def checks(self) -> list[Check]:
        return checks(self.before, self.after)

    def curve_line(self) -> str | None:
        """Server RSS along the run, per transport, in MiB."""
        parts = []
        for name in dict.fromkeys(point[0] for point in self.rss_curve):
            points = [
                f"{done}: {rss / MiB:.0f}"
                for kind, done, rss in self.rss_curve
                if kind == name and rss is not None
            ]
            parts.append(f"{name} {', '.join(points)}")
        return "server RSS along the run (cycles: MiB): " + "; ".join(parts) if parts else None

    @property
    def ok(self) -> bool:
        return not self.failures and all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [{**asdict(c), "delta": c.delta, "ok": c.ok} for c in self.checks]
        data["tolerance"] = TOLERANCE
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        kind = "typed" if self.typed else "spoken"
        lines = [
            f"{self.websocket} WebSocket + {self.webrtc} WebRTC cycles ({kind} turns, "
            f"{self.warmup} warm-up each) in {self.seconds:.0f} s; "
            f"failed cycles: {len(self.failures)}",
            "",
            f"| {'resource':<14} | {'before':>12} | {'after':>12} | {'delta':>10} | "
            f"{'tolerance':>10} | result |",
            f"| {'-' * 14} | {'-' * 12} | {'-' * 12} | {'-' * 10} | {'-' * 10} | ------ |",
        ]
        for check in self.checks:
            lines.append(
                f"| {check.resource:<14} | {_shown(check.resource, check.before):>12} | "
                f"{_shown(check.resource, check.after):>12} | "
                f"{_shown(check.resource, check.delta, signed=True):>10} | "
                f"{'+' + _shown(check.resource, check.tolerance):>10} | "
                f"{'PASS' if check.ok else 'FAIL':<6} |"
            )
        if self.llm_rss_before is not None and self.llm_rss_after is not None:
            lines.append(
                f"embedded LLM server RSS (not checked): {self.llm_rss_before / MiB:.1f} -> "
                f"{self.llm_rss_after / MiB:.1f} MiB"
            )
        if (curve := self.curve_line()) is not None:
            lines.append(curve)
        lines += [f"failure: {failure}" for failure in self.failures[:20]]
        return "\n".join(lines)


def _shown(resource: str, value: int | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    if resource == "rss_bytes":
        return f"{value / MiB:{'+' if signed else ''}.1f} MiB"
    return f"{value:{'+' if signed else ''}d}"


CycleFn = Callable[[Target, Any], Awaitable[None]]


#: Server RSS is recorded every this many cycles, to tell a leak (growth that goes on) from
#: an allocator settling (growth that levels off).
CURVE_EVERY = 25


async def _run_cycles(
    target: Target,
    name: str,
    count: int,
    cycle: CycleFn,
    plan: Any,
    failures: list[str],
    progress: Progress | None,
    curve: list[tuple[str, int, int | None]] | None = None,
) -> None:
    in_a_row = 0
    for index in range(count):
        if curve is not None and index % CURVE_EVERY == 0:
            curve.append((name, index, (await health(target))["process"]["rss_bytes"]))
        try:
            await cycle(target, plan)
            in_a_row = 0
        except (CallClosed, TimeoutError, ServerUnreachable) as exc:
            failures.append(f"{name} cycle {index + 1}: {exc or type(exc).__name__}")
            in_a_row += 1
            if in_a_row >= MAX_FAILURES_IN_A_ROW:
                raise ServerUnreachable(
                    f"{in_a_row} {name} cycles failed in a row: {exc}"
                ) from None
        if progress is not None:
            progress.advance()


def _plans(clip: BenchClip | None) -> tuple[AudioPlan | None, Any | None]:
    if clip is None:
        return None, None
    return WEBSOCKET.plan(turn_audio(clip)), WEBRTC.plan(turn_audio(clip))


async def run_cycles(
    target: Target,
    *,
    websocket: int,
    webrtc: int,
    clip: BenchClip | None,
    warmup: int = 3,
    log: Callable[[str], None] = print,
    progress_stream: Any = None,
) -> CyclesReport:
    """Warm up, sample, run the cycles, wait until idle, sample again."""
    ws_plan, rtc_plan = _plans(clip)
    started = time.monotonic()
    failures: list[str] = []
    log(f"warming up: {warmup} WebSocket and {min(warmup, webrtc)} WebRTC cycle(s)")
    await _run_cycles(target, "warm-up websocket", warmup, websocket_cycle, ws_plan, failures, None)
    await _run_cycles(
        target, "warm-up webrtc", min(warmup, webrtc), webrtc_cycle, rtc_plan, failures, None
    )
    if failures:
        log("warm-up failures: " + "; ".join(failures))
        failures.clear()
    baseline_health = await wait_idle(target)
    before = await sample(target)
    log(f"baseline: {_resources_line(before)}")
    progress = Progress(websocket + webrtc, progress_stream or sys.stderr, unit="cycles")
    curve: list[tuple[str, int, int | None]] = []
    try:
        await _run_cycles(
            target, "websocket", websocket, websocket_cycle, ws_plan, failures, progress, curve
        )
        await _run_cycles(
            target, "webrtc", webrtc, webrtc_cycle, rtc_plan, failures, progress, curve
        )
    finally:
        progress.close()
    log("waiting for the server to be idle")
    after_health = await wait_idle(target)
    after = await sample(target)
    log(f"after:    {_resources_line(after)}")
    return CyclesReport(
        websocket, webrtc, clip is None, warmup, before, after, failures,
        seconds=round(time.monotonic() - started, 1),
        llm_rss_before=llm_rss(baseline_health), llm_rss_after=llm_rss(after_health),
        rss_curve=curve,
    )  # fmt: skip


def _resources_line(resources: Resources) -> str:
    return "  ".join(f"{name}={_shown(name, getattr(resources, name))}" for name in RESOURCES)


# --- soak mode ----------------------------------------------------------------------------


@dataclass
class SoakTurn:
    call: int
    at_s: float  # since the soak started, when the clip's end of speech was sent
    first_audio_ms: float | None
    errors: list[str]


@dataclass
class SoakReport:
    calls: int
    minutes: float
    transport: str
    window_minutes: float
    turns: list[SoakTurn] = field(default_factory=list)
    #: (seconds since the start, server RSS bytes, open fds, threads, asyncio tasks)
    samples: list[tuple[float, int | None, int | None, int | None, int | None]] = field(
        default_factory=list
    )
    reconnects: int = 0

    @property
    def errors(self) -> int:
        return sum(len(turn.errors) for turn in self.turns)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and bool(self.turns)

    def windows(self) -> list[dict[str, Any]]:
        width = self.window_minutes * 60
        count = max(1, math.ceil(self.minutes * 60 / width))
        rows = []
        for index in range(count):
            start, end = index * width, (index + 1) * width
            turns = [t for t in self.turns if start <= t.at_s < end]
            latencies = [t.first_audio_ms for t in turns if t.first_audio_ms is not None]
            rss = [s[1] for s in self.samples if start <= s[0] < end and s[1] is not None]
            rows.append(
                {
                    "window": f"{start / 60:.0f}-{end / 60:.0f} min",
                    "turns": len(turns),
                    "errors": sum(len(t.errors) for t in turns),
                    "median_first_audio_ms": round(statistics.median(latencies))
                    if latencies
                    else None,
                    "rss_mib_max": round(max(rss) / MiB, 1) if rss else None,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["windows"] = self.windows()
        data["errors"] = self.errors
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        lines = [
            f"{self.calls} simultaneous {self.transport} calls for {self.minutes:g} min: "
            f"{len(self.turns)} turns, {self.errors} errors, {self.reconnects} reconnects",
            "",
            "| window | turns | errors | end of speech -> first audio, median | server RSS, max |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in self.windows():
            median = row["median_first_audio_ms"]
            rss = row["rss_mib_max"]
            lines.append(
                f"| {row['window']} | {row['turns']} | {row['errors']} | "
                f"{'n/a' if median is None else f'{median} ms'} | "
                f"{'n/a' if rss is None else f'{rss} MiB'} |"
            )
        if self.samples:
            first, last = self.samples[0], self.samples[-1]
            lines.append(
                f"server RSS {_mib(first[1])} at {first[0]:.0f} s -> {_mib(last[1])} at "
                f"{last[0]:.0f} s; open fds {first[2]} -> {last[2]}; threads {first[3]} -> "
                f"{last[3]}"
            )
        errors = [f"call {t.call} at {t.at_s:.0f} s: {e}" for t in self.turns for e in t.errors]
        lines += [f"error: {line}" for line in errors[:20]]
        return "\n".join(lines)


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MiB:.1f} MiB"


def _settled_since(start: int) -> Callable[[Sequence[Observation]], bool]:
    """Predicate: the turn whose observations begin at index ``start`` is settled."""
    return lambda seen: turn_settled(seen[start:])


async def _soak_call(
    transport: Transport[Any],
    target: Target,
    clips: Sequence[BenchClip],
    plans: Sequence[Any],
    index: int,
    report: SoakReport,
    started: float,
    deadline: float,
    pause_s: float,
    log: Callable[[str], None],
) -> None:
    """One simulated user talking until ``deadline``; reconnects after a dropped call."""
    turn_number = index
    while time.perf_counter() < deadline:
        try:
            async with transport.connect(target, time.perf_counter) as call:
                await _configure(call)
                while time.perf_counter() < deadline:
                    at = turn_number % len(clips)
                    turn_number += 1
                    start = len(call.observations)
                    t0 = await call.say(plans[at])
                    errors: list[str] = []
                    try:
                        await call.wait_for(_settled_since(start), REPLY_TIMEOUT_S)
                    except TimeoutError:
                        errors.append(f"no reply within {REPLY_TIMEOUT_S:g} s")
                    turn = turn_from_observations(
                        clips[at].name, index, t0, call.observations[start:],
                        transport=transport.name,
                    )  # fmt: skip
                    errors += turn.errors
                    if not errors and not answered(turn.status):
                        errors.append(f"reply ended {turn.status}")
                    report.turns.append(
                        SoakTurn(
                            index, round(t0 - started, 3), turn.stages_ms()["first_audio"], errors
                        )
                    )
                    await call.reply_heard(turn.response_id, 10.0)
                    await asyncio.sleep(pause_s)
        except (CallClosed, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
            report.turns.append(
                SoakTurn(index, round(time.perf_counter() - started, 3), None, [problem])
            )
            report.reconnects += 1
            log(f"call {index}: {problem}; reconnecting")
            await asyncio.sleep(1.0)


async def _sample_rss(target: Target, report: SoakReport, started: float, every_s: float) -> None:
    while True:
        try:
            process = (await health(target))["process"]
            report.samples.append(
                (
                    round(time.perf_counter() - started, 1),
                    process["rss_bytes"], process["open_fds"], process["threads"],
                    process["asyncio_tasks"],
                )
            )  # fmt: skip
        except ServerUnreachable:
            pass
        await asyncio.sleep(every_s)


async def run_soak(
    target: Target,
    *,
    calls: int,
    minutes: float,
    clips: Sequence[BenchClip],
    transport_name: str = "websocket",
    pause_s: float = 1.0,
    window_minutes: float = 5.0,
    sample_every_s: float = 30.0,
    log: Callable[[str], None] = print,
) -> SoakReport:
    transport: Transport[Any] = WEBRTC if transport_name == "webrtc" else WEBSOCKET
    plans = [transport.plan(turn_audio(clip)) for clip in clips]
    report = SoakReport(calls, minutes, transport_name, window_minutes)
    started = time.perf_counter()
    deadline = started + minutes * 60
    sampler = asyncio.create_task(_sample_rss(target, report, started, sample_every_s))

    async def progress() -> None:
        while True:
            await asyncio.sleep(60)
            elapsed = (time.perf_counter() - started) / 60
            last = report.samples[-1][1] if report.samples else None
            log(
                f"{elapsed:.0f}/{minutes:g} min: {len(report.turns)} turns, "
                f"{report.errors} errors, server RSS {_mib(last)}"
            )

    reporter = asyncio.create_task(progress())
    try:
        async with asyncio.TaskGroup() as group:
            for index in range(calls):
                group.create_task(
                    _soak_call(
                        transport, target, clips, plans, index, report, started, deadline,
                        pause_s, log,
                    )
                )  # fmt: skip
                await asyncio.sleep(0.5)  # staggered, as the bench does
    finally:
        for task in (sampler, reporter):
            task.cancel()
        await asyncio.gather(sampler, reporter, return_exceptions=True)
    process = (await health(target))["process"]
    report.samples.append(
        (
            round(time.perf_counter() - started, 1),
            process["rss_bytes"], process["open_fds"], process["threads"], process["asyncio_tasks"],
        )
    )  # fmt: skip
    return report


# --- the command --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    cycles = modes.add_parser(
        "cycles", help="connect/turn/disconnect cycles; resources before and after"
    )
    cycles.add_argument(
        "--websocket", type=int, default=1000, help="WebSocket cycles (%(default)s)"
    )
    cycles.add_argument("--webrtc", type=int, default=200, help="WebRTC cycles (%(default)s)")
    cycles.add_argument("--warmup", type=int, default=3, help="warm-up cycles per transport")
    cycles.add_argument("--typed", action="store_true", help="typed turns instead of a spoken clip")
    soak = modes.add_parser("soak", help="simultaneous calls talking for a while")
    soak.add_argument("--calls", type=int, default=4, help="simultaneous calls (%(default)s)")
    soak.add_argument("--minutes", type=float, default=30.0, help="how long (%(default)s)")
    soak.add_argument("--transport", choices=["websocket", "webrtc"], default="websocket")
    soak.add_argument("--pause", type=float, default=1.0, help="seconds between turns")
    soak.add_argument("--window", type=float, default=5.0, help="report window, minutes")
    for mode in (cycles, soak):
        mode.add_argument("--url", default="http://127.0.0.1:8000", help="the server's HTTP base")
        mode.add_argument("--api-key", default=None, help="API key (loopback may omit it)")
        mode.add_argument("--spawn", action="store_true", help="start a voice serve of its own")
        mode.add_argument("--clips", type=Path, default=None, help="speech clips folder")
        mode.add_argument("--json", type=Path, default=None, help="write the report here")
    return parser


def _target(url: str, api_key: str | None) -> Target:
    """The Realtime base (``ws://host:port/v1``) of the server at the HTTP base ``url``."""
    scheme, _, rest = url.rstrip("/").partition("://")
    return Target(f"{'wss' if scheme == 'https' else 'ws'}://{rest}/v1", api_key)


def _clips(folder: Path | None, *, shortest: bool) -> list[BenchClip]:
    clips = load_clips(folder or default_clips_dir(), max_seconds=10.0).clips
    return [min(clips, key=lambda clip: clip.seconds)] if shortest else clips


async def _run(args: argparse.Namespace, target: Target) -> CyclesReport | SoakReport:
    def say(line: str) -> None:
        print(line, flush=True)

    if args.mode == "cycles":
        clip = None if args.typed else _clips(args.clips, shortest=True)[0]
        return await run_cycles(
            target, websocket=args.websocket, webrtc=args.webrtc, clip=clip,
            warmup=args.warmup, log=say,
        )  # fmt: skip
    return await run_soak(
        target, calls=args.calls, minutes=args.minutes, clips=_clips(args.clips, shortest=False),
        transport_name=args.transport, pause_s=args.pause, window_minutes=args.window, log=say,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM ends the run as Ctrl-C does, so a spawned server is stopped with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.spawn:
            with spawned_server("reliability") as spawned:
                print(f"spawned voice serve at {spawned.http}; its log: {spawned.log_path}")
                report = asyncio.run(_run(args, _target(spawned.http, spawned.api_key)))
            print("spawned server stopped", flush=True)
        else:
            report = asyncio.run(_run(args, _target(args.url, args.api_key)))
    except (ServerUnreachable, ClipsError, RuntimeError) as exc:
        print(f"reliability: {exc}", file=sys.stderr)
        return 2
    print("--- summary")
    print(report.summary())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"report written to {args.json}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
