"""The pause benchmark: utterances with pauses, counting false cut-offs, and its report.

The unit tests build utterances from a real clip with words given by hand and count
cut-offs on scripted observation lists; the end-to-end test runs ``voice bench --pauses``
against the real server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SPEECH_DIR, Clip, ServerProcess
from voice.bench.clips import BenchClip, speech_bounds
from voice.bench.pause_clips import Word, cut_point, natural_pauses, with_pause
from voice.bench.pauses import (
    DetectionError,
    PauseReport,
    PauseTurn,
    cases,
    cut_off,
    format_pauses,
    kept_share,
    parse_detection,
)
from voice.bench.timeline import AUDIO_DELTA, RESPONSE_CREATED, TRANSCRIBED, Observation
from voice.bench.turns import LEAD_SILENCE_S
from voice.cli import main
from voice.vad import VAD_SAMPLE_RATE


def bench_clip(clip: Clip) -> BenchClip:
    bounds = speech_bounds(clip.samples)
    assert bounds is not None
    return BenchClip("c", clip.samples, clip.transcript, *bounds)


def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(*entry) for entry in spec]


def test_the_pause_goes_at_a_mid_sentence_boundary_and_the_mark_follows(
    speech: dict[str, Clip],
) -> None:
    clip = bench_clip(speech["librivox_sense_sensibility_0930"])  # "he might even have ..."
    said = words(("He", 0.3, 0.5), ("might", 0.5, 0.8), ("even", 0.8, 1.1), ("have", 1.2, 1.4),
                 ("been", 1.4, 1.6), ("made", 1.6, 1.9), ("amiable", 1.9, 2.5),
                 ("himself.", 2.5, 3.0))  # fmt: skip
    paused = with_pause(clip, said, 700)
    assert paused is not None
    ((start, end),) = paused.pauses
    assert end - start == 700 * VAD_SAMPLE_RATE // 1000
    assert not paused.utterance.samples[start:end].any()
    # The words either side, and the cut within 60 ms of a boundary near the middle.
    assert paused.before.split()[-1] in ("have", "been", "made", "even")
    cut_s = start / VAD_SAMPLE_RATE - LEAD_SILENCE_S
    assert min(abs(cut_s - b) for b in (1.15, 1.4, 1.6, 1.9)) <= 0.065
    # The marked sample is the clip's last speech sample, moved by the pause.
    mark = paused.utterance.mark_sample
    original = round(LEAD_SILENCE_S * VAD_SAMPLE_RATE) + clip.speech_end - 1
    assert paused.utterance.samples[mark] == clip.samples[clip.speech_end - 1]
    assert mark == original + (end - start)
    assert paused.first_pause_s == pytest.approx((mark - start) / VAD_SAMPLE_RATE)


def test_no_cut_after_a_sentence_end_or_inside_a_word_in_pieces(
    speech: dict[str, Clip],
) -> None:
    clip = bench_clip(speech["librivox_sense_sensibility_0880"])
    said = words(("He", 0.3, 0.5), ("was.", 0.5, 0.8), ("not", 0.9, 1.1), ("an", 1.1, 1.2),
                 ("old", 1.2, 1.5), ("-sposed", 1.5, 1.9), ("man.", 1.9, 2.4))  # fmt: skip
    found = cut_point(clip, said)
    assert found is not None
    assert said[found[1] - 1].text not in ("was.", "old") and said[found[1]].text != "-sposed"
    assert cut_point(clip, said[:3]) is None  # too few words either side


def test_natural_pauses_are_the_readers_own_silences(speech: dict[str, Clip]) -> None:
    digits = bench_clip(speech["vosk_digits_test"])  # three digit strings, pauses between
    gaps = natural_pauses(digits)
    assert len(gaps) >= 2 and all((b - a) / VAD_SAMPLE_RATE >= 0.3 for a, b in gaps)
    assert natural_pauses(bench_clip(speech["ps_goforward"])) == []


def test_detection_settings() -> None:
    assert parse_detection("server").session is None
    assert parse_detection("server_vad:300").session == {
        "type": "server_vad", "silence_duration_ms": 300
    }  # fmt: skip
    assert parse_detection("semantic_vad:high").session == {
        "type": "semantic_vad", "eagerness": "high"
    }  # fmt: skip
    for bad in ("semantic_vad:fast", "server_vad:", "vad", "server:1"):
        with pytest.raises(DetectionError):
            parse_detection(bad)


def test_a_cut_off_is_audio_of_a_reply_created_in_the_pause() -> None:
    pause_start, t0 = 10.0, 12.0

    def log(created_at: float, audio_at: float | None) -> list[Observation]:
        events = [Observation(RESPONSE_CREATED, created_at, response_id="r")]
        if audio_at is not None:
            events.append(Observation(AUDIO_DELTA, audio_at, response_id="r"))
        return events

    assert cut_off(log(10.6, 11.0), t0, pause_start)  # spoke into the pause
    assert cut_off(log(11.5, 12.4), t0, pause_start)  # answered half the sentence, late
    assert not cut_off(log(11.5, None), t0, pause_start)  # created but cancelled unheard
    assert not cut_off(log(12.3, 12.8), t0, pause_start)  # the real reply
    assert not cut_off(log(2.0, 10.5), t0, pause_start)  # a greeting still playing


def test_the_table_has_a_row_per_setting_and_pause() -> None:
    def turn(detection: str, pause: int | None, cut: bool, ms: float | None) -> PauseTurn:
        return PauseTurn(detection, "c", pause, cut, False, ms)

    report = PauseReport(
        "now", "ws://x/v1", {}, None,
        [turn("server default", 0, False, 900.0), turn("server default", 0, False, 1100.0),
         turn("server default", 500, True, None), turn("server default", 500, False, 1000.0),
         turn("server default", None, False, 950.0)],
        [],
    )  # fmt: skip
    rows = {row.pause: row for row in report.rows()}
    assert rows["none"].median_ms == 1000.0 and rows["none"].cut_off == 0
    assert rows["500 ms"].rate == 0.5 and rows["500 ms"].median_ms == 1000.0
    assert rows["natural"].utterances == 1
    table = format_pauses(report)
    assert "500 ms" in table and "50%" in table and "natural" in table


@pytest.mark.e2e
def test_bench_pauses_against_the_server(
    server: ServerProcess, speech: dict[str, Clip], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    json_path, chart_path = tmp_path / "pauses.json", tmp_path / "pauses.png"
    with pytest.raises(SystemExit) as exited:
        main([
            "bench", "--url", server.ws_base, f"--api-key={server.api_key}",
            "--clips", str(SPEECH_DIR), "--limit", "1", "--max-seconds", "8",
            "--pauses", "2500", "--timeout", "120", "--json", str(json_path),
            "--chart", str(chart_path),
        ])  # fmt: skip
    printed = capsys.readouterr()
    assert exited.value.code == 0, printed.err
    assert "2500 ms" in printed.out
    data = json.loads(json_path.read_text())
    whole, paused = data["turns"]
    assert (whole["pause_ms"], paused["pause_ms"]) == (0, 2500)
    # Said whole, the clip is answered; 2.5 s into a pause the server has answered it too
    # (its turn detection ends a turn after 0.5 s of silence): a false cut-off.
    assert not whole["cut_off"] and whole["first_audio_ms"] > 0
    assert paused["cut_off"]
    assert chart_path.read_bytes().startswith(b"\x89PNG")
    assert np.isfinite(data["rows"][0]["median_ms"])


def test_a_clip_with_natural_pauses_gets_no_inserted_one(speech: dict[str, Clip]) -> None:
    digits, short = bench_clip(speech["vosk_digits_test"]), bench_clip(speech["ps_goforward"])
    short = BenchClip("go", short.samples, None, short.speech_start, short.speech_end)
    said = words(("Go", 0.5, 0.8), ("forward", 0.8, 1.3), ("ten", 1.4, 1.7), ("meters.", 1.7, 2.2))
    made = cases([digits, short], {"c": said, "go": said}, [300, 700])
    assert [(case.clip.name, case.pause_ms) for case in made] == [
        ("c", 0), ("go", 0), ("go", 300), ("go", 700), ("c", None)
    ]  # fmt: skip


def test_kept_counts_the_words_after_the_pause_found_in_any_user_transcript() -> None:
    said = [
        Observation(TRANSCRIBED, 1.0, item_id="u1", text="The tale could go"),
        Observation(RESPONSE_CREATED, 1.1, response_id="r"),
        Observation(TRANSCRIBED, 2.0, item_id="u2", text="On for..."),
    ]
    assert kept_share(said, "on forever.") == 0.5
    assert kept_share(said[:2], "on forever.") == 0.0  # the second piece was lost
    assert kept_share(said, "") is None
