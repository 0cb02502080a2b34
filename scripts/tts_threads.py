"""Piper synthesis time per chunk by onnxruntime thread count and spinning.

Loads the bundled Piper voice once per setting and synthesizes typical first chunks of
replies, after one warm-up pass. Prints medians; asserts nothing.

    .venv/bin/python scripts/tts_threads.py --rounds 8
"""

from __future__ import annotations

import argparse
import statistics
import time

from piper import PiperVoice

from voice.tts import default_piper_voice, load_piper_voice

TEXTS = [
    "That's a classic example",
    "of an understatement.",
    "I'm glad you're happy",
    "The invention of movable metal letters",
    "No, there is no need for further explanation.",
]


def median_ms(voice: PiperVoice, rounds: int) -> float:
    for text in TEXTS:
        list(voice.synthesize(text))  # warm-up
    times = []
    for _ in range(rounds):
        for text in TEXTS:
            start = time.perf_counter()
            list(voice.synthesize(text))
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="passes over the texts")
    args = parser.parse_args()
    print(f"{len(TEXTS)} chunks x {args.rounds} rounds per setting; median ms per chunk")
    for threads, spin in [(1, False), (1, True), (2, False), (2, True)]:
        voice = load_piper_voice(*default_piper_voice(), threads=threads, spinning=spin)
        ms = median_ms(voice, args.rounds)
        print(f"threads={threads} spinning={'on ' if spin else 'off'}  {ms:6.0f} ms", flush=True)
    default = PiperVoice.load(*default_piper_voice())
    print(f"PiperVoice.load defaults      {median_ms(default, args.rounds):6.0f} ms")


if __name__ == "__main__":
    main()
