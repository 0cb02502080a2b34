"""The live WebRTC calls of this server process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import RTCIceServer

from voice.config import Settings
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
    ``/health``) while the call lives.
    """

    def __init__(self, settings: Settings, sessions: set[RealtimeSession]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._ice_servers = rtc_ice_servers(settings.ice_servers)
        self.calls: dict[str, WebRTCCall] = {}

    async def create(
        self, offer_sdp: str, session_factory: SessionFactory
    ) -> tuple[WebRTCCall, str]:
        """A new call answering ``offer_sdp`` with a session from ``session_factory``.

        Raises :class:`voice.webrtc.call.OfferError` when the offer cannot be answered.
        """
        call = WebRTCCall(self._settings, session_factory, self._ice_servers, self._forget)
        self.calls[call.id] = call
        self._sessions.add(call.session)
        try:
            answer_sdp = await call.answer(offer_sdp)
        except BaseException:
            await call.aclose()
            raise
        log.info("call %s answered (session %s)", call.id, call.session.id)
        return call, answer_sdp

    def hang_up(self, call_id: str) -> bool:
        """End the call ``call_id``; ``False`` when there is no such call."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        call.hang_up("hung up by the client")
        return True

    async def aclose(self) -> None:
        """Close every call (server shutdown): no session outlives the process."""
        calls = list(self.calls.values())
        if calls:
            log.info("closing %d WebRTC call(s)", len(calls))
        await asyncio.gather(*(call.aclose() for call in calls))

    def _forget(self, call: WebRTCCall) -> None:
        self.calls.pop(call.id, None)
        self._sessions.discard(call.session)
