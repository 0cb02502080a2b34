"""The operator's daily limits applied: new calls of a user past one are refused, each call
gets a :class:`~voice.usage.UsageMeter`, and ``GET /v1/users/me/usage`` tells a user where
they stand. Counters in ``/metrics`` are totals over every user (never a label per user).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voice.auth import Authenticator
from voice.config import Settings
from voice.memory.database import is_unreachable
from voice.origin import Refusal
from voice.usage import Limits, Usage, UsageMeter, UsageStore, limits_for, seconds_to_midnight

log = logging.getLogger(__name__)

LIMIT_REACHED = "usage_limit_reached"


class UsagePolicy:
    """Daily limits of ``settings`` over the usage in ``store``."""

    def __init__(self, store: UsageStore, settings: Settings, registry: CollectorRegistry):
        self.store = store
        self._default = Limits(
            settings.daily_audio_minutes, settings.daily_responses, settings.daily_tokens
        )
        self._per_user = settings.usage_limits
        self.message = settings.usage_limit_message
        self._audio = Counter(
            "voice_usage_audio_seconds",
            "Audio seconds used, over every user (direction: in, out).",
            ("direction",),
            registry=registry,
        )
        self._responses = Counter(
            "voice_usage_responses", "Responses made, over every user.", registry=registry
        )
        self._tokens = Counter(
            "voice_usage_llm_tokens",
            "LLM tokens used, over every user (kind: input, output).",
            ("kind",),
            registry=registry,
        )
        self.limit_reached = Counter(
            "voice_usage_limit_reached",
            "Calls ended (when=call) "
            "and refused (when=connect) because a user reached a "
            "daily limit.",
            ("when",),
            registry=registry,
        )
        for when in ("call", "connect"):
            self.limit_reached.labels(when)

    def limits(self, user: str) -> Limits:
        return limits_for(user, self._default, self._per_user)

    def meter(self, user: str) -> UsageMeter:
        return UsageMeter(
            self.store,
            user,
            self.limits(user),
            on_counted=self._count,
            on_limit=self.limit_reached.labels("call").inc,
        )

    def _count(self, delta: Usage) -> None:
        if delta.audio_in_s:
            self._audio.labels("in").inc(delta.audio_in_s)
        if delta.audio_out_s:
            self._audio.labels("out").inc(delta.audio_out_s)
        if delta.responses:
            self._responses.inc(delta.responses)
        if delta.input_tokens:
            self._tokens.labels("input").inc(delta.input_tokens)
        if delta.output_tokens:
            self._tokens.labels("output").inc(delta.output_tokens)

    async def admit(self, user: str) -> Refusal | None:
        """Why a new call of ``user`` is refused (a daily limit reached), or ``None``.

        An unreachable database admits the call (its usage is counted once it is back).
        """
        limits = self.limits(user)
        if not limits.any:
            return None
        try:
            used = await self.store.of_day(user)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if not is_unreachable(exc):
                raise
            return None
        reason = limits.reached(used)
        if reason is None:
            return None
        self.limit_reached.labels("connect").inc()
        wait = seconds_to_midnight(self.store.now())
        return Refusal(
            429,
            LIMIT_REACHED,
            f"{reason} for today; it starts again in {_duration(wait)} (at 00:00 UTC)",
            "daily usage limit reached",
            type="rate_limit_error",
            headers=(("Retry-After", str(int(wait))),),
        )

    def routes(self, auth: Authenticator) -> list[Route]:
        """``GET /v1/users/me/usage``: today's usage, the limits and what is left."""

        async def usage(request: Request, user: str) -> Response:
            try:
                used = await self.store.of_day(user)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                if not is_unreachable(exc):
                    raise
                return JSONResponse(
                    {
                        "error": {
                            "message": "the database is unreachable; retry later",
                            "type": "server_error",
                            "code": "database_unavailable",
                        }
                    },
                    status_code=503,
                )
            return JSONResponse(self.report(user, used), headers={"Cache-Control": "no-store"})

        return [Route("/v1/users/me/usage", auth.require_user(usage), methods=["GET"])]

    def report(self, user: str, used: Usage) -> dict[str, Any]:
        limits = self.limits(user)
        reset = seconds_to_midnight(self.store.now())
        return {
            "object": "usage",
            "day": self.store.today().isoformat(),
            "used": used.to_dict(),
            "limits": {
                "audio_minutes": limits.audio_minutes,
                "responses": limits.responses,
                "tokens": limits.tokens,
            },
            "rate_limits": limits.rate_limits(used, reset),
            "limit_reached": limits.reached(used),
            "reset_seconds": reset,
        }


def _duration(seconds: float) -> str:
    hours, minutes = divmod(int(seconds) // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{max(1, minutes)} min"
