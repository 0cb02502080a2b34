"""What the server shares besides the models: users, characters, memories and metrics."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from voice.auth import LOCAL_USER, Authenticator
from voice.characters.library import CharacterLibrary
from voice.characters.shared import SharedLibrary
from voice.companion import Companions
from voice.config import Settings
from voice.engines import Engines
from voice.keyfiles import load_or_create_local_key
from voice.memory.crypto import MemoryCipher, load_memory_key
from voice.memory.database import (
    DatabaseUnavailableError,
    create_engine,
    sqlite_url,
    unreachable_reason,
)
from voice.memory.store import MemoryStore
from voice.memory.write_losses import LOSS_KINDS, LOSS_REASONS
from voice.memory.writer import StoreWriter
from voice.metrics import Metrics
from voice.remote_speech import RemoteSTT
from voice.usage import UsageStore
from voice.usage_policy import UsagePolicy

log = logging.getLogger(__name__)


@dataclass
class Services:
    auth: Authenticator
    library: SharedLibrary
    store: MemoryStore
    writer: StoreWriter
    companions: Companions
    metrics: Metrics
    usage: UsagePolicy

    @classmethod
    async def start(cls, settings: Settings, engines: Engines, store: MemoryStore) -> Services:
        """The rest around an open ``store`` (:func:`open_memory_store`); prunes old transcripts.

        The services own ``store`` from here on, also when this raises.
        """
        try:
            return await cls._start(settings, engines, store)
        except BaseException:
            await store.aclose()
            raise

    @classmethod
    async def _start(cls, settings: Settings, engines: Engines, store: MemoryStore) -> Services:
        auth = authenticator(settings)
        folder = CharacterLibrary(settings.characters_dir, settings.max_card_bytes)
        for name, problem in folder.errors.items():
            log.warning("character card %s was not loaded: %s", name, problem)
        library = SharedLibrary(folder, store.engine, refresh_s=settings.character_refresh_s)
        await library.start()
        try:
            return await cls._with_library(settings, engines, store, auth, library)
        except BaseException:
            await library.aclose()
            raise

    @classmethod
    async def _with_library(
        cls,
        settings: Settings,
        engines: Engines,
        store: MemoryStore,
        auth: Authenticator,
        library: SharedLibrary,
    ) -> Services:
        if settings.default_character and library.get(settings.default_character) is None:
            known = ", ".join(entry.id for entry in library.list()) or "none"
            raise ValueError(
                f"default_character '{settings.default_character}' is not in "
                f"{settings.characters_dir} (available: {known})"
            )
        pruned = await store.prune()
        if pruned:
            log.info("pruned %d transcript lines past their retention", pruned)
        metrics = Metrics()
        writer = StoreWriter(
            store,
            max_pending=settings.database_write_queue,
            max_age_s=settings.database_write_max_age_s,
            flush_timeout_s=settings.database_flush_timeout_s,
            on_lost=metrics.count_lost_writes,
            on_retry=metrics.memory_write_retries.inc,
        )
        metrics.memory_writes_pending.set_function(lambda: writer.pending)
        for kind in LOSS_KINDS:
            for reason in LOSS_REASONS:
                metrics.memory_writes_lost.labels(kind, reason)  # exported from 0 on
        companions = Companions(
            library,
            store,
            engines.llm,
            writer=writer,
            budget_tokens=settings.prompt_budget_tokens,
            memory_every_turns=settings.memory_every_turns,
            default_character=settings.default_character,
            read_timeout_s=2 * settings.database_connect_timeout_s,
        )
        engines.stt.worker.on_wait = metrics.queue_wait.labels("stt").observe
        if isinstance(engines.stt, RemoteSTT):
            engines.stt.on_error = metrics.count_remote_error
        if engines.voices.remote is not None:
            engines.voices.remote.calls.on_error = metrics.count_remote_error
        for tts in engines.voices.engines:
            tts.worker.on_wait = metrics.queue_wait.labels("tts").observe
        if engines.llm_server is not None:
            engines.llm_server.set_on_restart(metrics.llm_server_restarts.inc)
        usage = UsagePolicy(UsageStore(store.engine), settings, metrics.registry)
        return cls(auth, library, store, writer, companions, metrics, usage)

    async def aclose(self) -> None:
        """Store the queued writes (bounded by ``database_flush_timeout_s``), then close."""
        await self.library.aclose()
        await self.writer.aclose()
        await self.store.aclose()


def authenticator(settings: Settings) -> Authenticator:
    """Configured ``api_keys``, or the local key (created on first start) for ``local``."""
    if settings.api_keys:
        return Authenticator(settings.api_keys)
    key = load_or_create_local_key(settings.data_dir)
    return Authenticator({key: LOCAL_USER}, local_key=key, trust_loopback=settings.trust_loopback)


def memory_store(settings: Settings) -> MemoryStore:
    """The store ``settings`` describe; ``create()`` it next, or use :func:`open_memory_store`."""
    url = settings.database_url or sqlite_url(settings.data_dir)
    return MemoryStore(
        create_engine(url, connect_timeout_s=settings.database_connect_timeout_s),
        MemoryCipher(load_memory_key(settings)),
        transcript_retention_days=settings.transcript_retention_days,
    )


async def open_memory_store(settings: Settings) -> MemoryStore:
    """The store ``settings`` describe, its tables created.

    Raises :class:`DatabaseUnavailableError`, naming the database and the reason, when the
    database cannot be reached or refuses the connection; that takes at most about twice
    ``database_connect_timeout_s``.
    """
    store = memory_store(settings)
    try:
        async with asyncio.timeout(2 * settings.database_connect_timeout_s):
            await store.create()
    except Exception as exc:
        await store.aclose()
        if isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
            reason = unreachable_reason(exc, settings.database_connect_timeout_s)
            hint = "; check VOICE_DATABASE_URL" if settings.database_url else ""
            raise DatabaseUnavailableError(
                f"cannot open the memory database ({store.describe()}): {reason}{hint}"
            ) from None
        raise
    return store
