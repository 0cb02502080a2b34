"""The bench's timing arithmetic on synthetic event timelines: no server, no clock, no I/O."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydantic
import pytest

from voice.bench.client import CHUNK_SAMPLES, observe, parse_server_event, plan_audio
from voice.bench.progress import Progress
from voice.bench.report import (
    BenchReport,
    LevelResult,
    compare_reports,
    format_comparison,
    format_degradation,
    format_report,
)
from voice.bench.stats import Comparison, compare_medians, percentile, summarize
from voice.bench.timeline import (
    AUDIO_DELTA,
    COMMITTED,
    ERROR,
    REPLY_TEXT_DONE,
    RESPONSE_CREATED,
    RESPONSE_DONE,
    SPEECH_STARTED,
    SPEECH_STOPPED,
    STAGES,
    TEXT_DELTA,
    TRANSCRIBED,
    BargeInTimeline,
    Observation,
    TurnTimeline,
    barge_in_from_observations,
    turn_from_observations,
    turn_settled,
)
from voice.bench.transport import Target, Utterance
from voice.bench.wer import word_count, word_error_rate

T0 = 100.0


def spoken_turn(
    t0: float = T0, item: str = "item_1", response: str = "resp_1", reply_status: str = "completed"
) -> list[Observation]:
    """A well-behaved turn: stop +0.55 s, transcript +0.8, text +1.2, audio 1.25-1.65, done."""
    return [
        Observation("session.created", t0 - 5),
        Observation(SPEECH_STARTED, t0 - 2, item_id=item),
        Observation(SPEECH_STOPPED, t0 + 0.55, item_id=item),
        Observation(COMMITTED, t0 + 0.55, item_id=item),
        Observation(TRANSCRIBED, t0 + 0.8, item_id=item, text="He was not an ill-disposed man"),
        Observation(RESPONSE_CREATED, t0 + 0.81, response_id=response),
        Observation(TEXT_DELTA, t0 + 1.2, item_id="item_2", response_id=response),
        Observation(AUDIO_DELTA, t0 + 1.25, "item_2", response, audio_ms=100.0),
        Observation(TEXT_DELTA, t0 + 1.4, item_id="item_2", response_id=response),
        Observation(AUDIO_DELTA, t0 + 1.65, "item_2", response, audio_ms=60.0),
        Observation(REPLY_TEXT_DONE, t0 + 1.7, response_id=response, text="Indeed he was not."),
        Observation(RESPONSE_DONE, t0 + 1.71, response_id=response, status=reply_status),
    ]


# --- turns -----------------------------------------------------------------------------------


def test_complete_turn_stages_are_measured_from_the_end_of_speech() -> None:
    turn = turn_from_observations(
        "clip", 0, T0, spoken_turn(), reference="he was not an ill disposed young man"
    )
    assert turn.complete
    assert turn.stages_ms() == pytest.approx(
        {
            "speech_stopped": 550.0,
            "transcribed": 800.0,
            "first_text": 1200.0,
            "first_audio": 1250.0,
            "last_audio": 1650.0,
            "done": 1710.0,
        }
    )
    assert turn.inconsistencies() == []
    assert turn.status == "completed"
    assert turn.user_turns == 1
    assert turn.transcript_words == 7  # "ill-disposed" counts as two words
    assert turn.reply_words == 4
    assert turn.reply_audio_ms == pytest.approx(160.0)
    assert turn.wer == pytest.approx(1 / 8)  # "young" is missing
    assert turn.errors == []


def test_missing_stages_are_none_and_the_turn_is_incomplete() -> None:
    observations = spoken_turn()[:5]  # transcribed, but no response ever came
    turn = turn_from_observations("clip", 0, T0, observations)
    stages = turn.stages_ms()
    assert stages["transcribed"] == pytest.approx(800.0)
    assert [stages[s] for s in ("first_text", "first_audio", "last_audio", "done")] == [None] * 4
    assert not turn.complete
    assert turn.wer is None  # no reference transcript
    assert turn.inconsistencies() == []


def test_no_speech_stopped_leaves_every_stage_missing() -> None:
    turn = turn_from_observations("clip", 0, T0, [Observation("session.created", T0 - 1)])
    assert turn.user_turns == 0
    assert set(turn.stages_ms().values()) == {None}


def test_a_clip_split_into_two_user_turns_measures_the_last_one() -> None:
    first = [
        Observation(SPEECH_STOPPED, T0 - 1.0, item_id="item_a"),
        Observation(COMMITTED, T0 - 1.0, item_id="item_a"),
        Observation(TRANSCRIBED, T0 - 0.5, item_id="item_a", text="first half"),
        Observation(RESPONSE_CREATED, T0 - 0.49, response_id="resp_a"),
        Observation(AUDIO_DELTA, T0 - 0.2, response_id="resp_a"),
        Observation(RESPONSE_DONE, T0 - 0.1, response_id="resp_a", status="cancelled"),
    ]
    reference = "the first half he was not an ill disposed man"
    turn = turn_from_observations("clip", 0, T0, first + spoken_turn()[1:], reference)
    assert turn.user_turns == 2
    assert turn.transcript_words == 9  # both halves are scored against the whole clip
    assert turn.wer == pytest.approx(1 / 10)
    assert turn.speech_stopped == T0 + 0.55
    assert turn.first_audio == T0 + 1.25  # not the first half's reply
    assert turn.status == "completed"


def test_speech_over_the_bot_that_was_no_turn_is_not_measured() -> None:
    """The user spoke over the reply and it went on (a backchannel, or words heard as
    noise): that speech started and stopped, but was never committed."""
    observations = spoken_turn()
    observations.insert(7, Observation(SPEECH_STARTED, T0 + 1.3, item_id="item_3"))
    observations.insert(8, Observation(SPEECH_STOPPED, T0 + 1.5, item_id="item_3"))
    turn = turn_from_observations("clip", 0, T0, observations)
    assert turn.user_turns == 1
    assert turn.speech_stopped == T0 + 0.55
    assert turn.done == T0 + 1.71 and turn.status == "completed"


def test_events_of_other_responses_are_ignored() -> None:
    observations = spoken_turn()
    observations.insert(6, Observation(AUDIO_DELTA, T0 + 1.0, response_id="resp_other"))
    turn = turn_from_observations("clip", 0, T0, observations)
    assert turn.first_audio == T0 + 1.25


def test_first_audio_before_transcription_is_flagged_inconsistent() -> None:
    turn = TurnTimeline(
        clip="clip", call=0, t0=T0, speech_stopped=T0 + 0.5, transcribed=T0 + 1.0,
        first_text=T0 + 0.9, first_audio=T0 + 0.8, last_audio=T0 + 2.0, done=T0 + 2.1,
    )  # fmt: skip
    problems = turn.inconsistencies()
    assert "first_audio before transcribed" in problems
    assert "first_text before transcribed" in problems
    assert "first_audio before first_text" in problems
    assert not any(p.startswith("last_audio") or p.startswith("done") for p in problems)


def test_inconsistency_checks_skip_missing_stages() -> None:
    turn = TurnTimeline(clip="c", call=0, t0=T0, speech_stopped=T0 + 0.5, first_audio=T0 + 0.4)
    assert turn.inconsistencies() == ["first_audio before speech_stopped"]


def test_turn_settles_on_its_response_done_or_an_error() -> None:
    observations = spoken_turn()
    assert not turn_settled(observations[:-1])
    assert turn_settled(observations)
    assert turn_settled([*observations[:4], Observation(ERROR, T0 + 1, detail="server_busy: x")])


def test_errors_are_kept_with_the_turn() -> None:
    observations = [*spoken_turn()[:4], Observation(ERROR, T0 + 1, detail="server_busy: busy")]
    assert turn_from_observations("c", 0, T0, observations).errors == ["server_busy: busy"]


# --- barge-in --------------------------------------------------------------------------------

ONSET = 50.0


def story(
    status: str, last_audio: float, *, started: float | None = ONSET + 0.2
) -> list[Observation]:
    """A reply whose first 3 s of audio arrive at once, 1 s before the onset."""
    observations = [
        Observation(RESPONSE_CREATED, ONSET - 3, response_id="resp_s"),
        Observation(AUDIO_DELTA, ONSET - 1.0, response_id="resp_s", audio_ms=3000.0),
        Observation(AUDIO_DELTA, last_audio, response_id="resp_s", audio_ms=500.0),
    ]
    if started is not None:
        observations.append(Observation(SPEECH_STARTED, started, item_id="item_u"))
    reason = "turn_detected" if status == "cancelled" else None
    observations.append(
        Observation(RESPONSE_DONE, ONSET + 0.3, response_id="resp_s", status=status, detail=reason)
    )
    return sorted(observations, key=lambda o: o.at)


def barge_in(observations: list[Observation]) -> BargeInTimeline:
    return barge_in_from_observations("clip", 0, 0.5, ONSET, observations, "resp_s")


def test_barge_in_interrupted_while_audio_was_arriving() -> None:
    result = barge_in(story("cancelled", ONSET + 0.25))
    assert result.outcome == "interrupted"
    assert result.reason == "turn_detected"
    assert result.stages_ms() == pytest.approx(
        {"detected": 200.0, "stopped": 250.0, "cancelled": 300.0}
    )
    assert result.audio_ms_before_onset == 3000.0  # the later delta came after the onset
    assert result.queued_ms == pytest.approx(2000.0)  # 3 s received, 1 s of it played


def test_barge_in_with_no_audio_after_the_onset_is_counted_apart() -> None:
    result = barge_in(story("cancelled", ONSET - 0.1))
    assert result.outcome == "idle_at_onset"
    assert result.stages_ms()["stopped"] is None  # would be negative: not a stop time
    assert result.stages_ms()["cancelled"] == pytest.approx(300.0)
    assert result.queued_ms == pytest.approx(2500.0)


def test_barge_in_that_did_not_stop_the_reply() -> None:
    result = barge_in(story("completed", ONSET + 0.25, started=None))
    assert result.outcome == "not_interrupted"
    assert result.stages_ms() == {"detected": None, "stopped": None, "cancelled": None}


def test_barge_in_without_response_done_is_incomplete() -> None:
    result = barge_in(story("cancelled", ONSET + 0.25)[:-1])
    assert result.outcome == "incomplete"


# --- statistics ------------------------------------------------------------------------------


def test_nearest_rank_percentiles_on_known_data() -> None:
    data = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(data, 5) == 15.0
    assert percentile(data, 30) == 20.0
    assert percentile(data, 40) == 20.0
    assert percentile(data, 50) == 35.0
    assert percentile(data, 100) == 50.0
    ten = [float(v) for v in range(10, 0, -1)]  # unsorted input
    assert percentile(ten, 90) == 9.0
    assert percentile(ten, 91) == 10.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(data, 0)


def test_summary_ignores_missing_values() -> None:
    summary = summarize([400.0, None, 100.0, 300.0, 200.0])
    assert summary is not None
    assert (summary.n, summary.median, summary.p90, summary.min, summary.max) == (
        4, 250.0, 400.0, 100.0, 400.0,
    )  # fmt: skip
    assert summarize([None, None]) is None
    assert summarize([]) is None


def test_compare_ratios() -> None:
    a = {"first_audio": summarize([100.0]), "done": summarize([0.0]), "last_audio": None}
    b = {"first_audio": summarize([150.0]), "done": summarize([10.0]), "last_audio": None}
    rows = {c.stage: c for c in compare_medians(a, b, ["first_audio", "done", "last_audio"])}
    assert rows["first_audio"].ratio == pytest.approx(1.5)
    assert rows["done"].ratio is None  # B / 0 has no meaning
    assert rows["last_audio"] == Comparison("last_audio", None, None)


# --- reports ---------------------------------------------------------------------------------


def level(concurrency: int, scale: float) -> LevelResult:
    turns = []
    for index in range(4):
        t0 = 1000.0 * index
        observations = [replace(o, at=t0 + (o.at - T0) * scale) for o in spoken_turn(T0)]
        turns.append(turn_from_observations(f"clip{index}", 0, t0, observations, "he was"))
    return LevelResult(
        concurrency, turns, [barge_in(story("cancelled", ONSET + 0.25))], wall_s=12.5
    )


def report(*levels: LevelResult) -> BenchReport:
    return BenchReport(
        created="2025-01-01T00:00:00+00:00", url="ws://127.0.0.1:8000/v1",
        options={"concurrency": [lv.concurrency for lv in levels]},
        machine={"cores": 2}, server_health={"status": "ok"},
        clips=[{"name": "clip0", "seconds": 3.0}], levels=list(levels),
    )  # fmt: skip


def test_report_json_round_trips_and_keeps_no_text(tmp_path: Path) -> None:
    original = report(level(1, 1.0), level(2, 2.0))
    path = tmp_path / "bench.json"
    original.write_json(path)
    loaded = BenchReport.read_json(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.to_dict() == json.loads(json.dumps(original.to_dict()))
    text = path.read_text()
    assert "disposed" not in text and "Indeed" not in text  # counts only, never words
    summary = json.loads(text)["levels"][0]["summary"]
    assert summary["stages_ms"]["first_audio"]["median"] == pytest.approx(1250.0)
    assert summary["barge_in_outcomes"] == {"interrupted": 1}


def test_reading_a_file_that_is_not_a_report_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"schema": "something-else"}')
    with pytest.raises(Exception, match="not a voice-bench/1 report"):
        BenchReport.read_json(path)


def test_compare_reports_and_the_tables() -> None:
    a, b = report(level(1, 1.0)), report(level(1, 2.0), level(2, 3.0))
    compared = compare_reports(a, b)
    assert list(compared) == [1]  # only levels present in both
    ratios = {c.stage: c.ratio for c in compared[1]}
    assert ratios["first_audio"] == pytest.approx(2.0)
    assert ratios["barge-in stopped"] == pytest.approx(1.0)
    text = format_comparison(a, b, "a.json", "b.json")
    assert "2.00" in text and "first_audio" in text
    assert "first_audio" in format_report(a)
    degradation = format_degradation(b.levels)
    assert "2500" in degradation and "3750" in degradation and "1.50" in degradation


def test_stage_order_is_the_documented_one() -> None:
    assert STAGES == (
        "speech_stopped", "transcribed", "first_text", "first_audio", "last_audio", "done",
    )  # fmt: skip


# --- small pieces ----------------------------------------------------------------------------


def test_word_error_rate() -> None:
    assert word_error_rate("go forward ten meters", "Go forward, ten meters.") == 0.0
    assert word_error_rate("go forward ten meters", "go forward") == 0.5
    assert word_count("") == 0


def test_progress_bar_redraws_in_place() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream)
    progress.advance()
    progress.advance()
    progress.close()
    progress.close()
    assert stream.getvalue() == (
        "\r[#####...............] 1/4 turns\r[##########..........] 2/4 turns\n"
    )


def test_urls_derived_from_the_realtime_base() -> None:
    target = Target("wss://example.test:9000/v1/")
    assert target.realtime_url == "wss://example.test:9000/v1/realtime?model=voice"
    assert target.health_url == "https://example.test:9000/health"


def test_server_events_are_parsed_into_typed_models() -> None:
    done = parse_server_event(
        json.dumps({
            "type": "response.done", "event_id": "event_1",
            "response": {"id": "resp_1", "object": "realtime.response", "status": "cancelled",
                         "status_details": {"type": "cancelled", "reason": "turn_detected"}},
        })
    )  # fmt: skip
    assert observe(done, 3.0) == Observation(
        RESPONSE_DONE, 3.0, response_id="resp_1", status="cancelled", detail="turn_detected"
    )
    audio = base64.b64encode(bytes(4801 * 2)).decode()  # 4801 samples at 24 kHz, padded
    delta = parse_server_event(
        json.dumps({
            "type": "response.output_audio.delta", "event_id": "e", "response_id": "r",
            "item_id": "i", "output_index": 0, "content_index": 0, "delta": audio,
        })
    )  # fmt: skip
    assert observe(delta, 4.0) == Observation(
        AUDIO_DELTA, 4.0, item_id="i", response_id="r", audio_ms=pytest.approx(4801 / 24)
    )
    with pytest.raises(pydantic.ValidationError):
        parse_server_event('{"type": "response.output_audio.delta", "event_id": "e"}')


def test_audio_is_planned_in_40_ms_chunks_with_the_marked_chunk() -> None:
    samples = np.zeros(16000, dtype=np.float32)  # 1 s: 25 chunks
    plan = plan_audio(Utterance(samples, mark_sample=CHUNK_SAMPLES * 7 + 5))
    assert len(plan.messages) == 25
    assert plan.mark_chunk == 7
    first = json.loads(plan.messages[0])
    assert first["type"] == "input_audio_buffer.append"
    assert len(base64.b64decode(first["audio"])) == 24000 * 2 * 40 // 1000
