"""End-of-turn detection on the audio: Smart Turn v3 (ONNX), which hears whether a pause
ends the user's turn or falls inside it.

The model is Daily's Smart Turn v3.2 (BSD-2-Clause), a Whisper-tiny encoder with a
classifier head. Its weights ship inside the ``pipecat-ai`` wheel on PyPI, which the
install puts in the venv without its dependencies (``requirements-models.txt``, pinned
by hash); nothing is imported from pipecat and nothing is downloaded at run time.
Any local copy of the ONNX file works through ``VOICE_TURN_MODEL_PATH``.

Input: the last 8 s of the turn at 16 kHz (zero-padded in front when shorter),
normalized, as 80 Whisper log-mel bins; output: the probability that the turn is
complete. About 30 ms on one core, so it runs on its own model thread.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from voice.audio import Float32Array
from voice.inference import ModelWorker

SAMPLE_RATE = 16000
WINDOW_S = 8
#: Where the model file lies inside the ``pipecat-ai`` distribution.
BUNDLED_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
BUNDLED_DISTRIBUTION = "pipecat-ai"


class TurnModelError(RuntimeError):
    """The end-of-turn model cannot be found or loaded; the message says what to do."""


def default_turn_model_path() -> Path:
    """Smart Turn v3.2 from the installed ``pipecat-ai`` wheel (never imported)."""
    try:
        found = importlib.metadata.distribution(BUNDLED_DISTRIBUTION).locate_file(BUNDLED_FILE)
    except importlib.metadata.PackageNotFoundError:
        raise TurnModelError(
            "no end-of-turn model: install it with `pip install --no-deps -r "
            "requirements-models.txt` (make install does), set VOICE_TURN_MODEL_PATH to a "
            "Smart Turn v3 ONNX file, or turn it off with VOICE_TURN_MODEL=off"
        ) from None
    path = Path(str(found))
    if not path.is_file():
        raise TurnModelError(f"{BUNDLED_DISTRIBUTION} is installed but has no {BUNDLED_FILE}")
    return path


class SmartTurn:
    """One loaded Smart Turn model, shared by every session through its own thread."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        if not path.is_file():
            raise TurnModelError(f"end-of-turn model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise TurnModelError(f"cannot load end-of-turn model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._features = FeatureExtractor(feature_size=80, chunk_length=WINDOW_S)
        self.path = path
        self.worker = ModelWorker("turn")

    def probability(self, audio: Float32Array) -> float:
        """Probability that the turn in ``audio`` (16 kHz, ending now) is complete."""
        size = SAMPLE_RATE * WINDOW_S
        clip = np.asarray(audio[-size:], dtype=np.float32)
        clip = np.pad(clip, (size - clip.size, 0))
        clip = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)
        features = self._features(clip, padding=0, chunk_length=WINDOW_S)
        batch = features[np.newaxis].astype(np.float32)
        (out,) = self._session.run(None, {self._input: batch})[:1]
        return float(np.asarray(out).ravel()[0])

    async def complete(self, audio: Float32Array) -> float:
        """:meth:`probability` on the model's thread."""
        return await self.worker.run(self.probability, audio)

    def close(self) -> None:
        self.worker.close()
