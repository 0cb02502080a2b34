"""Turn-taking benchmark: false interruptions from echo and backchannels, and barge-in under
echo, against a running server. Prints rates and medians; asserts nothing.

    .venv/bin/python scripts/bench_turn_taking.py --api-key KEY --trials 5

Each trial is a fresh session: the user asks for a long story, and a simulated phone with
no echo cancellation (tests/phone_sim.py) plays the reply while its microphone hears it
again (delayed, attenuated), plus, depending on the scenario, nothing, a backchannel or
cough, or a real interruption (a clip from ../shared/speech). With ``--ask spoken`` the user
asks for the story aloud (Piper's voice), so the reply's first audio falls in the soft
commit of that turn, where speech over the bot counts with less confidence (README,
"Turn-taking"); ``typed`` (the default) sends the question as text.

Over the WebSocket the server tells the client of any speech over the bot at once
(``speech_started``; the phone flushes its audio) and, when it was not an interruption,
sends the rest of the reply as a continuation. So a sound over the bot is counted twice:
*paused* (the client was told and flushed; the reply went on) and *killed* (the reply
ended for good: a user turn was committed, or a cancelled response had no continuation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.phone_sim import LoopbackPhone, Utterance  # noqa: E402
from tests.realtime_helpers import (  # noqa: E402
    WIRE_RATE,
    EventLog,
    realtime,
    say_text,
    stream_audio,
)
from voice.audio import read_wav_mono, resample  # noqa: E402
from voice.tts import PiperTTS, default_piper_voice  # noqa: E402
from voice.vad import SileroVadStream  # noqa: E402


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str
    #: The question said aloud (16 kHz), or None: typed.
    spoken: np.ndarray | None = None


async def ask(log: EventLog, server: Server) -> None:
    """Ask for the story: typed, or aloud (its turn is committed by the server's VAD)."""
    if server.spoken is None:
        await say_text(log, STORY)
    else:
        await stream_audio(log.connection, server.spoken)


ECHO_PATHS = [(40, -10.0), (120, -18.0), (200, -25.0)]
STORY = "Tell me a long story about a fox who learns to sail, with many details."


def after_reply(log: EventLog, event_type: str) -> list[Any]:
    """Events of ``event_type`` from the story's ``response.created`` on (a spoken question
    has its own speech events before it)."""
    start = next((i for i, e in enumerate(log.events) if e.type == "response.created"), 0)
    return [e for e in log.events[start:] if e.type == event_type]


def killed(log: EventLog) -> bool:
    """The reply ended for good: a user turn, or a cancellation with nothing after it."""
    if after_reply(log, "input_audio_buffer.committed"):
        return True
    created = [event.response.id for event in log.of_type("response.created")]
    return any(
        event.response.status == "cancelled"
        and event.response.status_details.reason == "turn_detected"
        and created.index(event.response.id) == len(created) - 1
        for event in log.of_type("response.done")
    )


@dataclass(frozen=True)
class Outcome:
    paused: bool
    killed: bool


def outcome(log: EventLog) -> Outcome:
    return Outcome(bool(after_reply(log, "input_audio_buffer.speech_started")), killed(log))


async def echo_only(server: Server, delay: int, db: float) -> Outcome:
    """Whether the bot's own echo paused it, or killed its reply."""
    async with realtime(server.url, server.api_key) as log:
        await ask(log, server)
        await LoopbackPhone(log, delay_ms=delay, echo_db=db).run(6.0, [])
        return outcome(log)


def speech_onset_ms(samples_16k: np.ndarray) -> float:
    """Where speech starts in a clip: the first Silero window with probability >= 0.5."""
    for start, probability in SileroVadStream().process(samples_16k):
        if probability >= 0.5:
            return start * 1000 / 16000
    return 0.0


async def echo_and_user(
    server: Server, delay: int, db: float, clip: np.ndarray, clip_onset_ms: float
) -> tuple[bool, float | None]:
    """(caught, speech onset -> phone quiet in ms) for a real interruption under echo."""
    async with realtime(server.url, server.api_key) as log:
        await ask(log, server)
        phone = LoopbackPhone(log, delay_ms=delay, echo_db=db)
        run = await phone.run(5.0, [Utterance(at_s=2.5, samples=clip)])
        said_at = run.utterance_onsets_s[0] * 1000 if run.utterance_onsets_s else None
        onset_ms = None if said_at is None else said_at + clip_onset_ms
        starts = after_reply(log, "input_audio_buffer.speech_started")
        caught = (
            bool(starts)
            and onset_ms is not None
            and all(e.audio_start_ms >= onset_ms - 100 for e in starts)
        )
        # When the phone went quiet after the onset (three silent 40 ms ticks in a row);
        # the reply to the interruption comes later and is not counted.
        if onset_ms is None:
            return caught, None
        onset_tick = int(onset_ms / 40)
        quiet = [bool(np.abs(chunk).max() <= 1e-3) for chunk in run.played]
        for tick in range(onset_tick, len(quiet) - 2):
            if quiet[tick] and quiet[tick + 1] and quiet[tick + 2]:
                return caught, (tick - onset_tick) * 40.0
        return caught, None


async def backchannel(server: Server, sound: np.ndarray) -> Outcome:
    """Whether a backchannel or noise paused the bot, or killed its reply."""
    async with realtime(server.url, server.api_key) as log:
        await ask(log, server)
        await LoopbackPhone(log, delay_ms=0, echo_db=None).run(5.0, [Utterance(2.0, sound)])
        return outcome(log)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/v1")
    parser.add_argument("--trials", type=int, default=5, help="trials per echo path / sound")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("OPENAI_API_KEY", ""),
        help="the server's key, as `voice serve` prints it (default: $OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--ask",
        choices=("typed", "spoken"),
        default="typed",
        help="how the user asks for the story (spoken: the reply starts in the soft commit)",
    )
    args = parser.parse_args()
    if not args.api_key:
        parser.error("give --api-key (voice serve prints the local user's key) or OPENAI_API_KEY")
    spoken = None
    if args.ask == "spoken":
        piper = PiperTTS(*default_piper_voice())
        spoken = np.concatenate(
            [
                resample(await piper.synthesize(STORY), piper.sample_rate, 16000),
                np.zeros(16000 // 5, np.float32),
            ]
        )
        piper.close()
    server = Server(args.url, args.api_key, spoken)

    clip16, _ = read_wav_mono(REPO.parent / "shared" / "speech" / "ps_goforward.wav")
    clip = resample(clip16, 16000, WIRE_RATE)
    clip_onset = speech_onset_ms(clip16)
    piper = PiperTTS(*default_piper_voice())
    sounds = {
        "mm-hmm": 0.5 * resample(await piper.synthesize("Mm-hmm."), piper.sample_rate, WIRE_RATE),
        "yeah": 0.5 * resample(await piper.synthesize("Yeah."), piper.sample_rate, WIRE_RATE),
        "uh-huh": 0.5 * resample(await piper.synthesize("Uh-huh."), piper.sample_rate, WIRE_RATE),
        "cough": (np.random.default_rng(7).standard_normal(WIRE_RATE // 6) * 0.1).astype(
            np.float32
        ),
    }
    piper.close()

    everything: list[Outcome] = []
    for delay, db in ECHO_PATHS:
        outcomes = []
        for trial in range(args.trials):
            outcomes.append(await echo_only(server, delay, db))
            print(f"echo {delay} ms {db} dB trial {trial + 1}/{args.trials}", file=sys.stderr)
        everything += outcomes
        print(f"echo only  {delay:3d} ms {db:5.1f} dB: {counted(outcomes)}")
    print(f"echo only, all paths: {counted(everything)}")

    stops: list[float] = []
    caught = attempts = 0
    for delay, db in ECHO_PATHS:
        for _ in range(args.trials):
            ok, stop = await echo_and_user(server, delay, db, clip, clip_onset)
            attempts += 1
            caught += ok
            if stop is not None:
                stops.append(stop)
    print(f"echo + real interruption: caught {caught}/{attempts}")
    if stops:
        print(
            "  speech onset -> phone quiet (ms, 40 ms ticks; includes the audio the phone had "
            "buffered and played on until it ran dry or speech_started cleared it): "
            f"median {statistics.median(stops):.0f}, max {max(stops):.0f}, n={len(stops)}"
        )

    everything = []
    for name, sound in sounds.items():
        outcomes = [await backchannel(server, sound) for _ in range(args.trials)]
        everything += outcomes
        print(f"backchannel {name:7}: {counted(outcomes)}")
    print(f"backchannels, all: {counted(everything)}")


def counted(outcomes: list[Outcome]) -> str:
    n = len(outcomes)
    paused, lost = sum(o.paused for o in outcomes), sum(o.killed for o in outcomes)
    return f"paused {paused}/{n}, killed the reply (false interruptions) {lost}/{n}"


if __name__ == "__main__":
    asyncio.run(main())
