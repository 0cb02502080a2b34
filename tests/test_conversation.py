"""History bookkeeping: what was heard, and the prompt built from the items."""

import dataclasses

from voice.config import Settings
from voice.conversation import Conversation, Item, SpokenSegment, text_heard
from voice.reply_plan import chat_turns, prompt_messages
from voice.session_config import SessionConfig

SEGMENTS = [
    SpokenSegment("Hello there.", 0.0, 1000.0),
    SpokenSegment("I was thinking about the sea today.", 1000.0, 3000.0),
]


def test_nothing_played_means_nothing_heard() -> None:
    assert text_heard(SEGMENTS, 0.0) == ""


def test_whole_segments_played_are_kept() -> None:
    assert text_heard(SEGMENTS, 1000.0) == "Hello there."
    assert text_heard(SEGMENTS, 5000.0) == "Hello there. I was thinking about the sea today."


def test_partial_segment_keeps_a_proportional_share_of_words() -> None:
    heard = text_heard(SEGMENTS, 2000.0)  # half of the second segment
    assert heard.startswith("Hello there. I was")
    assert not heard.endswith("today.")
    words = heard.split()[2:]
    assert 2 <= len(words) <= 5


def test_messages_start_with_instructions_and_keep_the_latest_items() -> None:
    conversation = Conversation()
    for index in range(6):
        role = "user" if index % 2 == 0 else "assistant"
        conversation.add(Item(f"item_{index}", role, text=f"message {index}"))
    conversation.add(Item("item_empty", "assistant", text=""))
    config = dataclasses.replace(
        SessionConfig.defaults(Settings(), voice="joe", character=None, user_name=None),
        instructions="Be kind.",
    )
    messages = prompt_messages(conversation, None, config, history_turns=3, budget_tokens=1536)
    assert messages[0] == {"role": "system", "content": "Be kind."}
    assert [m["content"] for m in messages[1:]] == ["message 3", "message 4", "message 5"]


def test_add_returns_previous_item_id_and_delete_removes() -> None:
    conversation = Conversation()
    assert conversation.add(Item("a", "user", text="hi")) is None
    assert conversation.add(Item("b", "assistant", text="hello")) == "a"
    assert conversation.delete("a")
    assert not conversation.delete("a")
    assert [item.id for item in conversation] == ["b"]


def test_user_pieces_with_nothing_heard_between_are_one_turn() -> None:
    # The user paused, was answered, and went on before a word of the answer was heard:
    # the answer's item is empty, and the two pieces are one user message.
    items = [
        Item("a", "assistant", "Hi, what's up?"),
        Item("u1", "user", "I went to the", from_audio=True),
        Item("r1", "assistant", "", status="incomplete", from_audio=True),
        Item("u2", "user", "  market on Sunday. ", from_audio=True),
        Item("r2", "assistant", "Nice,", status="incomplete", from_audio=True),
        Item("u3", "user", "And bought fish.", from_audio=True),
    ]
    assert chat_turns(items) == [
        {"role": "assistant", "content": "Hi, what's up?"},
        {"role": "user", "content": "I went to the market on Sunday."},
        {"role": "assistant", "content": "Nice,"},  # heard: it stays between the two
        {"role": "user", "content": "And bought fish."},
    ]


def test_typed_user_messages_stay_apart() -> None:
    items = [Item("t", "user", "A long pasted text."), Item("u", "user", "Hi.", from_audio=True)]
    assert len(chat_turns(items)) == 2
