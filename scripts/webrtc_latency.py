"""Measure end of speech → first reply audio over WebRTC, in headless Chromium.

Chromium's fake microphone loops a WAV of real clips (from ../shared/speech) separated by
silence; the web client's own readout (server ``speech_stopped`` arrival → the remote
audio crossing -40 dBFS on the page) is collected turn by turn. Prints figures; asserts
nothing about speed.

    .venv/bin/python scripts/webrtc_latency.py --turns 6            # starts its own server
    .venv/bin/python scripts/webrtc_latency.py --url http://127.0.0.1:8000 --turns 6
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser_helpers import chromium_page, write_microphone_wav  # noqa: E402
from tests.conftest import SPEECH_DIR, ServerProcess, start_server  # noqa: E402
from tests.realtime_helpers import silence  # noqa: E402
from voice.audio import read_wav_mono  # noqa: E402

DEFAULT_CLIPS = [
    "librivox_sense_sensibility_0930",
    "ps_forever_input_2",
    "librivox_sense_sensibility_0890",
    "ljspeech_LJ001-0005",
]
BRIEF = "Answer in one short sentence."


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--turns", type=int, default=6, help="turns to measure (default 6)")
    parser.add_argument("--gap-s", type=float, default=9.0, help="silence after each clip")
    parser.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS, help="clip file stems")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    return parser.parse_args()


async def measure(url: str, args: argparse.Namespace, work: Path) -> list[float]:
    parts = [silence(2.0)]  # the call connects before the first words
    for name in args.clips:
        samples, _ = read_wav_mono(SPEECH_DIR / f"{name}.wav")
        parts += [samples, silence(args.gap_s)]
    wav = write_microphone_wav(work / "mic.wav", parts)
    async with chromium_page(wav, work / "profile", loop=True) as page:
        await page.goto(url)
        await page.click("#call-button")
        await page.locator("#status", has_text="In call").wait_for(timeout=20_000)
        await page.evaluate(
            """(text) => window.voiceApp.call.send(
                 {type: "session.update", session: {type: "realtime", instructions: text}})""",
            BRIEF,
        )
        started = time.monotonic()
        seen = 0
        while seen < args.turns:
            if time.monotonic() - started > args.timeout_s:
                print(f"timed out after {seen} turns", file=sys.stderr)
                break
            latencies: list[float] = await page.evaluate("window.voiceApp.latencies")
            for value in latencies[seen:]:
                seen += 1
                print(f"turn {seen}: {value:.0f} ms", flush=True)
            await asyncio.sleep(0.5)
        result: list[float] = await page.evaluate("window.voiceApp.latencies")
        lines = await page.evaluate(
            """() => [...document.querySelectorAll('.msg')].map((m) =>
                 (m.classList.contains('user') ? 'user: ' : 'companion: ') + m.textContent)"""
        )
        print("\ntranscript:\n  " + "\n  ".join(lines))
        await page.click("#call-button")
        return result[: args.turns]


def _server_turns(server: ServerProcess) -> list[str]:
    """The server's per-turn timing lines (``voice.session`` logs one per finished reply)."""
    return [line.split(" turn ", 1)[1] for line in server.log().splitlines() if " turn " in line]


def main() -> None:
    args = _arguments()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = None if args.url else start_server(work)
        try:
            url = args.url or (server.http if server else "")
            latencies = asyncio.run(measure(url, args, work))
        finally:
            if server is not None:
                server.stop()
        if not latencies:
            sys.exit("no turn was measured")
        print(
            f"\nend of speech -> first audio heard in the browser, {len(latencies)} turns: "
            f"median {statistics.median(latencies):.0f} ms, "
            f"min {min(latencies):.0f} ms, max {max(latencies):.0f} ms"
        )
        turns = _server_turns(server) if server is not None else []
        if turns:  # logged for replies that finished (not for interrupted ones)
            print("\nthe server's own per-turn timings (seconds from its speech_stopped):")
            for line in turns:
                print("  " + line)


if __name__ == "__main__":
    main()
