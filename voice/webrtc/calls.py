"""The live WebRTC calls of this server process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiortc import RTCIceServer

from voice.capacity import Slot
from voice.config import Settings
from voice.protocol import ServerEvent
from voice.session import RealtimeSession
from voice.webrtc.call import SessionFactory, WebRTCCall

log = logging.getLogger(__name__)


def rtc_ice_servers(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """The configured STUN/TURN servers, as aiortc wants them (none: host candidates only)."""
    return [
        RTCIceServer(
            urls=server["urls"],
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in servers
    ]


class CallManager:
    """Answers offers and owns the resulting calls until they end or the server stops.

    Each call's session is also put in ``sessions`` (the server's registry, for
    ``/health``) while the call lives; the capacity :class:`~voice.capacity.Slot` a call was
    admitted with is released when it has ended.
    """

    def __init__(self, settings: Settings, sessions: set[RealtimeSession]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._ice_servers = rtc_ice_servers(settings.ice_servers)
        self.calls: dict[str, WebRTCCall] = {}
        self._slots: dict[str, Slot] = {}

    async def create(
        self,
        offer_sdp: str,
        session_factory: SessionFactory,
        first_events: Sequence[str] = (),
        slot: Slot | None = None,
    ) -> tuple[WebRTCCall, str]:
        """A new call answering ``offer_sdp`` with a session from ``session_factory``,
        which gets ``first_events`` (JSON text) right after it started.

        The call owns ``slot`` from here on, also when this raises. Raises
        :class:`voice.webrtc.call.OfferError` when the offer cannot be answered.
        """
        try:
            call = WebRTCCall(self._settings, session_factory, self._ice_servers, self._forget)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        if slot is not None:
            self._slots[call.id] = slot
        self.calls[call.id] = call
        self._sessions.add(call.session)
        try:
            answer_sdp = await call.answer(offer_sdp, first_events)
        except BaseException:
            await call.aclose()
            raise
        log.info("call %s answered (session %s)", call.id, call.session.id)
        return call, answer_sdp

    def find(self, call_id: str, user: str) -> WebRTCCall | None:
        """``user``'s live call ``call_id``; ``None`` for an unknown id, another user's call
        (the same answer, so that ids do not leak) or a call that has ended."""
        call = self.calls.get(call_id)
        if call is None or call.user != user or call.ended:
            return None
        return call

    def hang_up(self, call_id: str, user: str) -> bool:
        """End ``user``'s call ``call_id``; ``False`` when they have no such call."""
        call = self.find(call_id, user)
        if call is None:
            return False
        call.hang_up("hung up by the client")
        return True

    async def aclose(
        self, notice: ServerEvent | None = None, reason: str = "closed by the server"
    ) -> None:
        """Close every call (server shutdown): no session outlives the process.

        ``notice`` (the shutdown's ``error`` event) is sent to each client first.
        """
        calls = list(self.calls.values())
        if calls:
            log.info("closing %d WebRTC call(s)", len(calls))
        for call in calls:
            if notice is not None:
                call.events.send(notice)
            call.hang_up(reason)
        await asyncio.gather(*(call.aclose() for call in calls))

    def _forget(self, call: WebRTCCall) -> None:
        self.calls.pop(call.id, None)
        self._sessions.discard(call.session)
        slot = self._slots.pop(call.id, None)
        if slot is not None:
            slot.release()
