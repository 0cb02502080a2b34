"""One client message into a session, whatever it holds: the rule every transport follows.

A message over the size limit and every client mistake become one ``error`` event; a
failure of the server's own while handling a message is logged (with its traceback, never
the message, which may hold the user's words) and answered with a ``server_error`` event.
Nothing a client sends ends the connection.
"""

from __future__ import annotations

import logging

from voice.protocol import ProtocolError, server_error_event
from voice.session import RealtimeSession
from voice.wire import Send

log = logging.getLogger(__name__)


async def handle_client_message(
    session: RealtimeSession,
    data: str | bytes,
    send: Send,
    *,
    max_bytes: int,
) -> None:
    """Give ``data`` (one WebSocket message or data-channel message) to ``session``.

    Raises nothing but :class:`asyncio.CancelledError` (cancelling it is safe: the session's
    own handlers are written to be cancelled).
    """
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        send(
            ProtocolError(
                f"message of {size} bytes exceeds the limit of {max_bytes} bytes; "
                "send audio in smaller input_audio_buffer.append events",
                code="message_too_large",
            ).to_event()
        )
        return
    try:
        await session.handle_text(data)
    except Exception:
        log.error("session %s: handling a client message failed", session.id, exc_info=True)
        send(server_error_event("the server failed to handle this event; the session goes on"))
