"""What a call costs per stage, and what remote speech adds: the figures docs/scaling.md needs.

Runs ``voice bench`` (the same clips, one call) against servers of its own, alternating:

- ``local``: one ``voice serve`` with every model in-process (the default);
- ``remote``: a speech box (a ``voice serve`` whose Whisper and Piper serve ``/v1/audio``)
  and a front end whose STT and TTS point at it over loopback, the chat model being the
  speech box's embedded llama.cpp.

Around each bench it reads the CPU time of every stage from ``/health``
(``process.cpu_s``: Whisper's and the voices' threads, the VAD, the event loop's thread,
the rest, and the embedded LLM child; see ``voice/stage_cpu.py``) and prints, per round,
CPU per turn by stage and the latency medians; then the medians side by side and what a
core carries. Never run two of these (or any benchmark) at once on a 2-core machine.

    PYTHONPATH=$PWD .venv/bin/python scripts/scaling_bench.py --rounds 2 --json scaling.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from voice.bench.spawn import SpawnedServer, spawned_server

STAGES = ("vad", "loop", "stt", "tts", "llm", "other")


def health(server: SpawnedServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.http}/health", timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def cpu(server: SpawnedServer) -> dict[str, float]:
    figures = health(server)["process"]["cpu_s"]
    return {name: float(value or 0.0) for name, value in figures.items()}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}


def bench(server: SpawnedServer, out: Path, max_seconds: float) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "voice",
        "bench",
        "--url",
        server.ws_base,
        "--api-key",
        server.api_key,
        "--max-seconds",
        str(max_seconds),
        "--json",
        str(out),
    ]
    subprocess.run(command, check=True, stdout=sys.stderr)
    level: dict[str, Any] = json.loads(out.read_text())["levels"][0]
    return level


def summarize(level: dict[str, Any]) -> dict[str, Any]:
    turns = [t for t in level["turns"] if t["status"] in ("completed", "incomplete")]
    first = [t["stages_ms"]["first_audio"] for t in turns if t["stages_ms"]["first_audio"]]
    reply_s = sum(t["reply_audio_ms"] or 0 for t in level["turns"]) / 1000
    return {
        "turns": len(level["turns"]) + len(level.get("barge_ins", [])),
        "answered": len(turns),
        "wall_s": level["wall_s"],
        "reply_audio_s": round(reply_s, 1),
        "first_audio_median_ms": round(statistics.median(first)) if first else None,
        "first_audio_p90_ms": level["summary"]["stages_ms"]["first_audio"]["p90"],
        "transcribed_median_ms": level["summary"]["stages_ms"]["transcribed"]["median"],
    }


def run_local(folder: Path, index: int, max_seconds: float) -> dict[str, Any]:
    with spawned_server("scaling-local") as server:
        before = cpu(server)
        level = bench(server, folder / f"local-{index}.json", max_seconds)
        used = delta(cpu(server), before)
    stages = {name: used.get(name, 0.0) for name in STAGES}
    return {"kind": "local", **summarize(level), "cpu_s": {"server": stages}}


def run_remote(folder: Path, index: int, max_seconds: float) -> dict[str, Any]:
    with ExitStack() as stack:
        box = stack.enter_context(spawned_server("scaling-speech"))
        llm = health(box)["models"]["llm"]
        remote = f"{box.http}/v1"
        front = stack.enter_context(
            spawned_server(
                "scaling-front",
                VOICE_STT_BASE_URL=remote,
                VOICE_STT_API_KEY=box.api_key,
                VOICE_TTS_BASE_URL=remote,
                VOICE_TTS_API_KEY=box.api_key,
                VOICE_LLM_BASE_URL=llm["base_url"],
                VOICE_LLM_MODEL=llm["model"],
            )
        )
        box_before, front_before = cpu(box), cpu(front)
        level = bench(front, folder / f"remote-{index}.json", max_seconds)
        box_used, front_used = delta(cpu(box), box_before), delta(cpu(front), front_before)
    return {
        "kind": "remote",
        **summarize(level),
        "cpu_s": {
            "front_end": {name: front_used.get(name, 0.0) for name in STAGES},
            "speech_box": {name: box_used.get(name, 0.0) for name in STAGES},
        },
    }


def per_turn_table(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| round | process | " + " | ".join(STAGES) + " | total | CPU s per call-minute |",
        "| --- | --- |" + " --- |" * (len(STAGES) + 2),
    ]
    for number, result in enumerate(rounds, 1):
        for process, stages in result["cpu_s"].items():
            total = sum(stages.values())
            per_turn = [f"{1000 * stages[name] / result['turns']:.0f}" for name in STAGES]
            per_minute = total / (result["wall_s"] / 60)
            lines.append(
                f"| {number} {result['kind']} | {process} | "
                + " | ".join(per_turn)
                + f" | {1000 * total / result['turns']:.0f} | {per_minute:.1f} |"
            )
    return "CPU ms per turn, by stage (bench turns and barge-ins):\n" + "\n".join(lines)


def latency_table(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| round | end of speech -> first audio, median / p90 | -> transcribed, median |"
        " answered |",
        "| --- | --- | --- | --- |",
    ]
    for number, result in enumerate(rounds, 1):
        lines.append(
            f"| {number} {result['kind']} | {result['first_audio_median_ms']} / "
            f"{result['first_audio_p90_ms']:.0f} ms | {result['transcribed_median_ms']:.0f} ms | "
            f"{result['answered']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2, help="local/remote pairs (2)")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="longest clip used")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        for index in range(args.rounds):
            for kind, run in (("local", run_local), ("remote", run_remote)):
                print(f"round {index + 1}: {kind}", file=sys.stderr, flush=True)
                rounds.append(run(Path(tmp), index, args.max_seconds))
    print(per_turn_table(rounds))
    print()
    print(latency_table(rounds))
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
