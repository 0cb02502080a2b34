"""What the client-event parser's limits cost: parse_client_event against bare json + pydantic.

.venv/bin/python scripts/parse_cost.py [--repeat 30]

The baseline is what the parser did before the limits: ``json.loads`` and the event class's
``model_validate``. Both run alternately in one process (so machine load hits both alike) on
a 4 MiB ``input_audio_buffer.append``, a 20 ms one, a ``session.update``, and hostile texts;
the best of ``--repeat`` runs is printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Callable

from voice.protocol import CLIENT_EVENT_TYPES, ProtocolError, parse_client_event


def baseline(text: str) -> object:
    data = json.loads(text)
    return CLIENT_EVENT_TYPES[data["type"]].model_validate(data)


def timed(function: Callable[[str], object], text: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        function(text)
        outcome = "ok"
    except (ProtocolError, RecursionError, ValueError) as exc:
        outcome = type(exc).__name__
    return time.perf_counter() - started, outcome


def best_of_both(text: str, repeat: int) -> list[tuple[float, str]]:
    """The best time and the outcome of the baseline and of the parser, run alternately."""
    best = [(float("inf"), ""), (float("inf"), "")]
    for _ in range(repeat):
        for index, function in enumerate((baseline, parse_client_event)):
            elapsed, outcome = timed(function, text)
            best[index] = (min(best[index][0], elapsed), outcome)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    limit = 4 * 1024 * 1024
    big = base64.b64encode(bytes((limit - 100) // 4 * 3)).decode()
    small = base64.b64encode(bytes(960)).decode()  # 20 ms of 24 kHz PCM16
    texts = {
        "4 MiB append": json.dumps({"type": "input_audio_buffer.append", "audio": big}),
        "20 ms append": json.dumps({"type": "input_audio_buffer.append", "audio": small}),
        "session.update": json.dumps(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "Hi.",
                    "audio": {
                        "input": {"turn_detection": {"type": "server_vad", "threshold": 0.6}}
                    },
                },
            }
        ),
        "10,000 levels of nesting": (
            '{"type":"session.update","session":' + "[" * 10_000 + "]" * 10_000 + "}"
        ),
        "4 MiB string of brackets": json.dumps(
            {"type": "response.cancel", "response_id": "[{" * (limit // 2 - 50)}
        ),
        "2M numbers in an array": (
            '{"type":"input_audio_buffer.clear","x":[' + ",".join(["1"] * (limit // 2 - 30)) + "]}"
        ),
        "120k content parts": json.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}] * (limit // 38),
                },
            }
        ),
        "1M commas in a string": json.dumps(
            {"type": "response.create", "response": {"instructions": "a, " * (limit // 3 - 30)}}
        ),
    }
    print(f"{'message':28} {'bytes':>9} {'baseline':>20} {'parse_client_event':>28}")
    for name, text in texts.items():
        (base, base_outcome), (ours, our_outcome) = best_of_both(text, args.repeat)
        print(
            f"{name:28} {len(text):>9} {base * 1000:>9.3f} ms {base_outcome:>8} "
            f"{ours * 1000:>12.3f} ms {our_outcome:>13}"
        )


if __name__ == "__main__":
    main()
