"""HTTP signalling for WebRTC calls, shaped like the OpenAI Realtime API's.

``POST /v1/realtime/calls`` takes the SDP offer as the body (``application/sdp``), or as
the ``sdp`` part of a ``multipart/form-data`` body whose optional ``session`` part (JSON)
configures the session (what ``client.realtime.calls.create(sdp=..., session=...)`` of the
official SDK sends), and answers ``201`` with the SDP answer and
``Location: /v1/realtime/calls/{call_id}``; ``POST /v1/realtime/calls/{call_id}/hangup``
ends one of the caller's calls; ``GET /v1/realtime/config`` tells a browser client which
STUN/TURN servers to use. Both POSTs take an API key or a client secret; a call opened with
a secret that carries a session configuration starts with it (then with the form's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from voice import json_limits
from voice.auth import Caller, log_refusal, refusal_response
from voice.capacity import Slot
from voice.config import Settings
from voice.origin import Refusal
from voice.protocol import MAX_INT_DIGITS, MAX_JSON_MEMBERS, MAX_NESTING_DEPTH, ProtocolError
from voice.request_body import BadRequest, parse_form, read_body
from voice.session_start import ConflictingStart, SessionChecker, SessionStart, session_start
from voice.webrtc.call import OfferError, SessionFactory
from voice.webrtc.calls import CallManager

#: SDP offers are a few kilobytes; anything much larger is not one.
MAX_OFFER_BYTES = 64 * 1024
#: The ``session`` part of a multipart offer (instructions may be long, not longer).
MAX_SESSION_BYTES = 1024 * 1024
FORM_PARTS = ("sdp", "session")


def webrtc_routes(
    calls: CallManager,
    settings: Settings,
    *,
    identify: Callable[[Request], Caller | Refusal],
    session_factory: Callable[[SessionStart], SessionFactory],
    checker: SessionChecker,
    admit: Callable[[str], Awaitable[Slot | Refusal]] | None = None,
) -> list[BaseRoute]:
    """The signalling routes, serving calls from ``calls``.

    ``identify`` names the request's caller (an API key's user, or a client secret's) or
    why it is refused; ``session_factory`` makes the session of a call that starts so (its
    character and name may come from the query string); ``checker`` checks the ``session``
    part of a multipart offer; ``admit`` gives a new call of that user its capacity slot,
    or refuses it (503, 429: at capacity, or past a daily limit) before anything is made
    for it (``None``: no limit).
    """

    async def create_call(request: Request) -> Response:
        caller = identify(request)
        if isinstance(caller, Refusal):
            return refusal_response(caller)
        try:
            offer, session = await read_offer(request)
            configs: list[dict[str, Any]] = []
            if caller.grant is not None and caller.grant.session is not None:
                configs.append(caller.grant.session)
            if session is not None:
                try:
                    checker.check(session)
                except ProtocolError as error:
                    raise BadRequest(
                        400, error.message, param=error.param, code=error.code
                    ) from None
                configs.append(session)
            try:
                start = session_start(caller.user, request.query_params, configs)
            except ConflictingStart as conflict:
                raise BadRequest(400, str(conflict), param="intent") from None
        except BadRequest as bad:
            return bad.response()
        slot = await admit(caller.user) if admit is not None else None
        if isinstance(slot, Refusal):
            log_refusal(request, slot)
            return refusal_response(slot)
        try:
            call, answer = await calls.create(offer, session_factory(start), start.updates, slot)
        except OfferError as exc:
            return _error(400, str(exc), code="invalid_offer")
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call.id}"},
        )

    async def hang_up(request: Request) -> Response:
        caller = identify(request)
        if isinstance(caller, Refusal):
            return refusal_response(caller)
        call_id = request.path_params["call_id"]
        if not calls.hang_up(call_id, caller.user):  # another user's call: the same 404
            return _error(404, f"no call with id '{call_id}'", code="call_not_found")
        return JSONResponse({})

    async def client_config(request: Request) -> Response:
        return JSONResponse({"ice_servers": settings.ice_servers})

    return [
        Route("/v1/realtime/calls", create_call, methods=["POST"]),
        Route("/v1/realtime/calls/{call_id}/hangup", hang_up, methods=["POST"]),
        Route("/v1/realtime/config", client_config, methods=["GET"]),
    ]


async def read_offer(request: Request) -> tuple[str, Any | None]:
    """The SDP offer and the ``session`` configuration (``None`` if not given) of a request:
    an ``application/sdp`` body, or the ``sdp`` and ``session`` parts of a multipart one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/sdp":
        return _text(await read_body(request, MAX_OFFER_BYTES), "the SDP offer"), None
    if content_type != "multipart/form-data":
        raise BadRequest(
            415,
            "send the SDP offer as the body with Content-Type: application/sdp, or as the "
            "'sdp' part of a multipart/form-data body (with an optional 'session' part)",
        )
    body = await read_body(request, MAX_OFFER_BYTES + MAX_SESSION_BYTES)
    form = await parse_form(
        request, body, max_files=len(FORM_PARTS), max_fields=len(FORM_PARTS),
        max_part_size=MAX_SESSION_BYTES,
    )  # fmt: skip
    parts: dict[str, bytes] = {}
    try:
        for name, value in form.multi_items():
            if name not in FORM_PARTS:
                raise BadRequest(400, f"unknown form part '{name}' (send 'sdp' and 'session')",
                                 param=name)  # fmt: skip
            if name in parts:
                raise BadRequest(400, f"the form part '{name}' is given twice", param=name)
            parts[name] = await value.read() if isinstance(value, UploadFile) else value.encode()
    finally:
        await form.close()
    if "sdp" not in parts:
        raise BadRequest(400, "the form has no 'sdp' part (the SDP offer)", param="sdp")
    if len(parts["sdp"]) > MAX_OFFER_BYTES:
        raise BadRequest(413, f"an SDP offer may be at most {MAX_OFFER_BYTES} bytes", param="sdp")
    offer = _text(parts["sdp"], "the SDP offer")
    if "session" not in parts:
        return offer, None
    try:
        session = json_limits.loads(
            _text(parts["session"], "the session part"), max_depth=MAX_NESTING_DEPTH,
            max_members=MAX_JSON_MEMBERS, max_int_digits=MAX_INT_DIGITS,
        )  # fmt: skip
    except json_limits.JsonLimitError as exc:
        raise BadRequest(400, f"the session part {exc.message}", param="session",
                         code=exc.code) from None  # fmt: skip
    return offer, session


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, f"{what} is not UTF-8 text", code="invalid_offer") from None


def _error(status: int, message: str, *, code: str = "invalid_request_error") -> JSONResponse:
    """An OpenAI-style error body."""
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status_code=status,
    )
