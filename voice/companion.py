"""Who the session talks to: a character card, her memory of this user, and the prompt.

:class:`Companions` holds what all sessions share (the character library, the memory
store, the model used to write memories). :meth:`Companions.open` gives one session its
:class:`Companion`: the card, the user's name, and a :class:`SessionMemory` scoped to
(user, character); it builds the chat messages for each reply and records finished turns.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from voice.characters.card import CharacterCard
from voice.characters.library import CharacterLibrary
from voice.characters.lorebook import active_entries
from voice.characters.prompt import build_messages, greetings
from voice.characters.shared import SharedLibrary
from voice.memory.extract import CompletionModel
from voice.memory.recorder import Recollection, SessionMemory
from voice.memory.store import MemoryStore
from voice.memory.writer import StoreWriter

DEFAULT_USER_NAME = "User"


class UnknownCharacterError(LookupError):
    def __init__(self, character_id: str, known: Sequence[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown character '{character_id}'; available: {listing}")


class Companions:
    """Shared by all sessions: characters, memories, and the model that writes memories.

    ``writer`` is the process's queue of durable writes to ``store``; the server passes
    the one its memory routes delete from. Without one, these companions get their own.
    """

    def __init__(
        self,
        library: CharacterLibrary | SharedLibrary,
        store: MemoryStore,
        llm: CompletionModel,
        *,
        writer: StoreWriter | None = None,
        budget_tokens: int = 1536,
        memory_every_turns: int = 8,
        default_character: str | None = None,
        read_timeout_s: float = 10.0,
    ) -> None:
        if writer is not None and writer.store is not store:
            raise ValueError("the writer must write to the companions' store")
        self.library = library
        self.store = store
        self.llm = llm
        self.writer = writer if writer is not None else StoreWriter(store)
        self.budget_tokens = budget_tokens
        self.memory_every_turns = memory_every_turns
        self.default_character = default_character
        self.read_timeout_s = read_timeout_s

    def card(self, character_id: str) -> CharacterCard:
        entry = self.library.get(character_id)
        if entry is None:
            raise UnknownCharacterError(character_id, [e.id for e in self.library.list()])
        return entry.card

    async def open(
        self,
        character_id: str,
        *,
        user_id: str,
        session_id: str,
        user_name: str | None = None,
    ) -> Companion:
        """The companion for one session; raises :class:`UnknownCharacterError`.

        An unreachable database does not fail it: the companion starts without memory.
        """
        await self.library.find(character_id)  # another replica's upload is looked up
        card = self.card(character_id)
        name = user_name or DEFAULT_USER_NAME
        memory = SessionMemory(
            self.llm,
            self.writer,
            user_id=user_id,
            character_id=character_id,
            session_id=session_id,
            every_turns=self.memory_every_turns,
            user_name=user_name,
            read_timeout_s=self.read_timeout_s,
        )
        recollection = await memory.recall()
        return Companion(character_id, card, name, memory, recollection, self.budget_tokens)


class Companion:
    """One session's character, with what she remembers of this user."""

    def __init__(
        self,
        character_id: str,
        card: CharacterCard,
        user_name: str,
        memory: SessionMemory,
        recollection: Recollection,
        budget_tokens: int,
    ) -> None:
        self.character_id = character_id
        self.card = card
        self.user_name = user_name
        self.memory = memory
        self.recollection = recollection
        self.budget_tokens = budget_tokens

    @property
    def voice(self) -> str | None:
        """The voice preset the card asks for (``extensions.voice``), if any."""
        return self.card.voice

    def greeting(self, rng: random.Random | None = None) -> str | None:
        """``first_mes`` or one of the alternate greetings, macros expanded."""
        options = [text for text in greetings(self.card, user_name=self.user_name) if text]
        if not options:
            return None
        return (rng or random.Random()).choice(options)

    def messages(
        self, turns: Sequence[dict[str, str]], extra_instructions: str = ""
    ) -> list[dict[str, str]]:
        """The prompt: card, memory, active lore and the most recent turns within budget."""
        lore = [entry.content for entry in active_entries(
            self.card.character_book, [turn["content"] for turn in turns]
        )]  # fmt: skip
        messages = build_messages(
            self.card,
            user_name=self.user_name,
            memory_summary=self.recollection.summary,
            facts=self.recollection.facts,
            turns=turns,
            lore=lore,
            budget_tokens=self.budget_tokens,
        )
        if extra_instructions.strip():
            messages.insert(1, {"role": "system", "content": extra_instructions.strip()})
        return messages

    async def record(self, role: str, text: str) -> None:
        """A finished turn (as heard), for the transcript and the next memory update."""
        await self.memory.add_turn(role, text)

    async def aclose(self) -> None:
        """Fold the session into memory (bounded in time). Safe to call twice."""
        await self.memory.aclose()
