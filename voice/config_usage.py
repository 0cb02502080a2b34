"""Settings of fair use: daily limits per user (:mod:`voice.usage`).

One group of fields of :class:`voice.config.Settings`. Unset limits are unlimited; usage
is accounted either way (``GET /v1/users/me/usage``, ``/metrics``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

LIMIT_NAMES = ("audio_minutes", "responses", "tokens")


class UsageSettings(BaseModel):
    """Daily allowances per user (UTC days), for every user or per user id."""

    daily_audio_minutes: float | None = Field(
        None,
        gt=0,
        description="Minutes of audio (the user's and the bot's together) one user may use per "
        "UTC day. Unset: no limit.",
    )
    daily_responses: int | None = Field(
        None, ge=1, description="Responses one user may get per UTC day. Unset: no limit."
    )
    daily_tokens: int | None = Field(
        None,
        ge=1,
        description="LLM tokens (prompt and reply) one user may use per UTC day. Unset: no limit.",
    )
    usage_limits: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Limits of particular users, as JSON in VOICE_USAGE_LIMITS: {"alice": '
        '{"audio_minutes": 120, "responses": 500}} (audio_minutes, responses, tokens); the '
        "daily_* settings apply to everything not given.",
    )
    usage_limit_message: str | None = Field(
        None,
        max_length=500,
        description="A line the companion says, in her voice, when a limit is reached, before "
        "the call ends. Unset: the call ends after an error event only.",
    )

    @field_validator("usage_limits")
    @classmethod
    def _known_limits(cls, limits: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for user, own in limits.items():
            unknown = set(own) - set(LIMIT_NAMES)
            if unknown:
                raise ValueError(
                    f"usage_limits[{user!r}]: unknown limit {sorted(unknown)[0]!r} "
                    f"(known: {', '.join(LIMIT_NAMES)})"
                )
            if any(value <= 0 for value in own.values()):
                raise ValueError(f"usage_limits[{user!r}]: limits must be positive")
        return limits

    @field_validator("usage_limit_message", mode="before")
    @classmethod
    def _empty_message_is_none(cls, value: object) -> object:
        return None if value == "" else value
