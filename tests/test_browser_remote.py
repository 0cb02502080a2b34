"""The web client in a browser that is not on the server's machine, as far as the server can
tell: headless Chromium opens the page at this machine's non-loopback address, so its
requests come from that address and name it in their Host. The server (single-user, its
key in data/local-api-key) trusts no such browser without a key: the page must ask for
one, keep it out of storage and URLs, and call with a short-lived client secret; a link
carrying a client secret in its fragment must work as well.

Chromium gives the microphone only to secure pages; ``--unsafely-treat-insecure-origin-as-
secure`` stands in for the TLS a real deployment has (docs/webrtc.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import CHROMIUM, chromium_page, inbound_audio
from tests.browser_helpers import write_microphone_wav as write_wav
from tests.conftest import ServerProcess, start_server
from tests.realtime_helpers import silence
from tests.webrtc_helpers import http

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt install chromium)"),
]


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not a loopback one, if it has one."""
    try:
        output = subprocess.run(
            ["hostname", "-I"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in output.split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback and not address.is_link_local:
            return word
    return None


ADDRESS = non_loopback_address()


@pytest.fixture(scope="module")
def lan_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A single-user server listening on every address, its page allowed at ADDRESS."""
    if ADDRESS is None:
        pytest.skip("this machine has no non-loopback IPv4 address (hostname -I)")
    running = start_server(
        tmp_path_factory.mktemp("lan"),
        VOICE_HOST="0.0.0.0",
        VOICE_ALLOWED_ORIGINS=json.dumps([f"http://{ADDRESS}:*"]),
    )
    yield running
    running.stop()


def page_url(server: ServerProcess) -> str:
    return f"http://{ADDRESS}:{server.port}"


def secure_origin_args(server: ServerProcess) -> list[str]:
    return [f"--unsafely-treat-insecure-origin-as-secure={page_url(server)}"]


async def greeted(page: Any) -> None:
    """Maren's greeting is shown and her voice arrives on the call's track."""
    await page.locator(".msg.assistant:not(.pending)").first.wait_for(timeout=60_000)
    async with asyncio.timeout(30):
        while True:
            stats = await inbound_audio(page)
            if stats is not None and stats["totalAudioEnergy"] > 1e-3:
                return
            await asyncio.sleep(0.25)


async def sessions_closed(server: ServerProcess) -> None:
    async with asyncio.timeout(20):
        while True:
            health = await asyncio.to_thread(server.health)
            if health["active_sessions"] == 0 and health["webrtc_calls"] == 0:
                return
            await asyncio.sleep(0.2)


async def test_off_the_servers_machine_the_page_asks_for_a_key_and_calls_with_a_secret(
    lan_server: ServerProcess, tmp_path: Path
) -> None:
    key = lan_server.api_key
    wav = write_wav(tmp_path / "mic.wav", [silence(8.0)])
    sent: list[tuple[str, str, dict[str, str]]] = []
    async with chromium_page(
        wav, tmp_path / "profile", extra_args=secure_origin_args(lan_server)
    ) as page:
        page.on("request", lambda r: sent.append((r.method, r.url, dict(r.headers))))
        await page.goto(page_url(lan_server))
        await page.wait_for_function("window.voiceApp.needsKey", timeout=10_000)
        await page.locator("#sign-in").wait_for(state="visible")

        await page.click("#call-button")  # no key yet: told what to do, nothing is sent
        await page.locator("#alert", has_text="Paste your API key").wait_for(timeout=5_000)
        assert await page.locator("#status").inner_text() == "Ready"

        await page.fill("#key-input", key)
        await page.click("#key-button")
        await page.locator("#companion-select option[value='maren']").wait_for(state="attached")
        await page.locator("#sign-in").wait_for(state="hidden")
        assert await page.input_value("#key-input") == ""
        await page.select_option("#companion-select", "maren")
        await page.click("#call-button")
        await page.locator("#status", has_text="In call").wait_for(timeout=20_000)
        await greeted(page)
        stored = await page.evaluate(
            "localStorage.length + sessionStorage.length + document.cookie.length"
        )
        assert stored == 0
        assert key not in await page.content()
        await page.click("#call-button")  # hang up
        await page.locator("#status", has_text="Ready").wait_for(timeout=5_000)
        errors = [line for line in page.console_lines if line.startswith("pageerror")]
        assert not errors, errors
    await sessions_closed(lan_server)

    def auth(method: str, path: str) -> list[str]:
        return [
            headers.get("authorization", "")
            for m, url, headers in sent
            if m == method and url.split("?")[0] == page_url(lan_server) + path
        ]

    # The key went to the characters list and to mint the call's secret, in headers only;
    # the offer carried the secret, never the key.
    assert auth("GET", "/v1/characters")[-1] == f"Bearer {key}"
    assert auth("POST", "/v1/realtime/client_secrets") == [f"Bearer {key}"]
    (offer,) = auth("POST", "/v1/realtime/calls")
    assert offer.startswith("Bearer ek_") and key not in offer
    assert not [url for _, url, _ in sent if key in url]
    log = lan_server.log()
    assert key not in log and offer.removeprefix("Bearer ") not in log
    assert "refused 421" not in log  # a remote browser is not a rebinding page: plain 401s


async def test_a_link_with_a_client_secret_calls_without_any_key(
    lan_server: ServerProcess, tmp_path: Path
) -> None:
    minted = await http(
        "POST", f"{lan_server.http}/v1/realtime/client_secrets",
        json.dumps({"session": {"type": "realtime", "character": "maren"}}), "application/json",
        key=lan_server.api_key,
    )  # fmt: skip
    assert minted.status == 200, minted.text
    secret = minted.json()["value"]
    wav = write_wav(tmp_path / "mic.wav", [silence(8.0)])
    async with chromium_page(
        wav, tmp_path / "profile", extra_args=secure_origin_args(lan_server)
    ) as page:
        await page.goto(f"{page_url(lan_server)}/#client_secret={secret}")
        await page.wait_for_function("window.voiceApp.needsKey", timeout=10_000)
        assert await page.evaluate("location.hash") == ""  # out of the address bar at once
        assert await page.locator("#sign-in").is_hidden()
        await page.click("#call-button")
        await page.locator("#status", has_text="In call").wait_for(timeout=20_000)
        await greeted(page)  # the secret's session: Maren, who greets first
        await page.click("#call-button")
    await sessions_closed(lan_server)
