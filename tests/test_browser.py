"""The web client in a real browser: headless Chromium calls a real server over WebRTC.

Chromium's fake microphone plays a real clip from ``../shared/speech``; the page must show
the user's words, play the companion's reply, and measure its response time.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import CHROMIUM, PHONE, chromium_page, inbound_audio
from tests.browser_helpers import write_microphone_wav as write_wav
from tests.conftest import REPO, Clip, ServerProcess
from tests.realtime_helpers import silence, word_error_rate
from voice.characters.macros import expand

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt install chromium)"),
]

ARTIFACTS = REPO / "artifacts"
CLIP = "librivox_sense_sensibility_0890"
#: Over Opus and the browser's audio processing, Whisper tiny.en still gets most words.
MAX_WER = 0.35


#: Sent through the page's own call before the words start: short replies, quick tests.
BRIEF_REPLIES_JS = """() => window.voiceApp.call.send({
  type: "session.update",
  session: {type: "realtime", instructions: "Answer in one short sentence."},
})"""


async def user_transcript(page: Any, timeout_s: float = 60) -> str:
    bubble = page.locator(".msg.user:not(.pending)").first
    await bubble.wait_for(timeout=timeout_s * 1000)
    text: str = await bubble.inner_text()
    return text


async def assistant_audio_arrives(page: Any) -> dict[str, float]:
    """Wait until the page heard the reply and the RTP stats show audible audio."""
    await page.wait_for_function("window.voiceApp.latencies.length > 0", timeout=120_000)
    await page.locator(".msg.assistant:not(.pending)").first.wait_for(timeout=30_000)
    async with asyncio.timeout(20):  # playout statistics trail the analyser a little
        while True:
            stats = await inbound_audio(page)
            assert stats is not None
            # Audible, and more than the first packets of it (about 0.3 s of Opus).
            if stats["totalAudioEnergy"] > 1e-3 and stats["bytesReceived"] > 5_000:
                return stats
            await asyncio.sleep(0.25)


async def sessions_closed(server: ServerProcess) -> None:
    async with asyncio.timeout(20):
        while True:
            health = await asyncio.to_thread(server.health)
            if health["active_sessions"] == 0 and health["session_tasks"] == 0:
                return
            await asyncio.sleep(0.2)


async def test_hands_free_call_in_chromium(
    server: ServerProcess, speech: dict[str, Clip], tmp_path: Path
) -> None:
    clip = speech[CLIP]
    wav = write_wav(tmp_path / "mic.wav", [silence(1.0), clip.samples, silence(2.0)])
    async with chromium_page(wav, tmp_path / "profile") as page:
        await page.goto(server.http)
        await page.click("#call-button")
        await page.locator("#status", has_text="In call").wait_for(timeout=20_000)
        await page.evaluate(BRIEF_REPLIES_JS)

        heard = await user_transcript(page)
        assert word_error_rate(clip.transcript, heard) <= MAX_WER, heard
        stats = await assistant_audio_arrives(page)  # not just silence: energy > 1e-3
        assert stats["bytesReceived"] > 5_000, stats
        assert await page.locator(".tool").count() == 0  # no tools: no function-call lines
        latency_ms = (await page.evaluate("window.voiceApp.latencies"))[0]
        print(f"\nhands-free: end of speech -> first audio heard {latency_ms:.0f} ms")

        await page.wait_for_function(
            "!document.querySelector('.app').classList.contains('speaking')", timeout=90_000
        )
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "browser-call.png"), full_page=True)
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=str(ARTIFACTS / "browser-call-phone.png"), full_page=True)

        await page.click("#call-button")  # hang up
        await page.locator("#status", has_text="Ready").wait_for(timeout=5_000)
        await sessions_closed(server)


async def test_push_to_talk_in_chromium(
    server: ServerProcess, speech: dict[str, Clip], tmp_path: Path
) -> None:
    clip = speech[CLIP]
    lead_s = 3.0  # the call connects within this; the button is held before the words start
    wav = write_wav(tmp_path / "mic.wav", [silence(lead_s), clip.samples, silence(2.0)])
    async with chromium_page(wav, tmp_path / "profile") as page:
        await page.goto(server.http)
        await page.click("label:has-text('Push to talk')")
        clicked = time.monotonic()  # the fake microphone starts playing with the call
        await page.click("#call-button")
        talk = page.locator("#talk-button")
        await talk.wait_for(state="visible")
        await page.wait_for_function(
            "!document.querySelector('#talk-button').disabled", timeout=20_000
        )
        assert time.monotonic() - clicked < lead_s, "the call took too long to connect"
        await page.evaluate(BRIEF_REPLIES_JS)
        box = await talk.bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await asyncio.sleep(max(0.0, clicked + lead_s + clip.seconds + 0.6 - time.monotonic()))
        await page.mouse.up()

        heard = await user_transcript(page)
        assert word_error_rate(clip.transcript, heard) <= MAX_WER, heard
        await assistant_audio_arrives(page)
        latency_ms = (await page.evaluate("window.voiceApp.latencies"))[0]
        print(f"\npush-to-talk: release -> first audio heard {latency_ms:.0f} ms")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=str(ARTIFACTS / "browser-ptt-phone.png"), full_page=True)
        errors = [line for line in page.console_lines if line.startswith("pageerror")]
        assert not errors, errors
    await sessions_closed(server)  # closing the browser ends the call


async def test_unreachable_server_and_denied_microphone_are_explained(
    server: ServerProcess, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "mic.wav", [silence(0.5)])
    async with chromium_page(wav, tmp_path / "profile") as page:
        await page.goto(server.http)
        await page.route("**/v1/realtime/config", lambda route: route.abort())
        await page.click("#call-button")
        alert = page.locator("#alert")
        await alert.wait_for(state="visible", timeout=10_000)
        assert "cannot be reached" in await alert.inner_text()
        await page.unroute("**/v1/realtime/config")

        await page.evaluate(
            """() => { navigator.mediaDevices.getUserMedia = () =>
                 Promise.reject(new DOMException("denied", "NotAllowedError")); }"""
        )
        await page.click("#call-button")
        await page.locator("#alert", has_text="denied").wait_for(timeout=10_000)
        assert await page.locator("#status").inner_text() == "Ready"


async def test_picked_companion_greets_first(server: ServerProcess, tmp_path: Path) -> None:
    card = json.loads((REPO / "characters" / "maren.json").read_text())["data"]
    wav = write_wav(tmp_path / "mic.wav", [silence(8.0)])
    async with chromium_page(wav, tmp_path / "profile") as page:
        await page.goto(server.http)
        await page.locator("#companion-select option[value='maren']").wait_for(state="attached")
        options = await page.locator("#companion-select option").all_inner_texts()
        assert "Maren" in options, options
        await page.select_option("#companion-select", "maren")
        await page.locator("#companion-note").wait_for()
        await page.click("#call-button")
        greeting = page.locator(".msg.assistant:not(.pending)").first
        await greeting.wait_for(timeout=60_000)
        said = " ".join((await greeting.inner_text()).split())
        greetings = [
            " ".join(expand(text, char="Maren", user="User").split())
            for text in [card["first_mes"], *card["alternate_greetings"]]
        ]
        assert any(said[:20] in text for text in greetings), (said, greetings)
        async with asyncio.timeout(30):  # her voice arrives on the track
            while True:
                stats = await inbound_audio(page)
                if stats is not None and stats["totalAudioEnergy"] > 1e-3:
                    break
                await asyncio.sleep(0.25)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "browser-companion.png"), full_page=True)
        await page.click("#call-button")
    await sessions_closed(server)
