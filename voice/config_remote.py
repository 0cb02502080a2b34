"""Settings of remote speech engines: Whisper and voices behind the OpenAI audio API.

One group of fields of :class:`voice.config.Settings`. Unset (the default), speech runs
in-process; set, the server loads no local Whisper (``stt_base_url``) or voice model
(``tts_base_url``) and sends audio and text to that endpoint (another ``voice serve``,
vLLM, speaches, Kokoro-FastAPI...).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator


class RemoteSpeechSettings(BaseModel):
    """Speech to text via ``POST /v1/audio/transcriptions``, text to speech via
    ``POST /v1/audio/speech`` with streamed PCM."""

    stt_base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL (ending in /v1) whose /audio/transcriptions "
        "transcribes the users' turns. Unset: Whisper in this process.",
    )
    stt_api_key: SecretStr | None = Field(None, description="API key of stt_base_url.")
    stt_model: str = Field("whisper-1", description="Model name sent to stt_base_url.")
    stt_timeout_s: float = Field(
        10.0, gt=0, le=300, description="A remote transcription taking longer fails the turn."
    )
    tts_base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL (ending in /v1) whose /audio/speech speaks "
        "every voice (a preset with engine 'remote' names its remote voice; any other preset "
        "is asked for by its own name). Unset: voice models in this process.",
    )
    tts_api_key: SecretStr | None = Field(None, description="API key of tts_base_url.")
    tts_model: str = Field("tts-1", description="Model name sent to tts_base_url.")
    tts_sample_rate: int = Field(
        24000,
        ge=8000,
        le=48000,
        description="Sample rate of the PCM tts_base_url sends (24000 for the OpenAI API and "
        "most servers that copy it).",
    )
    tts_timeout_s: float = Field(
        10.0, gt=0, le=300, description="A clause whose remote speech takes longer fails."
    )
    remote_max_concurrent: int = Field(
        8,
        ge=1,
        le=256,
        description="Requests in flight to each remote speech endpoint; more wait (up to "
        "twice as many, then refused as busy).",
    )

    @field_validator("stt_base_url", "tts_base_url", "stt_api_key", "tts_api_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value
