"""The server's one typed configuration object.

Values come from (highest priority first) explicit keyword arguments, environment
variables prefixed ``VOICE_``, a ``.env`` file, and an optional TOML config file named by
``VOICE_CONFIG_FILE``. Every field is documented where it is declared: the network here,
the rest in its group (:mod:`voice.config_speech`, :mod:`voice.config_calls`,
:mod:`voice.config_storage`, :mod:`voice.config_remote`, :mod:`voice.config_usage`).
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

from voice.config_calls import DEFAULT_INSTRUCTIONS, CallSettings
from voice.config_remote import RemoteSpeechSettings
from voice.config_speech import DEFAULT_VOICE_ALIASES, SpeechSettings
from voice.config_storage import StorageSettings
from voice.config_usage import UsageSettings

__all__ = ["DEFAULT_INSTRUCTIONS", "DEFAULT_VOICE_ALIASES", "Settings", "load_settings"]


class Settings(
    SpeechSettings,
    RemoteSpeechSettings,
    CallSettings,
    UsageSettings,
    StorageSettings,
    BaseSettings,
):
    """Server configuration, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="VOICE_", env_file=".env", extra="forbid", validate_default=True
    )

    # --- network -------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP/WebSocket server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 picks a free one).")
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) to serve wss:// and https:// with (voice serve "
        "--tls-cert); needs tls_key_file. Unset: plain ws:// and http://.",
    )
    tls_key_file: Path | None = Field(
        None, description="PEM private key of tls_cert_file (voice serve --tls-key)."
    )

    @field_validator("tls_cert_file", "tls_key_file", mode="before")
    @classmethod
    def _empty_tls_is_none(cls, value: object) -> object:
        return None if value == "" else value

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
