"""A call's fan-out to sideband connections, in process: an aiortc peer on a call whose
session runs on the fakes of tests.fakes (clearly fakes), and sideband sends that only
record. The real WebSocket path is in tests/test_client_secrets_e2e.py."""

from __future__ import annotations

import json
from typing import Any

from tests.test_webrtc import fake_calls, signal_to
from tests.webrtc_helpers import client_peer
from voice.config import Settings


async def test_a_sideband_sees_the_calls_events_steers_it_and_detaches() -> None:
    async with fake_calls("Hello there, my friend.") as (calls, _):
        async with client_peer(signal_to(calls)) as peer:
            await peer.wait_for("session.created")
            (call,) = calls.calls.values()
            assert calls.find(call.id, "local") is call
            assert calls.find(call.id, "someone-else") is None
            assert calls.find("rtc_unknown", "local") is None

            seen: list[Any] = []
            replies: list[Any] = []
            detach = call.attach_sideband(seen.append)
            peer.send({"type": "response.create"})
            done = await peer.wait_for("response.done")
            # The same events, in the same order, as the data channel from then on (the
            # fan-out is synchronous: the sideband had each before the network had it).
            channel = [e["type"] for e in peer.events]
            tail = [e.type for e in seen]
            assert channel[-len(tail) :] == tail
            assert "output_audio_buffer.started" in tail
            assert (
                next(e for e in seen if e.type == "response.done").response.id
                == (done["response"]["id"])
            )

            # Client events from the sideband reach the same session; mistakes about the
            # message itself go back to the sideband only.
            update = {"type": "session.update", "session": {"type": "realtime"}}
            await call.handle_sideband_message(json.dumps(update), replies.append)
            await peer.wait_for("session.updated")
            assert any(e.type == "session.updated" for e in seen)
            too_large = "x" * (Settings.model_fields["max_message_bytes"].default + 1)
            await call.handle_sideband_message(too_large, replies.append)
            assert [e.error.code for e in replies] == ["message_too_large"]

            detach()
            detach()  # safe twice
            count = len(seen)
            peer.send(update)
            await peer.wait_for(
                "session.updated", lambda _: len(peer.of_type("session.updated")) == 2
            )
            assert len(seen) == count  # detached: nothing more
            assert not call.ended
