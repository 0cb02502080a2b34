"""Character cards: parsing and export (Character Card V1, V2 and V3, JSON and PNG), macros,
lorebooks, the prompt built from a card, the card library and its HTTP routes."""

from voice.characters.card import (
    CharacterBook,
    CharacterCard,
    LoreEntry,
    card_from_dict,
    parse_card,
)
from voice.characters.export import to_dict, to_json, to_png
from voice.characters.fields import CardError
from voice.characters.library import CharacterEntry, CharacterLibrary, DuplicateCharacterError
from voice.characters.lorebook import active_entries
from voice.characters.macros import expand
from voice.characters.prompt import build_messages, greetings
from voice.characters.tokens import estimate_tokens

__all__ = [
    "CardError",
    "CharacterBook",
    "CharacterCard",
    "CharacterEntry",
    "CharacterLibrary",
    "DuplicateCharacterError",
    "LoreEntry",
    "active_entries",
    "build_messages",
    "card_from_dict",
    "estimate_tokens",
    "expand",
    "greetings",
    "parse_card",
    "to_dict",
    "to_json",
    "to_png",
]
