"""WebRTC transport: the output queue and track on their own, a call in process with fake
models, and a real ``voice serve`` answering an aiortc client over ``/v1/realtime/calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from av import AudioFrame

from tests.conftest import Clip, ServerProcess, start_server
from tests.fakes import FakeEngines, FakeLLM, FakeTTS, VirtualClock
from tests.realtime_helpers import silence, word_error_rate
from tests.webrtc_helpers import ClientPeer, HttpResponse, Signal, client_peer, http
from voice.audio import Float32Array, rms_dbfs
from voice.clock import Clock
from voice.config import Settings
from voice.playout import AudioOutput
from voice.session import RealtimeSession
from voice.webrtc.call import OfferError, SessionFactory, WebRTCCall
from voice.webrtc.calls import CallManager
from voice.webrtc.frames import FRAME_SAMPLES, frame_to_mono, mono_to_frame
from voice.webrtc.output import MAX_QUEUED_MS, WebRTCAudioOutput
from voice.webrtc.track import OutputAudioTrack
from voice.wire import Send, ServerEvents

RATE = 48000


def tone(seconds: float, rate: int = RATE, level: float = 0.3) -> Float32Array:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


# --- the output queue (no I/O) ----------------------------------------------------------------


def types(events: list[Any]) -> list[str]:
    return [event.type for event in events]


async def test_output_play_position_counts_frames_taken_and_pads_with_silence() -> None:
    events: list[Any] = []
    output = WebRTCAudioOutput(ServerEvents(events.append), clock=VirtualClock())
    output.begin("resp_1", "item_1")
    await output.write(np.full(1500, 0.5, dtype=np.float32))
    assert output.sent_ms() == pytest.approx(1500 / 48)
    assert output.played_ms() == 0.0

    first = output.next_frame()
    assert np.all(first == 0.5)
    assert output.played_ms() == pytest.approx(20.0)
    second = output.next_frame()
    assert np.all(second[:540] == 0.5) and np.all(second[540:] == 0.0)
    assert output.played_ms() == output.sent_ms()
    assert types(events) == ["output_audio_buffer.started"]
    assert np.all(output.next_frame() == 0.0)  # nothing queued: silence, position unchanged
    assert output.played_ms() == output.sent_ms()

    output.finish("resp_1")
    assert types(events) == ["output_audio_buffer.started", "output_audio_buffer.stopped"]
    assert events[-1].response_id == "resp_1"


async def test_output_write_waits_while_the_queue_is_full() -> None:
    output = WebRTCAudioOutput(ServerEvents(lambda _: None), clock=VirtualClock())
    output.begin("resp_1", "item_1")
    writer = asyncio.create_task(output.write(tone(1.0)))
    await asyncio.sleep(0)
    assert not writer.done()
    assert output.queued_ms <= MAX_QUEUED_MS + 20
    frames = 0
    while not writer.done():
        output.next_frame()
        frames += 1
        await asyncio.sleep(0)
        assert output.queued_ms <= MAX_QUEUED_MS + 20
    assert output.sent_ms() == pytest.approx(1000.0)
    assert output.played_ms() == pytest.approx(frames * 20.0)


async def test_output_clear_drops_queued_audio_at_once() -> None:
    events: list[Any] = []
    output = WebRTCAudioOutput(ServerEvents(events.append), clock=VirtualClock())
    output.begin("resp_1", "item_1")
    await output.write(tone(0.1))
    output.next_frame()
    await output.clear()
    assert output.queued_ms == 0
    assert np.all(output.next_frame() == 0.0)
    assert output.played_ms() == pytest.approx(20.0)
    assert types(events) == ["output_audio_buffer.started", "output_audio_buffer.cleared"]
    output.finish("resp_1")  # nothing is playing any more: no "stopped"
    assert len(events) == 2


async def test_output_tail_of_the_previous_response_is_not_counted_for_the_next() -> None:
    events: list[Any] = []
    output = WebRTCAudioOutput(ServerEvents(events.append), clock=VirtualClock())
    output.begin("resp_a", "item_a")
    await output.write(np.full(FRAME_SAMPLES + 480, 0.1, dtype=np.float32))
    output.finish("resp_a")
    output.begin("resp_b", "item_b")
    await output.write(np.full(FRAME_SAMPLES, 0.2, dtype=np.float32))
    output.next_frame()
    assert output.played_ms() == 0.0
    mixed = output.next_frame()
    assert np.all(mixed[:480] == np.float32(0.1)) and np.all(mixed[480:] == np.float32(0.2))
    assert output.played_ms() == pytest.approx(10.0)
    assert [(e.type, e.response_id) for e in events] == [
        ("output_audio_buffer.started", "resp_a"),
        ("output_audio_buffer.stopped", "resp_a"),
        ("output_audio_buffer.started", "resp_b"),
    ]


async def test_output_pause_sends_silence_and_keeps_the_queue() -> None:
    heard: list[tuple[int, float]] = []
    output = WebRTCAudioOutput(ServerEvents(lambda _: None), clock=VirtualClock(7.0))
    output.set_monitor(lambda samples, at: heard.append((samples.size, at)))
    output.begin("resp_1", "item_1")
    await output.write(tone(0.06))
    output.next_frame()
    output.pause()
    assert np.all(output.next_frame() == 0.0)
    assert output.played_ms() == pytest.approx(20.0) and output.queued_ms == pytest.approx(40.0)
    output.resume()
    assert np.any(output.next_frame() != 0.0)
    assert output.played_ms() == pytest.approx(40.0)
    assert heard == [(FRAME_SAMPLES, 7.0), (FRAME_SAMPLES, 7.0)]  # silence is not reported


# --- frames and the paced track --------------------------------------------------------------


def test_frame_to_mono_averages_interleaved_stereo() -> None:
    stereo = np.zeros((1, 2 * 960), dtype=np.int16)
    stereo[0, 0::2] = 16384  # left half scale, right silent
    frame = AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = RATE
    mono = frame_to_mono(frame)
    assert mono.shape == (960,) and mono.dtype == np.float32
    assert np.allclose(mono, 0.25)


def test_mono_to_frame_is_48k_s16_with_timestamps() -> None:
    frame = mono_to_frame(np.full(FRAME_SAMPLES, 0.5, dtype=np.float32), pts=1920)
    assert (frame.samples, frame.sample_rate, frame.format.name) == (960, RATE, "s16")
    assert frame.layout.name == "mono"
    assert frame.pts == 1920 and frame.time_base == fractions.Fraction(1, RATE)
    assert np.allclose(frame_to_mono(frame), 0.5, atol=1e-4)


class VirtualTime:
    """A clock that only moves when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.time = 50.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


async def test_track_paces_frames_in_real_time_and_skips_after_a_stall() -> None:
    output = WebRTCAudioOutput(ServerEvents(lambda _: None), clock=VirtualClock())
    time = VirtualTime()
    track = OutputAudioTrack(output, clock=time)
    frames = [await track.recv() for _ in range(3)]
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert time.sleeps == pytest.approx([0.02, 0.02])
    time.time += 1.0  # the event loop stalled for a second
    late = await track.recv()
    assert late.pts == round(1.04 * 50) * 960
    assert len(time.sleeps) == 2  # no burst, no sleep: the frame is due now


async def test_track_takes_audio_only_when_the_frame_is_due() -> None:
    output = WebRTCAudioOutput(ServerEvents(lambda _: None), clock=VirtualClock())
    output.begin("resp_1", "item_1")
    time = VirtualTime()
    track = OutputAudioTrack(output, clock=time)
    await track.recv()
    await output.write(tone(0.1))
    await output.clear()  # a barge-in between two frames
    frame = await track.recv()
    assert np.all(frame.to_ndarray() == 0)
    assert output.played_ms() == 0.0


# --- a call in process, with fake models ----------------------------------------------------


class ToneTTS(FakeTTS):
    """The fake TTS (a fake), speaking a 440 Hz tone: Opus drops its constant level as DC."""

    async def synthesize(self, *args: Any, **kwargs: Any) -> Float32Array:
        audio = await super().synthesize(*args, **kwargs)
        return tone(len(audio) / self.sample_rate, rate=self.sample_rate)


@contextlib.asynccontextmanager
async def fake_calls(reply: str) -> AsyncIterator[tuple[BoundCalls, set[RealtimeSession]]]:
    """A call manager whose sessions run on fake models; every call is closed at the end."""
    engines = FakeEngines(FakeLLM([reply]))
    engines.tts = engines.voices.tts = ToneTTS()
    settings = Settings(instructions="Be brief.", webrtc_disconnect_s=2.0)

    def make_session(send: Send, output: AudioOutput, clock: Clock) -> RealtimeSession:
        return RealtimeSession(engines, settings, send, clock, output=output)

    sessions: set[RealtimeSession] = set()
    calls = BoundCalls(CallManager(settings, sessions), make_session)
    try:
        yield calls, sessions
    finally:
        await calls.aclose()


class BoundCalls:
    """A CallManager whose calls all get sessions from one factory (as a server's would)."""

    def __init__(self, manager: CallManager, factory: SessionFactory) -> None:
        self.manager = manager
        self.factory = factory

    async def create(self, offer: str) -> tuple[WebRTCCall, str]:
        return await self.manager.create(offer, self.factory)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.manager, name)


def signal_to(calls: CallManager) -> Signal:
    async def signal(offer: str) -> str:
        return (await calls.create(offer))[1]

    return signal


async def push_to_talk_turn(peer: ClientPeer) -> None:
    no_vad = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    peer.send({"type": "session.update", "session": no_vad})
    await peer.wait_for("session.updated")
    # The trailing silence covers the network: the tone is in the server's buffer when
    # speak() returns.
    await peer.speak(np.concatenate([tone(0.6, rate=16000), silence(0.3)]))
    peer.send({"type": "input_audio_buffer.commit"})
    peer.send({"type": "response.create"})


async def test_in_process_call_carries_events_and_audio_and_ends_with_the_peer() -> None:
    async with fake_calls("Hello there, my friend. It is good to hear you today.") as (
        calls,
        sessions,
    ):
        async with client_peer(signal_to(calls)) as peer:
            await peer.wait_for("session.created")
            (session,) = sessions
            (call,) = calls.calls.values()
            await push_to_talk_turn(peer)
            transcript = await peer.wait_for(
                "conversation.item.input_audio_transcription.completed"
            )
            assert transcript["transcript"] == "Hello there."
            started = await peer.wait_for("output_audio_buffer.started")
            heard_from = asyncio.get_running_loop().time()
            done = await peer.wait_for("response.done")
            assert done["response"]["status"] == "completed"
            assert started["response_id"] == done["response"]["id"]
            await peer.wait_for("output_audio_buffer.stopped", timeout=15)
            # Audio travels on the track only, never as deltas on the data channel.
            assert not peer.of_type("response.output_audio.delta")
            assert call.output.played_ms() == pytest.approx(call.output.sent_ms())
            await asyncio.sleep(0.2)  # the last frames in flight
            reply = peer.received_audio(since=heard_from)
            assert len(reply) / RATE > 1.0
            assert rms_dbfs(reply) > -25.0, rms_dbfs(reply)
        # The client went away: the call ends by itself and frees its session.
        async with asyncio.timeout(15):
            await call.wait_closed()
        assert not calls.calls and not sessions
        assert session.busy_tasks == 0
        assert "connection closed" in call.end_reason


async def test_output_audio_buffer_clear_silences_the_call_within_a_frame() -> None:
    async with fake_calls("One two three four five six seven eight nine ten. " * 4) as (
        calls,
        _,
    ):
        async with client_peer(signal_to(calls)) as peer:
            await peer.wait_for("session.created")
            (call,) = calls.calls.values()
            await push_to_talk_turn(peer)
            await peer.wait_for("output_audio_buffer.started")
            await asyncio.sleep(0.4)
            peer.send({"type": "output_audio_buffer.clear"})
            cleared = await peer.wait_for("output_audio_buffer.cleared")
            played = call.output.played_ms()
            done = await peer.wait_for("response.done")
            assert cleared["response_id"] == done["response"]["id"]
            assert done["response"]["status"] == "cancelled"
            await peer.wait_for("conversation.item.truncated")
            assert 0 < played < call.output.sent_ms()
            await asyncio.sleep(0.1)
            assert call.output.queued_ms == 0.0
            assert call.output.played_ms() == played  # not one more sample went out


async def test_a_call_whose_media_stops_is_ended() -> None:
    async with fake_calls("Hi.") as (calls, sessions):
        async with client_peer(signal_to(calls)) as peer:
            await peer.wait_for("session.created")
            (call,) = calls.calls.values()
            await peer.speak(silence(0.2))  # media flows…
            peer.microphone_track.stop()  # …then stops, the connection itself stays up
            async with asyncio.timeout(10):
                await call.wait_closed()
            assert call.end_reason == "no media for 2 s"
            assert not calls.calls and not sessions


async def test_server_shutdown_closes_every_call() -> None:
    async with fake_calls("Hi.") as (calls, sessions):
        async with client_peer(signal_to(calls)) as peer:
            await peer.wait_for("session.created")
            (session,) = sessions
            await calls.aclose()
            assert not calls.calls and not sessions and session.busy_tasks == 0
            async with asyncio.timeout(40):
                await peer.ended.wait()


async def test_an_offer_without_audio_is_refused_and_leaves_nothing_behind() -> None:
    async with fake_calls("Hi.") as (calls, sessions):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        with pytest.raises(OfferError, match="no audio"):
            await calls.create(pc.localDescription.sdp)
        with pytest.raises(OfferError):
            await calls.create("this is not SDP")
        await pc.close()
        assert not calls.calls and not sessions


async def test_hostile_data_channel_messages_get_errors_and_the_call_goes_on() -> None:
    async with fake_calls("Hi.") as (calls, _):
        async with client_peer(signal_to(calls)) as peer:
            await peer.wait_for("session.created")
            (call,) = calls.calls.values()
            hostile: list[str | bytes] = [
                '{"type":"session.update","session":' + "[" * 10_000 + "]" * 10_000 + "}",
                b"\xff\xfe binary garbage",
                '{"type":"\\ud800"}',
                '{"type":"response.create","response":{"max_output_tokens":NaN}}',
            ]
            for message in hostile:
                peer.channel.send(message)
            await peer.wait_for("error", lambda _: len(peer.of_type("error")) == len(hostile))
            codes = [event["error"]["code"] for event in peer.of_type("error")]
            assert codes == ["nesting_too_deep", "invalid_json", "invalid_string", "invalid_json"]
            peer.send({"type": "session.update", "session": {"type": "realtime"}})
            await peer.wait_for("session.updated")
            assert not call.end_reason


async def test_an_offer_without_a_dtls_fingerprint_is_refused() -> None:
    async with fake_calls("Hi.") as (calls, sessions):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        lines = pc.localDescription.sdp.split("\r\n")
        offer = "\r\n".join(line for line in lines if not line.startswith("a=fingerprint"))
        with pytest.raises(OfferError, match="no DTLS fingerprint"):
            await calls.create(offer)
        await pc.close()
        assert not calls.calls and not sessions


# --- a real server, a real clip ----------------------------------------------------------------


def http_signal(server: ServerProcess, responses: list[HttpResponse]) -> Any:
    async def signal(offer: str) -> str:
        response = await http("POST", f"{server.http}/v1/realtime/calls", offer, "application/sdp")
        responses.append(response)
        assert response.status == 201, response.text
        return response.text

    return signal


@pytest.mark.e2e
async def test_signalling_endpoints(server: ServerProcess) -> None:
    base = server.http
    config = await http("GET", f"{base}/v1/realtime/config")
    assert config.json() == {"ice_servers": []}
    wrong = await http("POST", f"{base}/v1/realtime/calls", "v=0", "text/plain")
    assert wrong.status == 415
    assert wrong.json()["error"]["type"] == "invalid_request_error"
    bad = await http("POST", f"{base}/v1/realtime/calls", "nonsense", "application/sdp")
    assert bad.status == 400
    missing = await http("POST", f"{base}/v1/realtime/calls/rtc_nope/hangup", "")
    assert missing.status == 404
    page = await http("GET", f"{base}/")
    assert page.status == 200 and "text/html" in page.headers["content-type"]
    assert server.health()["active_sessions"] == 0


@pytest.mark.e2e
async def test_spoken_turn_over_webrtc(server: ServerProcess, speech: dict[str, Clip]) -> None:
    clip = speech["librivox_sense_sensibility_0890"]
    responses: list[HttpResponse] = []
    async with client_peer(http_signal(server, responses)) as peer:
        (response,) = responses
        assert response.headers["content-type"].startswith("application/sdp")
        call_path = response.headers["location"]
        assert call_path.startswith("/v1/realtime/calls/rtc_")
        await peer.wait_for("session.created")
        assert server.health()["active_sessions"] == 1
        await peer.speak(np.concatenate([silence(0.5), clip.samples, silence(1.5)]))

        transcription = await peer.wait_for("conversation.item.input_audio_transcription.completed")
        wer = word_error_rate(clip.transcript, transcription["transcript"])
        assert wer <= 0.35, (transcription["transcript"], wer)
        started = await peer.wait_for("output_audio_buffer.started", timeout=60)
        heard_from = asyncio.get_running_loop().time()
        done = await peer.wait_for("response.done", timeout=90)
        assert done["response"]["status"] == "completed"
        assert started["response_id"] == done["response"]["id"]
        await peer.wait_for("output_audio_buffer.stopped", timeout=60)
        await asyncio.sleep(0.3)  # the last frames in flight
        audio = peer.received_audio(since=heard_from - 0.5)
        assert len(audio) / RATE > 0.5
        assert rms_dbfs(audio) > -35.0, rms_dbfs(audio)
        assert not peer.of_type("response.output_audio.delta")

    async def freed() -> bool:
        health = await asyncio.to_thread(server.health)
        return bool(health["active_sessions"] == 0 and health["session_tasks"] == 0)

    async with asyncio.timeout(15):
        while True:
            if await freed():
                break
            await asyncio.sleep(0.2)
    assert server.health()["webrtc_calls"] == 0


@pytest.mark.e2e
async def test_hangup_endpoint_ends_the_call(server: ServerProcess) -> None:
    responses: list[HttpResponse] = []
    async with client_peer(http_signal(server, responses)) as peer:
        await peer.wait_for("session.created")
        location = responses[0].headers["location"]
        hung_up = await http("POST", f"{server.http}{location}/hangup", "")
        assert hung_up.status == 200
        async with asyncio.timeout(40):
            await peer.ended.wait()
    health = server.health()
    assert health["active_sessions"] == 0 and health["webrtc_calls"] == 0


@pytest.mark.e2e
async def test_stopping_the_server_ends_its_calls(tmp_path: Path) -> None:
    own = await asyncio.to_thread(start_server, tmp_path, VOICE_SHUTDOWN_DRAIN_S="1")
    try:
        async with client_peer(http_signal(own, [])) as peer:
            await peer.wait_for("session.created")
            assert await asyncio.to_thread(own.stop) == 0
            async with asyncio.timeout(10):
                await peer.ended.wait()  # the server closed the call; no ghost is left
        assert "closing 1 WebRTC call(s)" in own.log()
    finally:
        own.stop()
