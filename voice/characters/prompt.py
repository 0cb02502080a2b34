"""The chat messages sent to the model for a character. No I/O.

Layout::

    system     card system prompt (or DEFAULT_CHARACTER_PROMPT), description, personality,
               scenario, example dialogue, memory summary, facts, active lore
    user/…     the most recent turns that fit the budget, oldest first
    system     post-history instructions, when the card has them

``creator_notes`` are for people browsing cards and are never sent. Card text goes through
the ``{{char}}``/``{{user}}`` macros; the turns are sent as they are.

Budget: the messages' tokens (``count_tokens`` of each content plus
:data:`MESSAGE_OVERHEAD_TOKENS` each, for the chat template) stay within ``budget_tokens``
by dropping the oldest turns. The system messages are never cut. The most recent user
turn is always kept, so if the card alone exceeds the budget the prompt is the card, that
one turn and the post-history instructions: over budget, but still answerable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from voice.characters.card import CharacterCard
from voice.characters.macros import expand
from voice.characters.tokens import TokenCounter, estimate_tokens

#: Used when the card has no system prompt, and for ``{{original}}`` inside one.
DEFAULT_CHARACTER_PROMPT: Final = (
    "You are {{char}}, talking with {{user}} out loud in a live voice conversation. "
    "Stay in character. Answer in one to three short spoken sentences: no lists, no "
    "markdown, no emoji, no actions or stage directions."
)
#: Tokens a chat template adds around each message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS: Final = 4

_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
_START = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)


def build_messages(
    card: CharacterCard,
    *,
    user_name: str,
    memory_summary: str | None = None,
    facts: Sequence[str] = (),
    turns: Sequence[dict[str, str]],
    lore: Sequence[str] = (),
    budget_tokens: int,
    count_tokens: TokenCounter = estimate_tokens,
) -> list[dict[str, str]]:
    """Chat messages for ``card`` talking with ``user_name`` (see the module docstring).

    ``turns`` are ``{"role", "content"}`` dicts, oldest first; ``lore`` is the content of
    the active lorebook entries (see :func:`voice.characters.lorebook.active_entries`).
    """

    def card_text(text: str) -> str:
        return expand(text, char=card.display_name, user=user_name).strip()

    def cost(content: str) -> int:
        return count_tokens(content) + MESSAGE_OVERHEAD_TOKENS

    system = _system_text(card, card_text, user_name, memory_summary, facts, lore)
    post_history = card_text(card.post_history_instructions)
    remaining = budget_tokens - cost(system) - (cost(post_history) if post_history else 0)
    kept = _recent_turns(turns, remaining, lambda turn: cost(turn["content"]))

    messages = [{"role": "system", "content": system}]
    messages.extend({"role": turn["role"], "content": turn["content"]} for turn in kept)
    if post_history:
        messages.append({"role": "system", "content": post_history})
    return messages


def greetings(card: CharacterCard, *, user_name: str) -> list[str]:
    """The card's greetings with macros expanded: ``first_mes`` first, then the alternates."""
    texts = [card.first_mes, *card.alternate_greetings]
    return [
        expand(text, char=card.display_name, user=user_name).strip()
        for text in texts
        if text.strip()
    ]


def _system_text(
    card: CharacterCard,
    card_text: Callable[[str], str],
    user_name: str,
    memory_summary: str | None,
    facts: Sequence[str],
    lore: Sequence[str],
) -> str:
    prompt = card.system_prompt.strip() or DEFAULT_CHARACTER_PROMPT
    prompt = _ORIGINAL.sub(lambda _: DEFAULT_CHARACTER_PROMPT, prompt)
    sections = [card_text(prompt), card_text(card.description)]
    if personality := card_text(card.personality):
        sections.append(f"{card.display_name}'s personality: {personality}")
    if scenario := card_text(card.scenario):
        sections.append(f"Scenario: {scenario}")
    if examples := card_text(_START.sub("", card.mes_example)):
        sections.append(
            f"Examples of how {card.display_name} talks (style only, not part of this "
            f"conversation):\n{examples}"
        )
    if memory_summary and memory_summary.strip():
        sections.append(
            f"Earlier conversations with {user_name}, in brief: {memory_summary.strip()}"
        )
    if facts := [fact.strip() for fact in facts if fact.strip()]:
        sections.append(f"What you know about {user_name}:\n" + _bullets(facts))
    if lore_texts := [text for text in (card_text(entry) for entry in lore) if text]:
        sections.append("Background:\n" + _bullets(lore_texts))
    return "\n\n".join(section for section in sections if section)


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _recent_turns(
    turns: Sequence[dict[str, str]],
    budget: int,
    cost: Callable[[dict[str, str]], int],
) -> list[dict[str, str]]:
    """The newest turns that fit ``budget``, oldest first; the last user turn always."""
    last_user = next((i for i in range(len(turns) - 1, -1, -1) if turns[i]["role"] == "user"), None)
    if last_user is not None:
        budget -= cost(turns[last_user])
    start = len(turns)
    for index in range(len(turns) - 1, -1, -1):
        if index == last_user:
            start = index
            continue
        turn_cost = cost(turns[index])
        if turn_cost > budget:
            break
        budget -= turn_cost
        start = index
    kept = list(turns[start:])
    if last_user is not None and last_user < start:
        kept.insert(0, turns[last_user])
    return kept
