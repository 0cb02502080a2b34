"""Lorebook triggering and the prompt built from a character card."""

from __future__ import annotations

from typing import Any

import pytest

from voice.characters.card import CharacterBook, CharacterCard, LoreEntry, card_from_dict
from voice.characters.lorebook import DEFAULT_SCAN_DEPTH, active_entries
from voice.characters.prompt import (
    DEFAULT_CHARACTER_PROMPT,
    MESSAGE_OVERHEAD_TOKENS,
    build_messages,
    greetings,
)
from voice.characters.tokens import estimate_tokens


def book(*entries: LoreEntry, **settings: Any) -> CharacterBook:
    return CharacterBook(entries=entries, **settings)


def entry(keys: tuple[str, ...] = ("dragon",), content: str = "", **fields: Any) -> LoreEntry:
    return LoreEntry(
        keys=keys, content=content or f"about {keys[0] if keys else 'nothing'}", **fields
    )


def contents(entries: list[LoreEntry]) -> list[str]:
    return [e.content for e in entries]


# --- lorebook -----------------------------------------------------------------------------


def test_keys_match_case_insensitively_by_default() -> None:
    lore = book(entry(("Dragon",)), entry(("castle",)))
    assert contents(active_entries(lore, ["a DRAGON appears"])) == ["about Dragon"]


def test_case_sensitive_keys() -> None:
    lore = book(entry(("Ada",), case_sensitive=True))
    assert active_entries(lore, ["ada is here"]) == []
    assert len(active_entries(lore, ["Ada is here"])) == 1


def test_regex_keys() -> None:
    lore = book(
        entry((r"\bsea(s)?\b",), content="sea", use_regex=True),
        entry(("/^Storm/",), content="slashed, case-sensitive", use_regex=True),
        entry(("/^storm/i",), content="slashed, i flag", use_regex=True),
        entry(("(unclosed",), content="invalid never matches", use_regex=True),
    )
    assert contents(active_entries(lore, ["storm at SEA"])) == ["sea", "slashed, i flag"]
    assert contents(active_entries(lore, ["seashell"])) == []


def test_constant_entries_are_always_active_and_disabled_never() -> None:
    lore = book(
        entry(("x",), content="constant", constant=True),
        entry(("dragon",), content="disabled", enabled=False),
        entry(("dragon",), content="disabled constant", enabled=False, constant=True),
    )
    assert contents(active_entries(lore, ["a dragon"])) == ["constant"]
    assert contents(active_entries(lore, [])) == ["constant"]


def test_decorators_activate_and_dont_activate() -> None:
    lore = book(
        entry(("dragon",), content="never", decorators=frozenset({"dont_activate"})),
        entry(("zzz",), content="always", decorators=frozenset({"activate"})),
    )
    assert contents(active_entries(lore, ["dragon"])) == ["always"]


def test_selective_entries_need_a_secondary_key() -> None:
    lore = book(entry(("dragon",), selective=True, secondary_keys=("gold", "hoard")))
    assert active_entries(lore, ["a dragon"]) == []
    assert len(active_entries(lore, ["a dragon sleeps on its HOARD"])) == 1
    unselective = book(entry(("dragon",), selective=False, secondary_keys=("gold",)))
    assert len(active_entries(unselective, ["a dragon"])) == 1


def test_empty_keys_and_empty_content_never_match() -> None:
    lore = book(entry(("",), content="empty key"), entry(("dragon",), content="  "))
    assert active_entries(lore, ["dragon"]) == []


def test_only_the_last_scan_depth_texts_are_scanned() -> None:
    lore = book(entry(("dragon",)))
    texts = ["dragon", "a", "b"]
    assert len(active_entries(lore, texts, scan_depth=3)) == 1
    assert active_entries(lore, texts, scan_depth=2) == []
    assert active_entries(lore, texts, scan_depth=0) == []
    assert active_entries(book(entry(("dragon",)), scan_depth=2), texts) == []
    old = ["dragon"] + ["x"] * DEFAULT_SCAN_DEPTH
    assert active_entries(lore, old) == []


def test_entries_come_in_insertion_order() -> None:
    lore = book(
        entry(("a",), content="third", insertion_order=30),
        entry(("a",), content="first", insertion_order=-1),
        entry(("a",), content="second", insertion_order=5),
    )
    assert contents(active_entries(lore, ["a"])) == ["first", "second", "third"]


def test_token_budget_drops_the_least_important_entries() -> None:
    ten_tokens = "x" * 40
    lore = book(
        entry(("a",), content=ten_tokens + "1", insertion_order=1, priority=5),
        entry(("a",), content=ten_tokens + "2", insertion_order=2, priority=1),
        entry(("a",), content=ten_tokens + "3", insertion_order=3, priority=9),
    )
    kept = contents(active_entries(lore, ["a"], token_budget=25))
    assert kept == [ten_tokens + "1", ten_tokens + "3"]
    # The book's own budget applies when it is the smaller one.
    small = book(*lore.entries, token_budget=12)
    assert contents(active_entries(small, ["a"], token_budget=100)) == [ten_tokens + "3"]


def test_no_book_no_lore() -> None:
    assert active_entries(None, ["anything"]) == []


# --- prompt -------------------------------------------------------------------------------


CARD = card_from_dict(
    {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Maren",
            "description": "{{char}} keeps a lighthouse and chats with {{user}}.",
            "personality": "warm",
            "scenario": "Night. <USER> calls <BOT>.",
            "first_mes": "Hello {{user}}!",
            "alternate_greetings": ["Evening, {{user}}.", "  "],
            "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello there.",
            "creator_notes": "SECRET CREATOR NOTE",
            "post_history_instructions": "Reply in {{char}}'s voice, briefly.",
            "system_prompt": "",
        },
    }
)


def turns(count: int, words: int = 10) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn{i} " + "w " * words}
        for i in range(count)
    ]


def total_tokens(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def test_system_message_holds_the_card_memory_facts_and_lore() -> None:
    messages = build_messages(
        CARD,
        user_name="Sam",
        memory_summary="Sam works nights.",
        facts=["likes tea", " "],
        turns=turns(1),
        lore=["{{char}} calls the foghorn 'the old cow'."],
        budget_tokens=2000,
    )
    system = messages[0]["content"]
    assert messages[0]["role"] == "system"
    assert system.startswith("You are Maren, talking with Sam")
    assert "Maren keeps a lighthouse and chats with Sam." in system
    assert "Maren's personality: warm" in system
    assert "Scenario: Night. Sam calls Maren." in system
    assert "Sam: Hi\nMaren: Hello there." in system
    assert "<START>" not in system
    assert "Sam works nights." in system
    assert "- likes tea" in system
    assert "- Maren calls the foghorn 'the old cow'." in system
    assert "{{" not in system


def test_creator_notes_are_never_sent() -> None:
    messages = build_messages(CARD, user_name="Sam", turns=turns(4), budget_tokens=2000)
    assert all("SECRET" not in message["content"] for message in messages)


def test_post_history_instructions_come_last() -> None:
    messages = build_messages(CARD, user_name="Sam", turns=turns(4), budget_tokens=2000)
    assert messages[-1] == {"role": "system", "content": "Reply in Maren's voice, briefly."}
    assert [m["role"] for m in messages[1:-1]] == ["user", "assistant", "user", "assistant"]


def test_oldest_turns_are_dropped_to_fit_the_budget() -> None:
    history = turns(20)
    full = build_messages(CARD, user_name="Sam", turns=history, budget_tokens=100_000)
    budget = total_tokens(full) - 30  # a little less than everything
    messages = build_messages(CARD, user_name="Sam", turns=history, budget_tokens=budget)
    assert total_tokens(messages) <= budget
    kept = messages[1:-1]
    assert 0 < len(kept) < len(history)
    assert kept == history[-len(kept) :]  # the newest ones, in order
    assert messages[0] == full[0]  # the card is untouched


def test_card_over_budget_keeps_the_card_and_the_last_user_turn() -> None:
    history = [*turns(4), {"role": "user", "content": "and now?"}]
    messages = build_messages(CARD, user_name="Sam", turns=history, budget_tokens=10)
    assert messages[0]["content"].startswith("You are Maren")
    assert messages[1:] == [
        {"role": "user", "content": "and now?"},
        {"role": "system", "content": "Reply in Maren's voice, briefly."},
    ]


def test_last_user_turn_is_kept_even_behind_a_newer_turn() -> None:
    history = [
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "x" * 4000},
    ]
    messages = build_messages(CARD, user_name="Sam", turns=history, budget_tokens=400)
    assert [m["content"] for m in messages[1:-1]] == ["question"]


def test_a_real_tokenizer_can_be_passed() -> None:
    def count_words(text: str) -> int:
        return len(text.split())

    def cost(messages: list[dict[str, str]]) -> int:
        return sum(count_words(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    history = turns(10, words=3)  # 4 words + overhead = 8 per turn
    bare = build_messages(
        CARD, user_name="Sam", turns=[], budget_tokens=1, count_tokens=count_words
    )
    budget = cost(bare) + 3 * 8 + 7
    messages = build_messages(
        CARD, user_name="Sam", turns=history, budget_tokens=budget, count_tokens=count_words
    )
    assert cost(messages) <= budget
    assert messages[1:-1] == history[-3:]


@pytest.mark.parametrize(
    ("system_prompt", "expected_start"),
    [
        ("", "You are Maren"),
        ("Be {{char}} for {{user}}.", "Be Maren for Sam."),
        ("{{original}} Also be kind.", "You are Maren"),
    ],
)
def test_card_system_prompt_replaces_the_default(system_prompt: str, expected_start: str) -> None:
    card = card_from_dict({"name": "Maren", "system_prompt": system_prompt})
    system = build_messages(card, user_name="Sam", turns=[], budget_tokens=500)[0]["content"]
    assert system.startswith(expected_start)
    if "{{original}}" in system_prompt:
        assert system.endswith("Also be kind.")
        assert DEFAULT_CHARACTER_PROMPT.split("{{user}}")[1].strip() in system


def test_minimal_card_without_post_history() -> None:
    card: CharacterCard = card_from_dict({"name": "Bo"})
    messages = build_messages(card, user_name="Sam", turns=turns(2), budget_tokens=500)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]


def test_greetings_expand_macros_and_skip_blanks() -> None:
    assert greetings(CARD, user_name="Sam") == ["Hello Sam!", "Evening, Sam."]
