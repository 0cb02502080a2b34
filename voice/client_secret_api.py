"""``POST /v1/realtime/client_secrets``: a short-lived key for a browser or a phone app.

The body is the Realtime API's (what ``client.realtime.client_secrets.create(...)`` of the
official SDK sends): ``expires_after: {"anchor": "created_at", "seconds": N}`` (10 to 7200,
default 600) and an optional ``session`` configuration, checked here as a
``session.update`` would be. The answer is the API's too: ``value`` (``ek_…``),
``expires_at`` (epoch seconds) and the effective ``session``.

Minting needs a real API key (or the keyless local user); a client secret cannot mint
another, so no secret outlives the ``expires_after`` its key holder chose. The secret
itself is never logged and never stored (see :mod:`voice.client_secrets`).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voice.auth import Authenticator
from voice.client_secrets import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S, TooManySecrets
from voice.protocol import ProtocolError
from voice.request_body import BadRequest, read_json_object
from voice.session_start import SessionChecker

log = logging.getLogger(__name__)

#: The secret in the answer: no cache (browser or proxy) may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}
PARAMETERS = ("expires_after", "session")


def client_secret_routes(
    auth: Authenticator, checker: SessionChecker, *, max_body_bytes: int
) -> list[Route]:
    """The route minting client secrets for the callers ``auth`` knows."""

    async def create(request: Request, user: str) -> Response:
        try:
            body = await read_json_object(request, max_body_bytes)
            unknown = sorted(set(body) - set(PARAMETERS))
            if unknown:
                raise BadRequest(400, f"unknown parameter '{unknown[0]}'", param=unknown[0])
            ttl = expiry_seconds(body.get("expires_after"))
            session = body.get("session")
            try:
                described = checker.check({"type": "realtime"} if session is None else session)
            except ProtocolError as error:
                raise BadRequest(400, error.message, param=error.param, code=error.code) from None
            try:
                value, grant = auth.secrets.mint(user, ttl_s=ttl, session=session)
            except TooManySecrets as full:
                raise BadRequest(
                    429, full.message, code="too_many_client_secrets",
                    headers={"Retry-After": str(full.retry_after)},
                ) from None  # fmt: skip
        except BadRequest as bad:
            return bad.response()
        log.info("client secret minted for user %s, valid %d s", user, ttl)
        return JSONResponse(
            {"value": value, "expires_at": int(grant.expires_at), "session": described},
            headers=NO_STORE,
        )

    return [Route("/v1/realtime/client_secrets", auth.require_user(create), methods=["POST"])]


def expiry_seconds(expires_after: object) -> int:
    """``expires_after.seconds`` checked as the Realtime API does; the default when absent."""
    if expires_after is None:
        return DEFAULT_TTL_S
    if not isinstance(expires_after, dict):
        raise BadRequest(400, "expires_after must be an object", param="expires_after")
    unknown = sorted(set(expires_after) - {"anchor", "seconds"})
    if unknown:
        raise BadRequest(400, f"unknown parameter 'expires_after.{unknown[0]}'",
                         param=f"expires_after.{unknown[0]}")  # fmt: skip
    if expires_after.get("anchor", "created_at") != "created_at":
        raise BadRequest(400, "expires_after.anchor must be 'created_at'",
                         param="expires_after.anchor")  # fmt: skip
    seconds = expires_after.get("seconds", DEFAULT_TTL_S)
    if type(seconds) is not int or not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise BadRequest(
            400, f"expires_after.seconds must be an integer from {MIN_TTL_S} to {MAX_TTL_S}",
            param="expires_after.seconds",
        )  # fmt: skip
    return seconds
