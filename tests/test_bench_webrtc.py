"""The WebRTC bench's arithmetic and microphone on synthetic frames: no server, no network,
no wall clock (the microphone runs on a fake clock)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_bench_timeline import T0, spoken_turn
from voice.audio import Float32Array, resample
from voice.bench.report import BenchReport, LevelResult, format_comparison, format_report
from voice.bench.timeline import (
    AUDIO_DELTA,
    RESPONSE_CREATED,
    RESPONSE_DONE,
    Observation,
    turn_from_observations,
)
from voice.bench.transport import CallClosed, Target, Utterance
from voice.bench.webrtc_audio import (
    AUDIBLE_DBFS,
    OUTPUT_CLEARED,
    OUTPUT_STARTED,
    OUTPUT_STOPPED,
    FramePlan,
    FrameSchedule,
    HeardAudio,
    plan_frames,
    playback_over,
)
from voice.bench.webrtc_call import MicrophoneTrack
from voice.webrtc.frames import FRAME_SAMPLES, frame_to_mono

RATE = 48000


def level_frame(dbfs: float) -> Float32Array:
    """One 20 ms frame of a 440 Hz sine whose RMS level is ``dbfs``."""
    t = np.arange(FRAME_SAMPLES) / RATE
    amplitude = 10 ** (dbfs / 20) * np.sqrt(2)
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


# --- planning and pacing ---------------------------------------------------------------------


def test_an_utterance_is_cut_into_20_ms_frames_with_the_marked_frame() -> None:
    samples = np.linspace(-0.5, 0.5, 16000 + 100, dtype=np.float32)  # 1 s and 100 samples
    plan = plan_frames(Utterance(samples, mark_sample=320 * 31 + 7))
    assert len(plan.frames) == 51  # the last frame holds 300 samples, padded with silence
    assert all(frame.shape == (FRAME_SAMPLES,) for frame in plan.frames)
    assert plan.mark_frame == 31
    sent = np.concatenate(plan.frames)
    expected = resample(samples, 16000, RATE)
    np.testing.assert_array_equal(sent[: expected.size], expected)
    assert not sent[expected.size :].any()


def test_a_mark_past_the_end_is_the_last_frame() -> None:
    plan = plan_frames(Utterance(np.zeros(100, dtype=np.float32), mark_sample=10_000))
    assert len(plan.frames) == 1 and plan.mark_frame == 0


def test_frames_are_due_when_their_last_sample_is_captured_and_lateness_does_not_drift() -> None:
    schedule = FrameSchedule(frame_s=0.02)
    assert schedule.next_due(10.0) == pytest.approx(10.02)
    assert schedule.next_due(10.02) == pytest.approx(10.04)
    assert schedule.next_due(10.5) == pytest.approx(10.06)  # late: due at once, not moved
    assert schedule.next_due(10.5) == pytest.approx(10.08)


# --- the microphone on a fake clock ----------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 50.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def numbered_plan(count: int, mark: int) -> FramePlan:
    frames = tuple(np.full(FRAME_SAMPLES, (i + 1) / 100, dtype=np.float32) for i in range(count))
    return FramePlan(frames, mark)


async def test_microphone_paces_frames_and_stamps_the_marked_one() -> None:
    time = FakeTime()
    track = MicrophoneTrack(time.clock, loop_time=time.clock, sleep=time.sleep)
    first = await track.recv()
    assert not frame_to_mono(first).any() and first.pts == 0  # silence until told to speak
    assert time.now == pytest.approx(50.02)

    saying = asyncio.create_task(track.say(numbered_plan(3, mark=1)))
    await asyncio.sleep(0)
    levels = []
    for _ in range(4):
        frame = await track.recv()
        levels.append(round(float(frame_to_mono(frame)[0]), 2))
        if len(levels) == 2:
            marked_at = time.now
    assert levels == [0.01, 0.02, 0.03, 0.0]  # the plan, then silence again
    assert await saying == marked_at == pytest.approx(50.06)
    assert time.slept == pytest.approx([0.02] * 5)
    assert frame.pts == 4 * FRAME_SAMPLES


async def test_cancelling_say_goes_back_to_silence() -> None:
    time = FakeTime()
    track = MicrophoneTrack(time.clock, loop_time=time.clock, sleep=time.sleep)
    saying = asyncio.create_task(track.say(numbered_plan(5, mark=4)))
    await asyncio.sleep(0)
    assert frame_to_mono(await track.recv())[0] == pytest.approx(0.01, abs=1e-3)
    saying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saying
    assert not frame_to_mono(await track.recv()).any()


async def test_the_call_ending_while_speaking_raises_call_closed() -> None:
    time = FakeTime()
    track = MicrophoneTrack(time.clock, loop_time=time.clock, sleep=time.sleep)
    saying = asyncio.create_task(track.say(numbered_plan(5, mark=0)))
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(CallClosed):
        await saying
    with pytest.raises(CallClosed):
        await track.say(numbered_plan(1, mark=0))


# --- hearing the reply ------------------------------------------------------------------------


def test_only_audible_frames_after_a_response_count_as_its_audio() -> None:
    heard = HeardAudio()
    assert heard.frame(level_frame(-20.0), RATE, 1.0) is None  # no response yet
    heard.event(Observation(RESPONSE_CREATED, 1.1, response_id="resp_1"))
    assert heard.frame(np.zeros(FRAME_SAMPLES, dtype=np.float32), RATE, 1.2) is None
    assert heard.frame(level_frame(AUDIBLE_DBFS - 1.0), RATE, 1.3) is None
    loud = heard.frame(level_frame(AUDIBLE_DBFS + 1.0), RATE, 1.4)
    assert loud == Observation(AUDIO_DELTA, 1.4, response_id="resp_1", audio_ms=20.0)
    heard.event(Observation(RESPONSE_CREATED, 2.0, response_id="resp_2"))
    later = heard.frame(level_frame(-20.0), RATE, 2.5)
    assert later is not None and later.response_id == "resp_2"


def heard_turn(levels_dbfs: list[float], start: float) -> list[Observation]:
    """A spoken turn whose reply audio is received frames of these levels, from ``start``,
    with its ``response.done`` while the audio is still playing."""
    events = [o for o in spoken_turn(T0) if o.type != AUDIO_DELTA]
    heard = HeardAudio()
    for o in events:
        if o.at < start:
            heard.event(o)
    frames = []
    for index, dbfs in enumerate(levels_dbfs):
        seen = heard.frame(level_frame(dbfs), RATE, start + index * 0.02)
        if seen is not None:
            frames.append(seen)
    return sorted(events + frames, key=lambda o: o.at)


def test_first_and_last_audio_are_the_first_and_last_audible_frames() -> None:
    levels = [-120.0, -95.0, -30.0, -20.0, -120.0, -70.0, -25.0, -120.0, -120.0, -120.0]
    start = T0 + 1.6  # the reply's response.done (T0 + 1.71) comes before its last frame
    observations = heard_turn(levels, start)
    turn = turn_from_observations("clip", 0, T0, observations, transport="webrtc")
    assert turn.first_audio == pytest.approx(start + 0.04)
    assert turn.last_audio == pytest.approx(start + 0.12)
    assert turn.reply_audio_ms == pytest.approx(60.0)  # three audible frames
    assert turn.response_id == "resp_1"
    assert turn.complete and turn.inconsistencies() == []
    # The same marks are out of order for a WebSocket, where deltas precede response.done.
    websocket = turn_from_observations("clip", 0, T0, observations)
    assert websocket.inconsistencies() == ["done before last_audio"]


def test_webrtc_still_checks_the_order_of_everything_but_done() -> None:
    early = Observation(AUDIO_DELTA, T0 + 0.7, response_id="resp_1", audio_ms=20.0)
    observations = sorted([*spoken_turn(T0), early], key=lambda o: o.at)
    turn = turn_from_observations("clip", 0, T0, observations, transport="webrtc")
    assert "first_audio before transcribed" in turn.inconsistencies()


def test_playback_is_over_when_the_reply_stopped_was_cleared_or_never_started() -> None:
    assert playback_over([], "a")
    started = [Observation(OUTPUT_STARTED, 1.0, response_id="a")]
    assert not playback_over(started, "a")
    assert playback_over(started, "b")  # another reply playing does not matter
    assert playback_over([*started, Observation(OUTPUT_STOPPED, 2.0, response_id="a")], "a")
    assert playback_over([*started, Observation(OUTPUT_CLEARED, 2.0, response_id="a")], "a")
    assert not playback_over([*started, Observation(OUTPUT_STOPPED, 2.0, response_id="b")], "a")
    assert not playback_over([*started, Observation(RESPONSE_DONE, 1.5, response_id="a")], "a")


# --- the report says which transport --------------------------------------------------------


def one_level_report(transport: str | None) -> BenchReport:
    turn = turn_from_observations("clip", 0, T0, spoken_turn(T0))
    options = {"concurrency": [1]} | ({} if transport is None else {"transport": transport})
    return BenchReport(
        created="2025-01-01T00:00:00+00:00", url="ws://127.0.0.1:8000/v1", options=options,
        machine={"cores": 2}, server_health=None, clips=[], levels=[LevelResult(1, [turn])],
    )  # fmt: skip


def test_the_report_records_and_prints_the_transport(tmp_path: Path) -> None:
    path = tmp_path / "rtc.json"
    one_level_report("webrtc").write_json(path)
    assert json.loads(path.read_text())["options"]["transport"] == "webrtc"
    loaded = BenchReport.read_json(path)
    assert loaded.transport == "webrtc"
    assert format_report(loaded).startswith("ws://127.0.0.1:8000/v1 over webrtc\n")
    assert one_level_report(None).transport == "websocket"  # reports from before WebRTC


def test_comparing_different_transports_says_so() -> None:
    ws, rtc = one_level_report("websocket"), one_level_report("webrtc")
    text = format_comparison(ws, rtc, "ws.json", "rtc.json")
    assert "A = ws.json (websocket)\nB = rtc.json (webrtc)" in text
    assert "different transports" in text
    assert "different transports" not in format_comparison(rtc, rtc, "a", "b")


def test_the_calls_url_is_http_on_the_realtime_base() -> None:
    assert Target("ws://127.0.0.1:8000/v1").calls_url == (
        "http://127.0.0.1:8000/v1/realtime/calls?model=voice"
    )
    assert Target("wss://example.test/v1/", model="m").calls_url == (
        "https://example.test/v1/realtime/calls?model=m"
    )
