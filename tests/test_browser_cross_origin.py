"""Other web sites, in a real browser, against a real server: what they try must fail.

Headless Chromium resolves ``evil.example`` to 127.0.0.1 (``--host-resolver-rules``), so a
second local HTTP server stands in for a hostile site on an origin outside the defaults,
``http://evil.example:OTHERPORT``. From its page, without a key: a WebSocket to the
server, ``fetch`` of ``/v1/memory`` and a WebRTC offer. Then the DNS-rebinding shape: the
same name on the server's own port, where the browser treats the server as same-origin
with the attacker's page. And the web client at ``http://127.0.0.1:PORT/`` still works.

What the page observed is asserted (WebSocket close codes, statuses, error codes); where
the browser hides a cross-origin answer from the page (a failed CORS check looks the same
whatever the server said), the server's log shows it refused the request, and why.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.asgi_helpers import serve
from tests.browser_helpers import CHROMIUM, chromium_page
from tests.browser_helpers import write_microphone_wav as write_wav
from tests.conftest import ServerProcess
from tests.realtime_helpers import silence

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt install chromium)"),
]

RESOLVE_EVIL = "--host-resolver-rules=MAP evil.example 127.0.0.1"

#: Runs in a page: a WebSocket, two fetches and a WebRTC offer, reporting what the page saw.
PROBE_JS = """async ({base, wsUrls}) => {
  const openSocket = (url) => new Promise((resolve) => {
    let socket;
    try { socket = new WebSocket(url); } catch (e) { resolve(`threw ${e.name}`); return; }
    socket.onopen = () => { resolve("open"); socket.close(); };
    socket.onclose = (e) => resolve(`closed ${e.code}`);
  });
  const request = async (url, init) => {
    try {
      const response = await fetch(url, {cache: "no-store", ...init});
      const text = await response.text();
      let code = null;
      try { code = JSON.parse(text).error.code; } catch { /* not an error body */ }
      return {status: response.status, code, location: response.headers.get("Location"),
              body: text.slice(0, 3)};
    } catch (e) {
      return {error: e.name};
    }
  };
  const pc = new RTCPeerConnection();
  pc.addTransceiver("audio");
  pc.createDataChannel("oai-events");
  await pc.setLocalDescription(await pc.createOffer());
  const offer = pc.localDescription.sdp;
  pc.close();
  return {
    sockets: await Promise.all(wsUrls.map(openSocket)),
    memory: await request(`${base}/v1/memory`),
    characters: await request(`${base}/v1/characters`),
    offer: await request(`${base}/v1/realtime/calls`, {
      method: "POST", headers: {"Content-Type": "application/sdp"}, body: offer,
    }),
  };
}"""

HOSTILE_PAGE = "<!doctype html><title>A page on another site</title><p>Nothing to see."


async def hostile_page(request: Request) -> HTMLResponse:
    return HTMLResponse(HOSTILE_PAGE)


async def no_sessions_or_calls(server: ServerProcess) -> None:
    async with asyncio.timeout(20):
        while True:
            health = await asyncio.to_thread(server.health)
            if health["active_sessions"] == 0 and health["webrtc_calls"] == 0:
                return
            await asyncio.sleep(0.2)


def refusals_in(log: str, origin: str) -> set[str]:
    """Paths the server logged refusing for ``origin``."""
    pattern = rf"refused 403 (\S+) from 127\.0\.0\.1: origin '{re.escape(origin)}' is not allowed"
    return set(re.findall(pattern, log))


async def test_other_sites_and_rebinding_pages_get_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    port = server.port
    wav = write_wav(tmp_path / "mic.wav", [silence(0.5)])
    hostile = Starlette(routes=[Route("/", hostile_page)])
    async with (
        serve(hostile) as hostile_base,
        chromium_page(wav, tmp_path / "profile", extra_args=[RESOLVE_EVIL]) as page,
    ):
        # 1. A page on another site: http://evil.example:OTHERPORT/.
        other_port = int(hostile_base.rsplit(":", 1)[1])
        evil_origin = f"http://evil.example:{other_port}"
        await page.goto(f"{evil_origin}/")
        assert await page.title() == "A page on another site"
        seen: dict[str, Any] = await page.evaluate(
            PROBE_JS,
            {
                "base": server.http,
                "wsUrls": [
                    f"ws://127.0.0.1:{port}/v1/realtime",
                    f"ws://localhost:{port}/v1/realtime",
                ],
            },
        )
        print(f"\nanother site saw: {seen}")
        assert seen["sockets"] == ["closed 1006", "closed 1006"]  # never opened
        for name in ("memory", "characters", "offer"):
            assert seen[name] == {"error": "TypeError"}, (name, seen[name])  # no data, no call
        refused = refusals_in(server.log(), evil_origin)
        assert {"/v1/realtime", "/v1/memory", "/v1/characters", "/v1/realtime/calls"} <= refused
        await no_sessions_or_calls(server)

        # 2. DNS rebinding: the attacker's name now points at the server itself, so the
        # browser lets the page read the server's answers as its own.
        rebound_origin = f"http://evil.example:{port}"
        await page.goto(f"{rebound_origin}/")
        seen = await page.evaluate(
            PROBE_JS, {"base": "", "wsUrls": [f"ws://evil.example:{port}/v1/realtime"]}
        )
        print(f"rebinding page saw: {seen}")
        assert seen["sockets"] == ["closed 1006"]
        for name in ("memory", "characters"):
            assert (seen[name]["status"], seen[name]["code"]) == (421, "untrusted_host")
        assert (seen["offer"]["status"], seen["offer"]["code"]) == (403, "origin_not_allowed")
        assert "/v1/realtime" in refusals_in(server.log(), rebound_origin)
        await no_sessions_or_calls(server)

        # 3. The web client at the server's own origin still works, without a key.
        await page.goto(server.http)
        await page.locator("#companion-select option[value='maren']").wait_for(state="attached")
        seen = await page.evaluate(
            PROBE_JS, {"base": "", "wsUrls": [f"ws://127.0.0.1:{port}/v1/realtime"]}
        )
        print(f"own page saw: {seen}")
        assert seen["sockets"] == ["open"]
        assert seen["memory"]["status"] == 200 and seen["characters"]["status"] == 200
        offer = seen["offer"]
        assert offer["status"] == 201 and offer["body"] == "v=0", offer
        assert offer["location"].startswith("/v1/realtime/calls/rtc_")
        hung_up = await page.evaluate(
            "async (path) => (await fetch(`${path}/hangup`, {method: 'POST'})).status",
            offer["location"],
        )
        assert hung_up == 200
        await no_sessions_or_calls(server)
