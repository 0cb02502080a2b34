"""A sideband WebSocket: ``/v1/realtime?call_id=rtc_…`` joins a live WebRTC call.

As with OpenAI's sideband connections, the caller's own server (a supervisor) watches and
steers a call that a browser or phone holds: from the moment it is attached the socket
receives every server event of the call's session (those the data channel gets), and its
client events go to that same session, in turn with the data channel's and the audio
(through the call's lock). It never starts a session of its own.

Only the call's own user may attach; another user's call id gets the same 404 as one that
never existed, so ids do not leak. When the call ends, the socket is closed (code 1000)
with the reason; when the socket goes away, the call goes on. Its events wait in an
:class:`~voice.outbox.Outbox` of its own: a sideband that stops reading is closed (1008)
and never holds up the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice.auth import accepted_subprotocol, reject_websocket
from voice.config import Settings
from voice.origin import Refusal
from voice.outbox import Outbox
from voice.tasks import first_of
from voice.webrtc.call import WebRTCCall
from voice.webrtc.calls import CallManager

log = logging.getLogger(__name__)

#: How long the events queued for a sideband may take to go out once its call has ended.
DRAIN_S = 2.0


def no_such_call(call_id: str) -> Refusal:
    shown = call_id if len(call_id) <= 64 else call_id[:64] + "…"
    return Refusal(
        404,
        "call_not_found",
        f"no live call with id {shown!r} for this user",
        "sideband for an unknown call",
    )


async def serve_sideband(
    websocket: WebSocket, calls: CallManager, user: str, settings: Settings
) -> None:
    """Attach ``websocket`` (of ``user``, already authenticated) to the call it names."""
    call_id = websocket.query_params.get("call_id", "")
    call = calls.find(call_id, user)
    if call is None:
        await reject_websocket(websocket, no_such_call(call_id))
        return
    not_reading = asyncio.Event()
    outbox = Outbox(
        websocket.send_text, max_bytes=settings.max_send_queue_bytes,
        on_overflow=not_reading.set, name=f"{call.id}-sideband",
    )  # fmt: skip
    detach = call.attach_sideband(outbox.send)  # before the handshake ends: no event missed
    close: tuple[int, str] | None = None
    try:
        await websocket.accept(subprotocol=accepted_subprotocol(websocket))
        outbox.start()
        log.info("sideband attached to call %s", call.id)
        await first_of(_serve_messages(websocket, call, outbox), not_reading.wait(),
                       _call_over(call))  # fmt: skip
        if call.ended:
            close = (1000, f"the call ended: {call.end_reason}"[:120])
        elif outbox.overflowed:
            close = (1008, "send queue full: the client stopped reading its events")
    finally:
        detach()
        if close is not None:
            await outbox.drain(timeout=DRAIN_S)
        await outbox.aclose()
        if close is not None and websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await websocket.close(code=close[0], reason=close[1])
        log.info("sideband of call %s closed", call.id)


async def _call_over(call: WebRTCCall) -> None:
    """Until the call has ended and sent its last events (its session is closed)."""
    await call.wait_ended()
    await call.wait_closed()


async def _serve_messages(websocket: WebSocket, call: WebRTCCall, outbox: Outbox) -> None:
    """The sideband's client events into the call's session, until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        await call.handle_sideband_message(data, outbox.send)
