"""Where a prepared reply's time goes, read off a ``voice serve --log-level debug`` log.

For every pause whose guess led to a prepared reply, from the debug lines the server
writes (timestamps only, never words): the guess starts (``guess N of M ms of speech``),
Whisper's transcript of it comes back, the LLM's stream opens (the HTTP response of the
request that follows ``reply prepared``), and Piper is handed the first chunk. Prints the
median, minimum and maximum of each stage; asserts nothing. The lines carry no session,
so the log must come from calls made one at a time (as ``voice bench`` does by default).

    .venv/bin/python scripts/turn_stages.py server.log
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

#: Stage marks in the order they happen, and the log text that sets each.
MARKS = (
    ("guess", "ms of speech"),
    ("transcribed", "transcribed in"),
    ("prepared", "reply prepared"),
    ("llm_open", "HTTP Response: POST"),
    ("tts", "piper.voice: text="),
)
STAGES = (
    ("guess start -> transcript", "guess", "transcribed"),
    ("transcript -> LLM stream open", "transcribed", "llm_open"),
    ("LLM stream open -> first chunk to TTS", "llm_open", "tts"),
    ("guess start -> first chunk to TTS", "guess", "tts"),
)


def stamp(line: str) -> float:
    """Seconds of a log line's ``2026-12-06 13:05:09,956`` timestamp."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def prepared_replies(lines: Iterable[str]) -> list[dict[str, float]]:
    """The marks of each guess that went on to hand a prepared reply's first chunk to TTS.

    A new guess starts a new record; marks must come in :data:`MARKS` order (the LLM's
    stream only after the reply was prepared), so a guess dropped half way never counts.
    """
    done: list[dict[str, float]] = []
    marks: dict[str, float] | None = None
    for line in lines:
        if "voice.user_turns: guess" in line and MARKS[0][1] in line:
            marks = {"guess": stamp(line)}
            continue
        if marks is None:
            continue
        name, text = MARKS[len(marks)]
        if text in line and (name != "transcribed" or "guess" in line):
            marks[name] = stamp(line)
            if len(marks) == len(MARKS):
                done.append(marks)
                marks = None
    return done


def report(replies: Sequence[dict[str, float]]) -> list[str]:
    out = [f"prepared replies: {len(replies)}"]
    for label, start, end in STAGES:
        ms = [(reply[end] - reply[start]) * 1000 for reply in replies]
        if ms:
            out.append(
                f"{label:40s} median {statistics.median(ms):4.0f} ms "
                f"(min {min(ms):.0f}, max {max(ms):.0f})"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("log", type=Path, help="a voice serve log at --log-level debug")
    args = parser.parse_args(argv)
    try:
        with args.log.open(encoding="utf-8", errors="replace") as handle:
            replies = prepared_replies(handle)
    except OSError as exc:
        print(f"cannot read {args.log}: {exc.strerror}", file=sys.stderr)
        return 2
    if not replies:
        print("no prepared replies in that log (was it written at --log-level debug?)")
        return 1
    print("\n".join(report(replies)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
