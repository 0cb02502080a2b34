"""Words over the bot that are its own echo (no I/O; the word check with a fake STT)."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.fakes import FakeSTT, Recorder, VirtualClock
from voice.conversation import Conversation, SpokenSegment
from voice.echo_words import is_own_echo, words_of, words_played
from voice.turns import Action
from voice.user_turns import UserTurns
from voice.wire import ServerEvents

SAID = "Once upon a time, a small fox lived by the sea. She wanted to sail."


def test_words_are_compared_without_case_or_punctuation() -> None:
    assert words_of("It's, a FOX!") == ["it's", "a", "fox"]
    assert words_of("Über den Fluss.") == ["über", "den", "fluss"]
    assert is_own_echo("once upon a time", SAID)
    assert is_own_echo("A small fox lived.", SAID)


def test_the_users_own_words_are_not_echo() -> None:
    assert not is_own_echo("Wait, stop.", SAID)
    assert not is_own_echo("What about the dog?", SAID)  # one word of four is the bot's
    assert not is_own_echo("", SAID)
    assert not is_own_echo("once upon a time", "")


def test_a_mostly_own_sentence_with_a_misheard_word_is_echo() -> None:
    assert is_own_echo("a small box lived by the sea", SAID)  # 6 of 7 words


def test_words_played_are_those_whose_audio_overlaps_the_span() -> None:
    segments = [
        SpokenSegment("one two three four.", 0, 1000),
        SpokenSegment("five six seven eight.", 1000, 2000),
    ]
    assert words_played(segments, 0, 2000) == "one two three four. five six seven eight."
    assert words_played(segments, 900, 1300) == "four. five six"
    assert words_played(segments, 2000, 3000) == ""


class ListenerStub:
    """The parts of a Listener the word check uses (a fake), and what it was told."""

    continues_turn = False

    def __init__(self, *, may_echo: bool) -> None:
        self.may_echo = may_echo
        self.heard: list[str] = []

    def stretch(self, start_ms: int, end_ms: int) -> np.ndarray:
        return np.zeros((end_ms - start_ms) * 16, dtype=np.float32)

    def heard_words(self, generation: int, text: str, end_ms: int) -> list[Action]:
        self.heard.append(text)
        return []


async def words_over_the_bot(heard: str, bot_said: str, *, may_echo: bool = True) -> str:
    """What the turn-taker is told of ``heard`` over the bot after it said ``bot_said``."""
    listener = ListenerStub(may_echo=may_echo)

    async def nothing(*args: object) -> None:
        return None

    clock = VirtualClock()
    turns = UserTurns(
        FakeSTT(heard), listener, Conversation(),  # type: ignore[arg-type]
        ServerEvents(Recorder(clock).send), clock,
        on_guess=lambda generation, text: None, on_actions=nothing, on_transcribed=nothing,
        bot_words=lambda: bot_said,
    )  # fmt: skip
    turns.check_words(0, 600, 1)
    for _ in range(20):
        await asyncio.sleep(0)
    await turns.aclose()
    [told] = listener.heard
    return told


async def test_the_bots_echo_over_it_counts_as_no_words() -> None:
    assert await words_over_the_bot("a small fox lived", SAID) == ""


async def test_the_users_words_over_the_bot_count() -> None:
    assert await words_over_the_bot("Wait, tell me more.", SAID) == "Wait, tell me more."


async def test_a_client_that_cancels_its_echo_is_taken_at_its_word() -> None:
    # The echo guard found no echo from this client: the user repeating the bot is the user.
    said = await words_over_the_bot("a small fox", SAID, may_echo=False)
    assert said == "a small fox"
