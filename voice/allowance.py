"""One call's share of its user's daily allowance (:mod:`voice.usage`): the audio it heard
and spoke and the responses it made are counted, what is left is reported after each
response (``rate_limits.updated``), and when a limit is reached the call is told (an
``error`` event, then the operator's goodbye line, if any, in the companion's voice) and
ends: :attr:`CallAllowance.ending` is set for the transport to close the call. Nothing of
the conversation is lost: the transcript and memory are recorded as in any other end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from voice.protocol import ProtocolError
from voice.response import ResponseRun
from voice.tasks import cancel_and_wait
from voice.usage import Usage, UsageMeter
from voice.wire import ServerEvents

#: The goodbye line may take this long before the call ends anyway.
GOODBYE_TIMEOUT_S = 20.0


class CallAllowance:
    """Counts one call's usage on ``meter`` (``None``: nothing is counted or limited)."""

    def __init__(
        self,
        meter: UsageMeter | None,
        events: ServerEvents,
        *,
        goodbye: str | None,
        speak: Callable[[str], Awaitable[None]],
    ) -> None:
        self._meter = meter
        self._events = events
        self._goodbye = goodbye
        self._speak = speak
        #: Set when the call must end; :attr:`end_reason` says why.
        self.ending = asyncio.Event()
        self.end_reason = ""
        self._farewell: asyncio.Task[None] | None = None

    @property
    def limited(self) -> bool:
        """Whether a limit was reached (the call is ending)."""
        return bool(self.end_reason)

    async def open(self) -> None:
        if self._meter is not None:
            await self._meter.open()

    def heard(self, seconds: float) -> None:
        """Input audio the call received."""
        if self._meter is not None:
            self._meter.add(Usage(audio_in_s=seconds))

    def run_ended(self, run: ResponseRun) -> None:
        """A response ended: count it, report what is left, end the call past a limit."""
        meter = self._meter
        if meter is None:
            return
        report = run.report
        meter.add(
            Usage(
                audio_out_s=run.audio_out_ms / 1000,
                responses=1,
                input_tokens=report.input_tokens or 0,
                output_tokens=report.output_tokens or 0,
            )
        )
        meter.store_soon()
        if meter.limits.any:
            self._events.rate_limits(meter.rate_limits())
        if self.limited:
            return
        reason = meter.reached()
        if reason is None:
            return
        self.end_reason = "daily usage limit reached"
        meter.note_limit_reached()
        self._events.error(
            ProtocolError(
                f"{reason} for today; this call ends now",
                code="usage_limit_reached",
                kind="server_error",
            )
        )
        self._farewell = asyncio.create_task(self._say_goodbye(), name="usage-goodbye")

    async def _say_goodbye(self) -> None:
        try:
            if self._goodbye:
                async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                    await self._speak(self._goodbye)
        except TimeoutError:
            pass
        finally:
            self.ending.set()

    async def aclose(self) -> None:
        """Stop a goodbye in flight and store what was counted."""
        if self._farewell is not None:
            await cancel_and_wait(self._farewell)
        if self._meter is not None:
            await self._meter.aclose()
