"""What the server shares besides the models: users, characters, memories and metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from voice.auth import Authenticator
from voice.characters.library import CharacterLibrary
from voice.companion import Companions
from voice.config import Settings
from voice.engines import Engines
from voice.memory.store import MemoryStore
from voice.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class Services:
    auth: Authenticator
    library: CharacterLibrary
    store: MemoryStore
    companions: Companions
    metrics: Metrics

    @classmethod
    async def start(cls, settings: Settings, engines: Engines) -> Services:
        """Open the memory store (creating tables, pruning old transcripts) and the rest."""
        auth = Authenticator.from_settings(settings)
        library = CharacterLibrary(settings.characters_dir, settings.max_card_bytes)
        for name, problem in library.errors.items():
            log.warning("character card %s was not loaded: %s", name, problem)
        if settings.default_character and library.get(settings.default_character) is None:
            known = ", ".join(entry.id for entry in library.list()) or "none"
            raise ValueError(
                f"default_character '{settings.default_character}' is not in "
                f"{settings.characters_dir} (available: {known})"
            )
        store = MemoryStore.from_settings(settings)
        await store.create()
        pruned = await store.prune()
        if pruned:
            log.info("pruned %d transcript lines past their retention", pruned)
        companions = Companions(
            library=library,
            store=store,
            llm=engines.llm,
            budget_tokens=settings.prompt_budget_tokens,
            memory_every_turns=settings.memory_every_turns,
            default_character=settings.default_character,
        )
        metrics = Metrics()
        engines.stt.worker.on_wait = metrics.queue_wait.labels("stt").observe
        for tts in engines.voices.engines:
            tts.worker.on_wait = metrics.queue_wait.labels("tts").observe
        return cls(auth, library, store, companions, metrics)

    async def aclose(self) -> None:
        await self.store.aclose()
