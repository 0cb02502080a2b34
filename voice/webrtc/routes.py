"""HTTP signalling for WebRTC calls, shaped like the OpenAI Realtime API's.

``POST /v1/realtime/calls`` takes the SDP offer as the body (``application/sdp``) and
answers ``201`` with the SDP answer and ``Location: /v1/realtime/calls/{call_id}``;
``POST /v1/realtime/calls/{call_id}/hangup`` ends a call; ``GET /v1/realtime/config``
tells a browser client which STUN/TURN servers to use.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from voice.auth import unauthorized_response
from voice.config import Settings
from voice.webrtc.call import OfferError, SessionFactory
from voice.webrtc.calls import CallManager

#: SDP offers are a few kilobytes; anything much larger is not one.
MAX_OFFER_BYTES = 64 * 1024


def webrtc_routes(
    calls: CallManager,
    settings: Settings,
    *,
    identify: Callable[[Request], str | None],
    session_factory: Callable[[Request, str], SessionFactory],
) -> list[BaseRoute]:
    """The signalling routes, serving calls from ``calls``.

    ``identify`` names the request's user (``None``: 401); ``session_factory`` makes the
    session of that user's call (character and name may come from the query string).
    """

    async def create_call(request: Request) -> Response:
        user = identify(request)
        if user is None:
            return unauthorized_response()
        factory = session_factory(request, user)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            return _error(415, "send the SDP offer as the body with Content-Type: application/sdp")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_OFFER_BYTES:
                return _error(413, f"an SDP offer may be at most {MAX_OFFER_BYTES} bytes")
        try:
            call, answer = await calls.create(body.decode("utf-8"), factory)
        except (OfferError, UnicodeDecodeError) as exc:
            return _error(400, str(exc), code="invalid_offer")
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call.id}"},
        )

    async def hang_up(request: Request) -> Response:
        if identify(request) is None:
            return unauthorized_response()
        call_id = request.path_params["call_id"]
        if not calls.hang_up(call_id):
            return _error(404, f"no call with id '{call_id}'", code="call_not_found")
        return JSONResponse({})

    async def client_config(request: Request) -> Response:
        return JSONResponse({"ice_servers": settings.ice_servers})

    return [
        Route("/v1/realtime/calls", create_call, methods=["POST"]),
        Route("/v1/realtime/calls/{call_id}/hangup", hang_up, methods=["POST"]),
        Route("/v1/realtime/config", client_config, methods=["GET"]),
    ]


def _error(status: int, message: str, *, code: str = "invalid_request_error") -> JSONResponse:
    """An OpenAI-style error body."""
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status_code=status,
    )
