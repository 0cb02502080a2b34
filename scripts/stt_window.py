"""Whisper time and word error rate: stepped short windows against 30 s segmentation.

Every clip of ../shared/speech shorter than 30 s, with the 0.3 s of lead-in and 0.1 s of
tail a server turn has, is transcribed by the bundled Whisper tiny.en twice: encoded in
the next multiple of ``--step`` seconds (what the server does), and padded to Whisper's
30 s window by faster-whisper. Prints per clip and medians; asserts nothing.

    .venv/bin/python scripts/stt_window.py --step 8
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
from pathlib import Path

import numpy as np

from voice.audio import read_wav_mono
from voice.bench.wer import word_error_rate
from voice.stt import STT_SAMPLE_RATE, WhisperSTT, default_whisper_path

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=8.0, help="window step in seconds")
    parser.add_argument("--clips", type=Path, default=SPEECH, help="folder with manifest.tsv")
    args = parser.parse_args()
    windowed = WhisperSTT(default_whisper_path(), window_s=args.step)
    padded = WhisperSTT(default_whisper_path(), window_s=0)
    with (args.clips / "manifest.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    results: dict[str, list[tuple[float, float]]] = {"window": [], "30 s": []}
    for row in rows:
        samples, _ = read_wav_mono(args.clips / row["file"])
        lead, tail = np.zeros(int(0.3 * STT_SAMPLE_RATE)), np.zeros(int(0.1 * STT_SAMPLE_RATE))
        audio = np.concatenate([lead, samples, tail]).astype(np.float32)
        window = windowed.window_for(len(audio))
        if window is None:
            continue
        line = f"{row['file'][:34]:34s} {len(audio) / STT_SAMPLE_RATE:5.1f} s"
        for label, stt in (("window", windowed), ("30 s", padded)):
            await stt.transcribe(audio)  # warm the allocator for this length
            transcript = await stt.transcribe(audio)
            error = word_error_rate(row["transcript"], transcript.text)
            results[label].append((transcript.compute_s, error))
            shown = f"{window:.0f} s" if label == "window" else label
            line += f" | {shown:>5s} {transcript.compute_s * 1000:5.0f} ms WER {error:.2f}"
        print(line, flush=True)
    for label, values in results.items():
        times, errors = zip(*values, strict=True)
        print(
            f"{label:6s}: median {statistics.median(times) * 1000:4.0f} ms, median WER "
            f"{statistics.median(errors):.3f}, mean WER {statistics.mean(errors):.3f} "
            f"(n={len(values)})"
        )
    for stt in (windowed, padded):
        stt.close()
        stt.worker.join(timeout=10)  # a model thread alive at exit aborts the process


if __name__ == "__main__":
    asyncio.run(main())
