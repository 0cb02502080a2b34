"""Headless Debian Chromium, driven by Playwright, with a WAV file as its microphone."""

from __future__ import annotations

import contextlib
import wave
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voice.audio import Float32Array, float_to_pcm16, resample

CHROMIUM = Path("/usr/bin/chromium")
#: Chromium's fake capture device plays WAV files; 48 kHz is what WebRTC uses anyway.
WAV_RATE = 48000
DESKTOP = {"width": 1100, "height": 860}
PHONE = {"width": 390, "height": 844}


def write_microphone_wav(path: Path, parts: Sequence[Float32Array]) -> Path:
    """Concatenate 16 kHz ``parts`` into a 16-bit mono PCM WAV at 48 kHz."""
    samples = resample(np.concatenate(parts).astype(np.float32), 16000, WAV_RATE)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(WAV_RATE)
        wav.writeframes(float_to_pcm16(samples))
    return path


def chromium_args(microphone_wav: Path, *, loop: bool) -> list[str]:
    capture = f"{microphone_wav}{'' if loop else '%noloop'}"
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={capture}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
    ]


@contextlib.asynccontextmanager
async def chromium_page(
    microphone_wav: Path,
    profile_dir: Path,
    *,
    loop: bool = False,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[Any]:
    """A page in a fresh headless Chromium profile whose microphone plays ``microphone_wav``.

    ``extra_args`` go to Chromium as well (e.g. ``--host-resolver-rules``). The page's
    console is kept in ``page.console_lines`` (handy when a test fails).
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*chromium_args(microphone_wav, loop=loop), *extra_args],
            viewport=DESKTOP,
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            lines: list[str] = []
            page.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: lines.append(f"pageerror: {error}"))
            page.console_lines = lines
            yield page
        finally:
            await context.close()


INBOUND_AUDIO_JS = """async () => {
  const pc = window.voiceApp.pc;
  if (!pc) return null;
  let found = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      found = {bytesReceived: s.bytesReceived, totalAudioEnergy: s.totalAudioEnergy,
               audioLevel: s.audioLevel};
    }
  });
  return found;
}"""


async def inbound_audio(page: Any) -> dict[str, float] | None:
    """The call's inbound-rtp audio stats (bytes, total energy, current level)."""
    stats: dict[str, float] | None = await page.evaluate(INBOUND_AUDIO_JS)
    return stats
