"""Speech clips for the benchmark, with their speech onset and end found offline by Silero.

End of speech is computed once per clip, before any audio is sent: the clip (16 kHz) goes
through Silero VAD in 32 ms windows; the end of speech is the end of the last window whose
speech probability is at least 0.5, the onset the start of the first such window. Both are
therefore exact to one window (32 ms), and they use the same model the server runs, so the
server's endpointing delay is measured from the point its own VAD could know speech ended.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from voice.audio import AudioFormatError, Float32Array, read_wav_mono, resample
from voice.vad import VAD_SAMPLE_RATE, SileroVadStream

#: Clips longer than this are skipped by default (a turn is a sentence, not a monologue).
DEFAULT_MAX_SECONDS = 12.0
#: Silero probability that counts as speech (the server's default ``vad_threshold``).
SPEECH_THRESHOLD = 0.5
MANIFEST = "manifest.tsv"


class ClipsError(Exception):
    """No usable clips: the message names the folder and why."""


@dataclass(frozen=True)
class BenchClip:
    """A 16 kHz mono clip; ``speech_start``/``speech_end`` are sample indices (end exclusive)."""

    name: str
    samples: Float32Array
    transcript: str | None
    speech_start: int
    speech_end: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / VAD_SAMPLE_RATE

    @property
    def speech_start_s(self) -> float:
        return self.speech_start / VAD_SAMPLE_RATE

    @property
    def speech_end_s(self) -> float:
        return self.speech_end / VAD_SAMPLE_RATE


@dataclass(frozen=True)
class ClipSet:
    clips: list[BenchClip]
    skipped: list[tuple[str, str]]  # (file, reason)


def default_clips_dir() -> Path:
    """``../shared/speech`` next to the repository this package runs from."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "speech"


def speech_bounds(
    samples: Float32Array, threshold: float = SPEECH_THRESHOLD
) -> tuple[int, int] | None:
    """(first speech sample, end of the last speech window) by Silero, or ``None``."""
    vad = SileroVadStream()
    speech = [start for start, p in vad.process(samples) if p >= threshold]
    if not speech:
        return None
    return speech[0], min(speech[-1] + vad.window, len(samples))


def _entries(folder: Path) -> list[tuple[str, str | None]]:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return [(path.name, None) for path in sorted(folder.glob("*.wav"))]
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or "file" not in reader.fieldnames:
            raise ClipsError(f"{manifest} has no 'file' column")
        return [(row["file"], row.get("transcript") or None) for row in reader]


def load_clips(
    folder: Path, *, max_seconds: float = DEFAULT_MAX_SECONDS, limit: int | None = None
) -> ClipSet:
    """The clips in ``folder`` (order of its ``manifest.tsv``, else by name), at 16 kHz.

    Clips longer than ``max_seconds``, unreadable ones and ones without speech are skipped
    (with the reason); ``limit`` keeps the first clips that remain.
    """
    if not folder.is_dir():
        raise ClipsError(f"clips folder not found: {folder}")
    clips: list[BenchClip] = []
    skipped: list[tuple[str, str]] = []
    for file, transcript in _entries(folder):
        if limit is not None and len(clips) >= limit:
            break
        try:
            samples, rate = read_wav_mono(folder / file)
        except (OSError, AudioFormatError) as exc:
            skipped.append((file, f"unreadable: {exc}"))
            continue
        if rate != VAD_SAMPLE_RATE:
            samples = resample(samples, rate, VAD_SAMPLE_RATE)
        if len(samples) / VAD_SAMPLE_RATE > max_seconds:
            skipped.append((file, f"longer than {max_seconds:g} s"))
            continue
        bounds = speech_bounds(samples)
        if bounds is None:
            skipped.append((file, "no speech found by the VAD"))
            continue
        clips.append(BenchClip(Path(file).stem, samples, transcript, *bounds))
    if not clips:
        why = "; ".join(f"{name}: {reason}" for name, reason in skipped) or "no WAV files"
        raise ClipsError(f"no usable clips in {folder} ({why})")
    return ClipSet(clips, skipped)
