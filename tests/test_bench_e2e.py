"""End to end: ``voice bench`` measures a real server running the real models.

Nothing here asserts speed: only that the report is produced, complete and consistent.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from tests.conftest import SPEECH_DIR, Clip, ServerProcess
from voice.bench.chart import write_chart
from voice.bench.clips import load_clips
from voice.bench.progress import Progress
from voice.bench.report import BenchReport, format_report
from voice.bench.runner import BenchOptions, run_bench
from voice.bench.timeline import STAGES
from voice.bench.transport import Target
from voice.cli import main
from voice.llm_server import free_port

pytestmark = pytest.mark.e2e

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def test_bench_reports_complete_ordered_timelines(
    server: ServerProcess, speech: dict[str, Clip], tmp_path: Path
) -> None:
    clips = load_clips(SPEECH_DIR, max_seconds=4.0, limit=2).clips
    assert len(clips) == 2
    stream = io.StringIO()
    options = BenchOptions(concurrency=(1,), barge_ins=1, warmup=0, turn_timeout_s=120)
    report = await run_bench(Target(server.ws_base), clips, options, progress=Progress(3, stream))

    assert stream.getvalue().endswith("3/3 turns")
    assert report.server_health is not None and report.server_health["status"] == "ok"
    assert report.machine["cores"] >= 1
    (level,) = report.levels
    assert sorted(turn.clip for turn in level.turns) == sorted(clip.name for clip in clips)
    for turn in level.turns:
        assert turn.errors == [], turn.errors
        assert turn.complete, turn.stages_ms()
        assert turn.inconsistencies() == []
        marks = [turn.mark(stage) for stage in STAGES]
        assert marks == sorted(marks), turn.stages_ms()
        assert turn.status == "completed"
        assert turn.wer is not None and turn.transcript_words and turn.reply_words

    for stage, summary in level.stage_summaries().items():
        assert summary is not None and summary.n == 2, stage
        assert summary.min <= summary.median <= summary.max
        assert summary.min <= summary.p90 <= summary.max

    (barge_in,) = level.barge_ins
    assert barge_in.errors == [], barge_in.errors
    assert barge_in.status == "cancelled" and barge_in.reason == "turn_detected"
    assert barge_in.outcome in ("interrupted", "idle_at_onset")
    assert barge_in.stages_ms()["detected"] is not None
    assert barge_in.stages_ms()["cancelled"] is not None
    assert barge_in.queued_ms is not None and barge_in.queued_ms >= 0

    json_path, chart_path = tmp_path / "bench.json", tmp_path / "bench.png"
    report.write_json(json_path)
    write_chart(report, chart_path)
    text = json_path.read_text()
    assert BenchReport.read_json(json_path).to_dict() == json.loads(text)
    assert "disposed" not in text  # transcripts stay out of the file
    assert chart_path.read_bytes().startswith(PNG_SIGNATURE)
    assert "first_audio" in format_report(report)


def test_bench_over_webrtc_reports_complete_consistent_timelines(
    server: ServerProcess,
    speech: dict[str, Clip],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_path = tmp_path / "rtc.json"
    with pytest.raises(SystemExit) as exited:
        main([
            "bench", "--webrtc", "--url", server.ws_base, f"--api-key={server.api_key}",
            "--clips", str(SPEECH_DIR), "--limit", "2", "--max-seconds", "4",
            "--barge-in", "1", "--warmup", "0", "--timeout", "120", "--json", str(json_path),
        ])  # fmt: skip
    printed = capsys.readouterr()
    assert exited.value.code == 0, printed.err
    assert f"{server.ws_base} over webrtc" in printed.out and "first_audio" in printed.out

    report = BenchReport.read_json(json_path)
    assert report.transport == "webrtc"
    (level,) = report.levels
    assert len(level.turns) == 2
    for turn in level.turns:
        assert turn.transport == "webrtc"
        assert turn.errors == [], turn.errors
        assert turn.complete and turn.inconsistencies() == [], turn.stages_ms()
        heard = [turn.mark(stage) for stage in STAGES if stage != "done"]
        assert heard == sorted(heard), turn.stages_ms()  # done may precede the last audio
        assert turn.status == "completed" and turn.reply_audio_ms
        assert turn.wer is not None and turn.transcript_words and turn.reply_words
    (barge_in,) = level.barge_ins
    assert barge_in.errors == [], barge_in.errors
    assert barge_in.status == "cancelled" and barge_in.reason == "turn_detected"
    assert barge_in.outcome in ("interrupted", "idle_at_onset")
    assert barge_in.stages_ms()["detected"] is not None
    assert barge_in.queued_ms == 0.0  # a WebRTC client holds no reply audio of its own
    deadline = time.monotonic() + 15  # the server releases a hung-up call in the background
    while (calls := server.health()["webrtc_calls"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert calls == 0  # every call was hung up


def test_unreachable_server_is_one_line_and_exit_status_2(
    speech: dict[str, Clip], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1"
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--url", url, "--limit", "1", "--clips", str(SPEECH_DIR)])
    assert exited.value.code == 2
    assert "server unreachable" in capsys.readouterr().err


def test_no_clips_names_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--clips", str(tmp_path)])
    assert exited.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err
