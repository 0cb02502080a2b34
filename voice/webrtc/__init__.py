"""WebRTC transport: the Realtime API's ``POST /v1/realtime/calls`` flow over aiortc.

Audio travels on the media track (Opus, 48 kHz) both ways; the Realtime JSON events on
the ``oai-events`` data channel. The session and its pipeline are the same as over the
WebSocket: this package only adapts media and events to them.
"""

from voice.webrtc.calls import CallManager
from voice.webrtc.routes import webrtc_routes

__all__ = ["CallManager", "webrtc_routes"]
