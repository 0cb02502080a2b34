"""A WebRTC client that stops reading, run as a child process by tests/test_load_limits.py.

``python -m tests.stalled_peer HTTP_BASE API_KEY`` opens a call, asks for a long text-only
reply and, once the reply's first words have arrived, stops itself (SIGSTOP): from then on
its SCTP stack acknowledges nothing, as a frozen client or a dead network would. The
server keeps writing the reply's events into the data channel; they pile up unsent.
It prints ``stalling`` just before it stops.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request

from tests.webrtc_helpers import ClientPeer

#: A long text-only reply: one small delta per token, a steady stream of events (not one
#: burst) that goes on after the client has stopped.
INSTRUCTIONS = "You are a storyteller. You tell very long, detailed stories."
PROMPT = "Tell me a very long story about a lighthouse keeper and a storm, with many details."


async def stall(base: str, key: str) -> None:
    def post(offer: str) -> str:
        request = urllib.request.Request(
            f"{base}/v1/realtime/calls", offer.encode(), method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(response.read().decode())

    async def signal_offer(offer: str) -> str:
        return await asyncio.to_thread(post, offer)

    peer = ClientPeer()
    await peer.connect(signal_offer)
    await peer.wait_for("session.created")
    peer.send(
        {"type": "session.update", "session": {"type": "realtime", "instructions": INSTRUCTIONS}}
    )
    await peer.wait_for("session.updated")
    peer.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": PROMPT}],
            },
        }
    )
    peer.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    await peer.wait_for("response.output_text.delta", timeout=60)
    print("stalling", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
    await asyncio.sleep(3600)  # never reached while stopped; the test kills us


if __name__ == "__main__":
    asyncio.run(stall(sys.argv[1], sys.argv[2]))
