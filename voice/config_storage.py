"""Settings of what is kept: the data folder, characters, users, keys, memory, the database.

One group of fields of :class:`voice.config.Settings`, which reads them (with their
``VOICE_`` names) from the environment and the config file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from voice.memory.crypto import decode_key
from voice.origin import DEFAULT_ALLOWED_ORIGINS, parse_origin_pattern


class StorageSettings(BaseModel):
    """Storage, characters, users and their keys, memory and its database."""

    # --- storage ------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Folder for persistent server data.")

    # --- characters ---------------------------------------------------------------------
    characters_dir: Path = Field(
        Path("characters"),
        description="Folder of character cards (Character Card V2/V3 .json or .png) that "
        "seeds the database at start (a card id the database lacks is added); cards live in "
        "the database from then on, uploads included, so every replica sees them.",
    )
    character_refresh_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often a replica reads the cards other replicas stored (a call "
        "naming a card it does not know looks it up at once).",
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
        description="Without api_keys: a client on this machine that presents no key, names the "
        "server by a loopback address (Host localhost, 127.0.0.1, [::1]) and comes from an "
        "allowed origin or none is the local user (so the browser client at / works on "
        "localhost). Remote clients, and keyless ones under other Host names (421), need the key.",
    )
    allowed_origins: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_ORIGINS),
        description="Web pages (origins) that may use the server from a browser, as JSON in "
        'VOICE_ALLOWED_ORIGINS: ["https://app.example.org", "http://localhost:*"] (a port may '
        "be *). The server's own page is allowed when reached as localhost/127.0.0.1/[::1]; "
        "behind a reverse proxy or on a LAN address, list its public origin. Requests from "
        "other pages (and the 'null' origin) get 403.",
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
    database_connect_timeout_s: float = Field(
        5.0,
        gt=0,
        le=120,
        description="How long a connection to the memory database may take. At start-up an "
        "unreachable database stops the server with a message after about twice this; a "
        "session that starts while it is unreachable starts without memory.",
    )
    database_write_queue: int = Field(
        2000,
        ge=1,
        description="Transcript and memory writes kept in RAM (never on disk) while the "
        "database is unreachable, retried in order with backoff. When full, the oldest is "
        "dropped: logged (ids and counts only) and counted in voice_memory_writes_lost_total.",
    )
    database_write_max_age_s: float = Field(
        600.0,
        gt=0,
        description="A queued write not stored after this long is dropped, logged and counted "
        "in voice_memory_writes_lost_total.",
    )
    database_flush_timeout_s: float = Field(
        10.0,
        ge=0,
        description="At shutdown, how long queued writes may take to be stored; those left "
        "are logged and counted as lost.",
    )

    @field_validator("default_character", mode="before")
    @classmethod
    def _empty_character_is_none(cls, value: object) -> object:
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

    @field_validator("allowed_origins")
    @classmethod
    def _origin_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            parse_origin_pattern(pattern)  # raises ValueError with the reason
        return patterns

    @field_validator("api_keys")
    @classmethod
    def _api_keys_not_blank(cls, keys: dict[str, str]) -> dict[str, str]:
        if any(not key.strip() or not user.strip() for key, user in keys.items()):
            raise ValueError("api_keys may not contain empty keys or user ids")
        return keys
