"""One WebRTC call for the bench (aiortc): a paced microphone, events, and the heard reply.

The call is set up as a browser would: an SDP offer with one audio track and the
``oai-events`` data channel is POSTed to ``/v1/realtime/calls`` (with the API key as a
bearer token), and the answer completes it. Server events arrive on the data channel and
are stamped and reduced to observations as over a WebSocket; the reply's audio arrives on
the remote track and is turned into observations by :class:`HeardAudio`. Hanging up
POSTs ``/hangup`` and closes the peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import numpy as np
import pydantic
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from voice.bench.client import CONNECT_TIMEOUT_S, observe, parse_server_event, schema_problem
from voice.bench.timeline import Observation
from voice.bench.transport import (
    CallClosed,
    Clock,
    ObservationLog,
    Predicate,
    ServerUnreachable,
    Target,
    Transport,
)
from voice.bench.webrtc_audio import (
    FramePlan,
    FrameSchedule,
    HeardAudio,
    plan_frames,
    playback_over,
)
from voice.tasks import cancel_and_wait
from voice.webrtc.events import EVENTS_CHANNEL
from voice.webrtc.frames import FRAME_SAMPLES, frame_to_mono, mono_to_frame

T = TypeVar("T")

#: Once playback has stopped, this many more frames are received before the reply's audio
#: counts as all arrived: frames in flight and aiortc's jitter buffer (4 frames) drain.
TAIL_FRAMES = 15


class MicrophoneTrack(MediaStreamTrack):
    """The call's outgoing audio: silence, or the utterance being said, in real time.

    aiortc's sender pulls frames with :meth:`recv`; each waits until its frame is due
    (:class:`FrameSchedule`), then takes the next frame of the current utterance, if any.
    Cancelling ``recv`` is safe: nothing is taken before the wait ends.
    """

    kind = "audio"

    def __init__(
        self,
        clock: Clock,
        *,
        loop_time: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` stamps the marked frame (the bench's clock); the schedule runs on
        ``loop_time`` (default: the event loop's) and waits with ``sleep``."""
        super().__init__()
        self._clock = clock
        self._loop_time = loop_time
        self._sleep = sleep
        self._schedule = FrameSchedule()
        self._pts = 0
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._plan: FramePlan | None = None
        self._index = 0
        self._marked: float | None = None
        self._said: asyncio.Future[float] | None = None

    async def say(self, plan: FramePlan) -> float:
        """Send ``plan`` from the next frame on; the clock when its marked frame was handed
        to the sender. Cancelling stops the utterance (silence follows)."""
        if self._said is not None:
            raise RuntimeError("already saying something")
        if self.readyState != "live":
            raise CallClosed("the call has ended")
        self._plan, self._index, self._marked = plan, 0, None
        self._said = asyncio.get_running_loop().create_future()
        try:
            return await self._said
        finally:
            self._plan, self._said = None, None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._loop_time or asyncio.get_running_loop().time
        delay = self._schedule.next_due(now()) - now()
        if delay > 0:
            await self._sleep(delay)
        plan = self._plan
        if plan is None:
            frame = mono_to_frame(self._silence, self._pts)
        else:
            frame = mono_to_frame(plan.frames[self._index], self._pts)
            if self._index == plan.mark_frame:
                self._marked = self._clock()
            self._index += 1
            if self._index == len(plan.frames):
                self._finish(self._clock() if self._marked is None else self._marked)
        self._pts += FRAME_SAMPLES
        return frame

    def _finish(self, marked: float) -> None:
        self._plan = None
        if self._said is not None and not self._said.done():
            self._said.set_result(marked)

    def stop(self) -> None:
        super().stop()
        if self._said is not None and not self._said.done():
            self._said.set_exception(CallClosed("the call ended while speaking"))


class WebRTCBenchCall:
    """One call: sends client events on the data channel, records server events and the
    audible frames of the reply as observations, says utterances into the microphone.

    It owns the task that receives audio and stops it in :meth:`aclose` (safe twice).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._log = ObservationLog()
        self.schema_errors: list[str] = []
        self.close_reason: str | None = None
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._channel = self._pc.createDataChannel(EVENTS_CHANNEL)
        self._microphone = MicrophoneTrack(clock)
        self._pc.addTrack(self._microphone)
        self._heard = HeardAudio()
        self._opened = asyncio.Event()
        self._frames = 0
        self._frame_arrived = asyncio.Event()
        self._receiver: asyncio.Task[None] | None = None
        self._hangup_url: str | None = None
        self._api_key: str | None = None
        self._closed = False
        self._channel.on("open", self._opened.set)
        self._channel.on("message", self._on_message)
        self._channel.on("close", lambda: self._end("data channel closed by the server"))
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)

    async def connect(self, target: Target) -> None:
        """Offer, answer, and wait until the event channel is open."""
        await self._pc.setLocalDescription(await self._pc.createOffer())
        answer, location = await asyncio.to_thread(
            post_offer, target.calls_url, self._pc.localDescription.sdp, target.api_key
        )
        self._api_key = target.api_key
        if location:
            self._hangup_url = urllib.parse.urljoin(target.calls_url, f"{location}/hangup")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self._opened.wait()
        except (ValueError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc
            raise ServerUnreachable(
                f"WebRTC call to {target.calls_url} not established: {reason}"
            ) from None

    # --- BenchCall ----------------------------------------------------------------------

    async def send(self, event: pydantic.BaseModel) -> None:
        if self._channel.readyState != "open":
            raise CallClosed(self.close_reason or "the event channel is not open")
        self._channel.send(event.model_dump_json(exclude_unset=True))

    async def wait_for(self, predicate: Predicate[T], timeout: float) -> T:
        """The first truthy ``predicate(observations)``, re-checked on each observation.

        Raises ``TimeoutError`` after ``timeout`` seconds and :class:`CallClosed` when the
        call ends first. Cancelling it is safe: nothing is consumed.
        """
        return await self._log.wait_for(predicate, timeout, lambda: self.close_reason)

    @property
    def observations(self) -> list[Observation]:
        return self._log.items

    async def say(self, plan: FramePlan) -> float:
        return await self._microphone.say(plan)

    async def reply_heard(self, response_id: str | None, timeout: float) -> None:
        """Wait until the server has stopped (or cleared) playing ``response_id``, then for
        :data:`TAIL_FRAMES` more frames; gives up quietly after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wait_for(lambda seen: playback_over(seen, response_id), timeout)
                until = self._frames + TAIL_FRAMES
                while self._frames < until and self.close_reason is None:
                    self._frame_arrived.clear()
                    await self._frame_arrived.wait()

    async def aclose(self) -> None:
        """Hang up and release the peer connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._microphone.stop()
        if self._hangup_url is not None:
            await asyncio.to_thread(hang_up, self._hangup_url, self._api_key)
        await cancel_and_wait(self._receiver)
        await self._pc.close()

    # --- peer connection callbacks ------------------------------------------------------

    def _end(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._microphone.stop()
        self._log.wake()
        self._frame_arrived.set()

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state in ("failed", "closed"):
            self._end(f"connection {state}")

    def _on_message(self, message: str | bytes) -> None:
        at = self.clock()
        try:
            event = parse_server_event(message)
        except pydantic.ValidationError as exc:
            self.schema_errors.append(schema_problem(message, exc))
            return
        observation = observe(event, at)
        self._heard.event(observation)
        self._log.add(observation)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._receiver is None:
            self._receiver = asyncio.create_task(self._receive(track), name="bench-rtc-audio")

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            at = self.clock()
            if not isinstance(frame, AudioFrame):
                continue
            heard = self._heard.frame(frame_to_mono(frame), frame.sample_rate, at)
            if heard is not None:
                self._log.add(heard)
            self._frames += 1
            self._frame_arrived.set()


def _auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def post_offer(url: str, offer_sdp: str, api_key: str | None) -> tuple[str, str | None]:
    """POST the SDP offer (blocking); returns the answer and the call's ``Location``.

    Raises :class:`ServerUnreachable` when the server cannot be reached or refuses the
    offer (wrong key, no WebRTC support), with the server's own error message.
    """
    headers = {"Content-Type": "application/sdp", **_auth_headers(api_key)}
    request = urllib.request.Request(url, offer_sdp.encode(), headers, method="POST")
    try:
        with _opener().open(request, timeout=CONNECT_TIMEOUT_S) as response:
            return response.read().decode(), response.headers.get("Location")
    except urllib.error.HTTPError as error:
        raise ServerUnreachable(
            f"{url} refused the call: HTTP {error.code}: {_error_message(error)}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(f"server unreachable at {url}: {reason}") from None


def _error_message(error: urllib.error.HTTPError) -> str:
    body = error.read().decode(errors="replace")
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body[:200] or str(error.reason)
    return str(message)


def hang_up(url: str, api_key: str | None) -> None:
    """POST ``/hangup`` (blocking); failures are ignored: the call may have ended already."""
    request = urllib.request.Request(url, b"", _auth_headers(api_key), method="POST")
    with contextlib.suppress(urllib.error.URLError, OSError), _opener().open(request, timeout=5):
        pass


@contextlib.asynccontextmanager
async def open_webrtc_call(target: Target, clock: Clock) -> AsyncIterator[WebRTCBenchCall]:
    """A new call; hung up on exit, also when the caller is cancelled."""
    call = WebRTCBenchCall(clock)
    try:
        await call.connect(target)
        yield call
    finally:
        await call.aclose()


#: The Realtime protocol over WebRTC: events on a data channel, audio as Opus RTP.
WEBRTC: Transport[FramePlan] = Transport("webrtc", plan_frames, open_webrtc_call)
