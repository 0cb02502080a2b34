"""``voice bench``: arguments, and the run from loading clips to printing tables."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from voice.bench.chart import ChartUnavailable, write_chart
from voice.bench.clips import (
    DEFAULT_MAX_SECONDS,
    BenchClip,
    ClipsError,
    default_clips_dir,
    load_clips,
)
from voice.bench.pauses import (
    DEFAULT_PAUSES_MS,
    Detection,
    DetectionError,
    cases,
    format_pauses,
    parse_detection,
    run_pauses,
    write_pause_chart,
)
from voice.bench.progress import Progress
from voice.bench.report import BenchReport, ReportError, format_comparison, format_report
from voice.bench.runner import BenchOptions, run_bench, total_steps
from voice.bench.transport import ServerUnreachable, Target

R = TypeVar("R")

DESCRIPTION = """\
Measure a running voice server over the Realtime WebSocket protocol (or, with --webrtc,
WebRTC calls made with aiortc), as a user hears it.

Each turn opens a fresh session, asks for one-sentence answers, and streams 0.3 s of
silence, a speech clip and 1.5 s of silence at real-time pace (40 ms chunks). Every stage
is timed on this machine's monotonic clock from the END OF USER SPEECH: the moment the
chunk holding the clip's last speech sample was sent. That sample is found once per clip,
offline, with Silero VAD: the end of the last 32 ms window whose speech probability is
>= 0.5. Stages: speech_stopped, transcribed, first_text (first reply transcript delta),
first_audio, last_audio (first/last reply audio delta), done (response.done).

Over WebRTC the clip is sent as 20 ms Opus frames; t0 is when the frame holding the last
speech sample was handed to aiortc; first_audio and last_audio are the first and last
received frames of the reply whose RMS level is >= -50 dBFS (after jitter buffer and
decoding), and done may come before the last audio, which plays out in real time.

Barge-in tests ask for a long story, wait a seeded random 0.3-1.0 s after its first audio,
then talk over it; they time from the clip's speech onset (same VAD, first speech window)
to the server's speech_started (detected), to the last audio delta of the story when
audio was still arriving after the onset (stopped), and to its cancelled response.done
(cancelled); queued_audio is the reply audio received but not yet played (in real time
since its first delta) at the onset: what a client must flush when speech starts.

With --pauses, the pause benchmark runs instead: each clip is said whole, then cut at a
mid-sentence word boundary (faster-whisper word timestamps) with each pause length of
silence inserted, and clips whose reader paused are said as they are. It counts false
cut-offs (a reply to an utterance that had not ended) next to the latency of complete
utterances, for each --pause-detection setting, as a table (and --chart, --json).

Exit status: 0 done, 1 done but some turns incomplete, 2 server unreachable or bad input,
130 interrupted."""


def _concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,M,...; got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be >= 1")
    return levels


def _pauses(text: str) -> tuple[int, ...]:
    try:
        pauses = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MS or MS,MS,...; got {text!r}") from None
    if not pauses or min(pauses) < 1:
        raise argparse.ArgumentTypeError("pauses must be >= 1 ms")
    return pauses


def _detections(text: str) -> tuple[Detection, ...]:
    try:
        return tuple(parse_detection(part) for part in text.split(","))
    except DetectionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``voice bench`` on the sub-command's parser."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--url", default="ws://127.0.0.1:8000/v1", help="Realtime base URL (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("OPENAI_API_KEY"),
        help="sent as a bearer token (default: $OPENAI_API_KEY, if set)",
    )
    parser.add_argument("--model", default="voice", help="model query parameter (default: voice)")
    parser.add_argument(
        "--webrtc",
        action="store_true",
        help="make each session a WebRTC call (POST <url>/realtime/calls, aiortc) "
        "instead of a WebSocket",
    )
    parser.add_argument(
        "--clips",
        type=Path,
        metavar="DIR",
        help=f"folder of WAV clips, optional manifest.tsv with 'file' and "
        f"'transcript' columns (default: {default_clips_dir()})",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="use at most N clips")
    parser.add_argument(
        "--max-seconds",
        metavar="S",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="skip clips longer than this (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        metavar="N[,N...]",
        type=_concurrency,
        default=(1,),
        help="simultaneous calls, or a sweep like 1,2,3 (default: 1)",
    )
    parser.add_argument(
        "--repeat",
        metavar="R",
        type=int,
        default=1,
        help="say each clip R times per call (default: %(default)s)",
    )
    parser.add_argument(
        "--barge-in",
        type=int,
        default=3,
        metavar="K",
        help="barge-in tests per call (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        metavar="N",
        type=int,
        default=1,
        help="unmeasured turns first (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=float,
        default=90.0,
        help="seconds to wait for a reply to finish (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of barge-in delays")
    parser.add_argument(
        "--json", type=Path, metavar="OUT.json", help="write all timelines and summaries here"
    )
    parser.add_argument(
        "--chart", type=Path, metavar="OUT.png", help="write a PNG box plot here (matplotlib)"
    )
    parser.add_argument(
        "--pauses",
        metavar="MS[,MS...]",
        nargs="?",
        const=",".join(str(ms) for ms in DEFAULT_PAUSES_MS),
        type=_pauses,
        help="run the pause benchmark with these inserted pauses "
        f"(default when given alone: {','.join(str(ms) for ms in DEFAULT_PAUSES_MS)})",
    )
    parser.add_argument(
        "--pause-detection",
        metavar="SETTING[,SETTING...]",
        type=_detections,
        default=(parse_detection("server"),),
        help="turn-detection settings of the pause benchmark: server (its default), "
        "server_vad:MS, semantic_vad:low|medium|high|auto (default: server)",
    )
    parser.add_argument(
        "--whisper",
        type=Path,
        metavar="DIR",
        help="CTranslate2 Whisper folder for the pause benchmark's word timestamps "
        "(default: the bundled tiny.en)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print medians of two earlier runs side by side; no server",
    )


def _fail(message: str) -> int:
    print(f"voice bench: {message}", file=sys.stderr)
    return 2


def _compare(a_path: Path, b_path: Path) -> int:
    try:
        a, b = BenchReport.read_json(a_path), BenchReport.read_json(b_path)
    except ReportError as exc:
        return _fail(str(exc))
    print(format_comparison(a, b, str(a_path), str(b_path)))
    return 0


def _measured(work: Coroutine[Any, Any, R], progress: Progress) -> R | int:
    """The report ``work`` measures, or the exit status when it could not finish."""
    try:
        report = asyncio.run(work)
    except ServerUnreachable as exc:
        progress.close()
        return _fail(str(exc))
    except KeyboardInterrupt:
        progress.close()
        print("voice bench: interrupted; connections closed, no report written", file=sys.stderr)
        return 130
    progress.close()
    return report


def _output(
    args: argparse.Namespace,
    table: str,
    write_json: Callable[[Path], None],
    chart: Callable[[Path], None],
) -> int | None:
    """Print the table, write ``--json`` and ``--chart``; an exit status if that failed."""
    print(table)
    if args.json:
        write_json(args.json)
        print(f"\nwrote {args.json}", file=sys.stderr)
    if args.chart:
        try:
            chart(args.chart)
        except ChartUnavailable as exc:
            return _fail(str(exc))
        print(f"wrote {args.chart}", file=sys.stderr)
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``voice bench`` with parsed arguments; returns the exit status."""
    if args.compare:
        return _compare(*args.compare)
    if min(args.barge_in, args.warmup) < 0 or min(args.repeat, args.limit or 1) < 1:
        return _fail("--barge-in and --warmup must be >= 0, --repeat and --limit >= 1")
    folder: Path = args.clips or default_clips_dir()
    try:
        clip_set = load_clips(folder, max_seconds=args.max_seconds, limit=args.limit)
    except ClipsError as exc:
        hint = "" if args.clips else " (pass --clips DIR)"
        return _fail(f"{exc}{hint}")
    if args.pauses is not None:
        return _run_pauses(args, clip_set.clips, folder)
    options = BenchOptions(
        concurrency=args.concurrency,
        barge_ins=args.barge_in,
        repeat=args.repeat,
        seed=args.seed,
        warmup=args.warmup,
        turn_timeout_s=args.timeout,
        clips_dir=str(folder),
        max_seconds=args.max_seconds,
        command=tuple(sys.argv[1:]),
        transport="webrtc" if args.webrtc else "websocket",
    )
    clips = clip_set.clips
    print(
        f"{len(clips)} clips from {folder} ({len(clip_set.skipped)} skipped); "
        f"over {options.transport}; warming up with {options.warmup} turn(s)",
        file=sys.stderr,
    )
    progress = Progress(total_steps(len(clips), options), sys.stderr)
    target = Target(args.url, args.api_key, args.model)
    report = _measured(run_bench(target, clips, options, progress=progress), progress)
    if isinstance(report, int):
        return report
    failed = _output(args, format_report(report), report.write_json, partial(write_chart, report))
    if failed is not None:
        return failed
    incomplete = any(not turn.complete for level in report.levels for turn in level.turns) or any(
        b.outcome == "incomplete" for level in report.levels for b in level.barge_ins
    )
    return 1 if incomplete else 0


def _run_pauses(args: argparse.Namespace, clips: list[BenchClip], folder: Path) -> int:
    """``voice bench --pauses``: word timestamps, then every utterance under every setting."""
    from voice.bench.pause_clips import clip_words
    from voice.stt import default_whisper_path

    whisper = args.whisper or default_whisper_path()
    if not (whisper / "model.bin").is_file():
        return _fail(f"no CTranslate2 Whisper model (model.bin) in {whisper}")
    print(f"finding word boundaries in {len(clips)} clips with {whisper}", file=sys.stderr)
    all_cases = cases(clips, clip_words(whisper, clips), args.pauses)
    detections = args.pause_detection
    print(
        f"{len(all_cases)} utterances from {folder} x {len(detections)} setting(s), "
        "one session at a time",
        file=sys.stderr,
    )
    progress = Progress(len(all_cases) * len(detections), sys.stderr, unit="utterances")
    target = Target(args.url, args.api_key, args.model)
    work = run_pauses(target, all_cases, detections, timeout=args.timeout, progress=progress)
    report = _measured(work, progress)
    if isinstance(report, int):
        return report
    failed = _output(
        args, format_pauses(report), report.write_json, partial(write_pause_chart, report)
    )
    if failed is not None:
        return failed
    return 1 if any(turn.errors for turn in report.turns) else 0
