"""Turn-taking rules on scripted timelines: 32 ms VAD windows, virtual time, no sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from voice.endpointing import EndpointingConfig, SpeechStarted, SpeechStopped
from voice.turns import (
    CheckWords,
    CommitTurn,
    DropSpeculative,
    InterruptBot,
    PauseBot,
    ResumeBot,
    StartSpeculative,
    TurnConfig,
    TurnTaker,
    is_meaningful,
    trails_off,
)

W = 32  # ms per VAD window


class Timeline:
    """Feeds windows to a TurnTaker and records (time, action) pairs."""

    def __init__(self, alone: Callable[[], bool] | None = None, **config: object) -> None:
        endpointing = EndpointingConfig(silence_ms=480, min_speech_ms=96)
        self.turns = TurnTaker(TurnConfig(endpointing=endpointing, **config), alone)  # type: ignore[arg-type]
        self.now = 0
        self.log: list[tuple[int, object]] = []

    def feed(self, probability: float, ms: int, *, bot: bool = False) -> None:
        for _ in range(ms // W):
            for action in self.turns.on_vad(probability, self.now, W, bot_audible=bot):
                self.log.append((self.now + W, action))
            self.now += W

    def actions(self) -> list[object]:
        return [action for _, action in self.log]

    def first(self, kind: type) -> tuple[int, object]:
        return next((t, a) for t, a in self.log if isinstance(a, kind))


def test_plain_turn_starts_speculates_and_commits_with_the_guess() -> None:
    line = Timeline(speculative_after_ms=160)
    line.feed(0.0, 320)
    line.feed(0.9, 960)
    line.feed(0.0, 800)
    kinds = [type(a) for a in line.actions()]
    assert kinds == [SpeechStarted, StartSpeculative, SpeechStopped, CommitTurn]
    _, speculative = line.first(StartSpeculative)
    _, commit = line.first(CommitTurn)
    assert isinstance(speculative, StartSpeculative) and isinstance(commit, CommitTurn)
    assert speculative.end_ms == commit.end_ms == 320 + 960
    assert commit.generation == speculative.generation
    # The guess starts 160 ms into the silence, the commit 480 ms in: 320 ms head start.
    assert line.first(CommitTurn)[0] - line.first(StartSpeculative)[0] == 320


def test_speculation_is_dropped_when_the_user_goes_on() -> None:
    line = Timeline(speculative_after_ms=160)
    line.feed(0.9, 640)
    line.feed(0.0, 256)  # a pause: speculation starts
    line.feed(0.9, 640)  # ... but the user continues
    line.feed(0.0, 800)
    speculations = [a for a in line.actions() if isinstance(a, StartSpeculative)]
    assert len(speculations) == 2
    drops = [a for a in line.actions() if isinstance(a, DropSpeculative)]
    assert drops == [DropSpeculative(speculations[0].generation)]
    _, commit = line.first(CommitTurn)
    assert isinstance(commit, CommitTurn)
    assert commit.generation == speculations[1].generation
    assert commit.end_ms == 640 + 256 + 640


def test_a_lone_call_speculates_sooner_and_a_shared_one_at_the_usual_silence() -> None:
    alone = [True]
    line = Timeline(lambda: alone[0], speculative_after_ms=160, speculative_alone_ms=96)
    line.feed(0.9, 640)
    line.feed(0.0, 800)  # alone: the guess starts 96 ms into the silence
    alone[0] = False  # a second call joined
    line.feed(0.9, 640)
    line.feed(0.0, 800)
    starts = [t for t, a in line.log if isinstance(a, StartSpeculative)]
    commits = [t for t, a in line.log if isinstance(a, CommitTurn)]
    assert [commit - start for start, commit in zip(starts, commits, strict=True)] == [384, 320]


def test_no_alone_setting_or_no_speculation_means_no_early_guess() -> None:
    same = Timeline(lambda: True, speculative_after_ms=160)
    off = Timeline(lambda: True, speculative_after_ms=None, speculative_alone_ms=96)
    for line in (same, off):
        line.feed(0.9, 640)
        line.feed(0.0, 800)
    assert line_gap(same) == 320
    assert not any(isinstance(a, StartSpeculative) for a in off.actions())


def line_gap(line: Timeline) -> int:
    """Commit time minus the guess's start."""
    return line.first(CommitTurn)[0] - line.first(StartSpeculative)[0]


def test_speculation_can_be_disabled() -> None:
    line = Timeline(speculative_after_ms=None)
    line.feed(0.9, 640)
    line.feed(0.0, 800)
    _, commit = line.first(CommitTurn)
    assert commit == CommitTurn(640, None)


def test_semantic_hold_extends_the_silence_for_trailing_speech() -> None:
    line = Timeline(speculative_after_ms=160, hold_ms=640)
    line.feed(0.9, 640)
    line.feed(0.0, 192)
    _, speculative = line.first(StartSpeculative)
    assert isinstance(speculative, StartSpeculative)
    line.turns.on_speculative(speculative.generation, "So then I went to the...")
    line.feed(0.0, 480)
    assert not any(isinstance(a, CommitTurn) for a in line.actions()), "no commit at 480 ms"
    line.feed(0.0, 640)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + 480 + 640


def test_semantic_hold_ignores_finished_sentences_and_stale_guesses() -> None:
    line = Timeline(speculative_after_ms=160, hold_ms=640)
    line.feed(0.9, 640)
    line.feed(0.0, 192)
    _, speculative = line.first(StartSpeculative)
    assert isinstance(speculative, StartSpeculative)
    line.turns.on_speculative(speculative.generation + 7, "and then I")  # stale: ignored
    line.turns.on_speculative(speculative.generation, "I like the sea.")
    line.feed(0.0, 320)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + 480


def _guessed(
    line: Timeline, words: str, probability: float | None, *, ready: bool = True
) -> list[object]:
    """Give the current guess its words, the end-of-turn model's verdict, and (``ready``)
    say its reply is held."""
    _, speculative = line.first(StartSpeculative)
    assert isinstance(speculative, StartSpeculative)
    line.turns.on_speculative(speculative.generation, words)
    if probability is not None:
        line.turns.on_turn_model(speculative.generation, probability)
    if ready:
        line.turns.on_ready(speculative.generation)
    actions = line.turns.end_if_due()
    line.log += [(line.now, action) for action in actions]
    return actions


def test_a_turn_both_verdicts_call_finished_ends_after_the_early_silence() -> None:
    line = Timeline(
        speculative_after_ms=96, hold_ms=640, early_silence_ms=192, complete_threshold=0.5
    )
    line.feed(0.9, 640)
    line.feed(0.0, 128)
    assert _guessed(line, "I like the sea.", 0.9) == []  # 128 ms of silence: not yet
    line.feed(0.0, 128)
    commit_time, commit = line.first(CommitTurn)
    assert commit_time == 640 + 192
    assert isinstance(commit, CommitTurn) and commit.end_ms == 640


def test_verdicts_that_come_after_the_early_silence_end_the_turn_at_once() -> None:
    line = Timeline(speculative_after_ms=96, early_silence_ms=192, complete_threshold=0.5)
    line.feed(0.9, 640)
    line.feed(0.0, 256)
    assert not any(isinstance(a, CommitTurn) for a in line.actions())
    actions = _guessed(line, "I like the sea.", 0.9)
    assert [type(a) for a in actions] == [SpeechStopped, CommitTurn]
    assert actions[1] == CommitTurn(640, line.first(StartSpeculative)[1].generation)  # type: ignore[attr-defined]
    line.feed(0.0, 640)
    assert len([a for a in line.actions() if isinstance(a, CommitTurn)]) == 1


@pytest.mark.parametrize(
    ("words", "probability", "ready", "held"),
    [
        ("So then I went to the", 0.9, True, True),
        ("I like the sea.", 0.2, True, True),
        ("I like the sea.", None, True, False),
        ("I like the sea.", 0.9, False, False),
    ],
    ids=["words trail off", "model hears more to come", "no model verdict", "reply not held"],
)
def test_no_early_end_unless_both_call_it_finished_and_the_reply_is_held(
    words: str, probability: float | None, ready: bool, held: bool
) -> None:
    line = Timeline(
        speculative_after_ms=96, hold_ms=640, early_silence_ms=192, complete_threshold=0.5
    )
    line.feed(0.9, 640)
    line.feed(0.0, 128)
    _guessed(line, words, probability, ready=ready)
    line.feed(0.0, 480 + 640 + 64)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + 480 + (640 if held else 0)  # only "unfinished" holds


@pytest.mark.parametrize(
    ("probability", "commit_after"),
    [(0.97, 192), (0.8, 480), (0.3, 480 + 640)],
    ids=["sure: early", "likely: the silence", "unlikely: held"],
)
def test_an_early_threshold_ends_early_only_the_pauses_the_model_is_sure_of(
    probability: float, commit_after: int
) -> None:
    line = Timeline(
        speculative_after_ms=96,
        hold_ms=640,
        early_silence_ms=192,
        complete_threshold=0.5,
        early_threshold=0.95,
    )
    line.feed(0.9, 640)
    line.feed(0.0, 128)
    _guessed(line, "I like the sea.", probability)
    line.feed(0.0, 480 + 640 + 64)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + commit_after


@pytest.mark.parametrize("probability", [0.1, 0.99])
def test_without_a_threshold_the_model_verdict_neither_holds_nor_ends_early(
    probability: float,
) -> None:
    """server_vad: the silence alone ends the turn, whatever the model would say."""
    line = Timeline(speculative_after_ms=96, hold_ms=640, early_silence_ms=192)
    line.feed(0.9, 640)
    line.feed(0.0, 128)
    assert _guessed(line, "I like the sea.", probability) == []
    line.feed(0.0, 480)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + 480


def test_verdicts_of_a_guess_the_user_talked_past_are_ignored() -> None:
    line = Timeline(
        speculative_after_ms=96, hold_ms=640, early_silence_ms=192, complete_threshold=0.5
    )
    line.feed(0.9, 640)
    line.feed(0.0, 128)
    _, first = line.first(StartSpeculative)
    line.feed(0.9, 320)  # the user went on: the guess is dropped
    line.feed(0.0, 128)
    line.turns.on_speculative(first.generation, "I like the sea.")  # type: ignore[attr-defined]
    line.turns.on_turn_model(first.generation, 0.99)  # type: ignore[attr-defined]
    assert line.turns.end_if_due() == []
    line.feed(0.0, 480)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + 128 + 320 + 480


def test_barge_in_pauses_fast_then_interrupts_when_speech_goes_on() -> None:
    line = Timeline(barge_in_onset_ms=64, barge_in_confirm_ms=480)
    line.feed(0.0, 320, bot=True)
    line.feed(0.9, 800, bot=True)
    pause_time, _ = line.first(PauseBot)
    assert pause_time - 320 == 64  # two windows after onset
    interrupt_time, _ = line.first(InterruptBot)
    assert interrupt_time - 320 == 480
    started = [a for a in line.actions() if isinstance(a, SpeechStarted)]
    assert started == [SpeechStarted(320)]  # the onset, reported once
    line.feed(0.0, 800, bot=False)
    assert isinstance(line.actions()[-1], CommitTurn)


@pytest.mark.parametrize("noticed", [False, True], ids=["told-late", "told-at-pause"])
def test_backchannel_over_the_bot_resumes_it(noticed: bool) -> None:
    line = Timeline(barge_in_confirm_ms=600, notice_at_pause=noticed)
    line.feed(0.0, 320, bot=True)
    line.feed(0.9, 256, bot=True)  # "mm-hmm"
    line.feed(0.0, 320, bot=True)
    _, check = line.first(CheckWords)
    assert isinstance(check, CheckWords)
    assert check.start_ms == 320 and check.end_ms == 320 + 256
    assert line.turns.bot_paused
    actions = line.turns.on_words(check.generation, "Mm-hmm.", check.end_ms)
    # A client told of the speech at the pause hears that it stopped.
    assert actions == ([SpeechStopped(check.end_ms)] if noticed else []) + [ResumeBot()]
    assert not line.turns.bot_paused and not line.turns.in_speech


def test_noise_with_no_words_resumes_the_bot() -> None:
    line = Timeline()
    line.feed(0.9, 128, bot=True)
    line.feed(0.0, 128, bot=True)
    _, check = line.first(CheckWords)
    assert isinstance(check, CheckWords)
    assert line.turns.on_words(check.generation, " [coughs]", check.end_ms) == [ResumeBot()]


@pytest.mark.parametrize("noticed", [False, True], ids=["told-late", "told-at-pause"])
def test_short_real_words_over_the_bot_interrupt_and_become_the_turn(noticed: bool) -> None:
    line = Timeline(notice_at_pause=noticed)
    line.feed(0.0, 96, bot=True)
    line.feed(0.9, 320, bot=True)  # "Stop!"
    line.feed(0.0, 128, bot=True)
    _, check = line.first(CheckWords)
    assert isinstance(check, CheckWords)
    actions = line.turns.on_words(check.generation, "Stop!", check.end_ms)
    told_now = [] if noticed else [SpeechStarted(96)]  # else it went with the pause
    assert actions == [
        *told_now,
        InterruptBot(),
        SpeechStopped(check.end_ms),
        CommitTurn(check.end_ms, check.generation),
    ]
    assert [a for a in line.actions() + actions if isinstance(a, SpeechStarted)] == [
        SpeechStarted(96)
    ]


def test_immediate_policy_interrupts_at_onset_and_off_ignores() -> None:
    line = Timeline(barge_in="immediate")
    line.feed(0.9, 128, bot=True)
    assert [type(a) for a in line.actions()] == [SpeechStarted, InterruptBot]

    line = Timeline(barge_in="off")
    line.feed(0.9, 960, bot=True)
    line.feed(0.0, 800, bot=True)
    assert line.actions() == []


def test_bot_finishing_during_overlap_turns_it_into_a_plain_turn() -> None:
    line = Timeline(barge_in_confirm_ms=2000)
    line.feed(0.9, 320, bot=True)
    assert isinstance(line.actions()[-1], PauseBot)
    line.feed(0.9, 320, bot=False)
    assert SpeechStarted(0) in line.actions()
    line.feed(0.0, 640, bot=False)
    assert isinstance(line.actions()[-1], CommitTurn)
    assert not any(isinstance(a, InterruptBot) for a in line.actions())


def test_word_checks_and_trailing_off() -> None:
    assert not is_meaningful("Yeah. Mm-hmm, okay.")
    assert not is_meaningful("M-H-M. Hmmm.")
    assert not is_meaningful("")
    assert is_meaningful("Wait, what?")
    assert trails_off("and then I")
    assert trails_off("So, um,")
    assert trails_off("I went to the...")
    assert not trails_off("I went home.")
    assert not trails_off("")
    assert not trails_off("Mr. John Dashwood had then leisure to consider how")
    assert trails_off("Mr. John Dashwood had then leisure to consider how", unpunctuated=True)
    assert trails_off("Guttenburg, or", unpunctuated=True)
    assert not trails_off("Go forward.", unpunctuated=True)
    assert not trails_off("Where to?", unpunctuated=True)
    assert not trails_off("\u4eca\u65e5\u306f\u3002", unpunctuated=True)  # a CJK full stop
    assert not trails_off("", unpunctuated=True)


def test_a_guess_that_ends_no_sentence_is_held_when_asked() -> None:
    line = Timeline(speculative_after_ms=160, hold_ms=640, hold_unpunctuated=True)
    line.feed(0.9, 640)
    line.feed(0.0, 192)
    _, speculative = line.first(StartSpeculative)
    assert isinstance(speculative, StartSpeculative)
    assert not line.turns.on_speculative(speculative.generation, "He was not an")
    line.feed(0.0, 480 + 640)
    commit_time, _ = line.first(CommitTurn)
    assert commit_time == 640 + 480 + 640


def test_only_a_current_finished_sounding_guess_may_be_answered_early() -> None:
    line = Timeline(speculative_after_ms=160, hold_ms=640)
    line.feed(0.9, 640)
    line.feed(0.0, 192)
    _, speculative = line.first(StartSpeculative)
    assert isinstance(speculative, StartSpeculative)
    generation = speculative.generation
    assert line.turns.is_speculating(generation)
    assert not line.turns.on_speculative(generation + 1, "I like the sea.")  # stale
    assert not line.turns.on_speculative(generation, "")  # nothing heard
    assert not line.turns.on_speculative(generation, "and then I")  # trails off: hold
    assert line.turns.on_speculative(generation, "I like the sea.")
    line.feed(0.9, 96)  # the user goes on
    assert not line.turns.is_speculating(generation)
    assert not line.turns.on_speculative(generation, "I like the sea.")


# --- notice at pause (WebSocket clients flush their audio on speech_started) -----------


def test_noticed_pause_tells_the_client_at_once_and_only_once() -> None:
    line = Timeline(barge_in_onset_ms=64, barge_in_confirm_ms=480, notice_at_pause=True)
    line.feed(0.0, 320, bot=True)
    line.feed(0.9, 800, bot=True)
    (started_at, started), (paused_at, pause) = line.log[0], line.log[1]
    assert started == SpeechStarted(320) and pause == PauseBot(320, noticed=True)
    assert started_at == paused_at == 320 + 64
    assert [a for a in line.actions() if isinstance(a, SpeechStarted)] == [SpeechStarted(320)]
    assert InterruptBot() in line.actions()
    line.feed(0.0, 800, bot=False)
    assert isinstance(line.actions()[-1], CommitTurn)


def test_noticed_speech_resumed_after_a_check_is_not_announced_again() -> None:
    line = Timeline(barge_in_confirm_ms=2000, notice_at_pause=True)
    line.feed(0.9, 128, bot=True)
    line.feed(0.0, 96, bot=True)  # a short stop: the words are being checked
    line.feed(0.9, 320, bot=True)  # ...and the user goes on
    line.feed(0.9, 320, bot=False)  # the bot finished meanwhile
    assert [a for a in line.actions() if isinstance(a, SpeechStarted)] == [SpeechStarted(0)]
    assert [type(a) for a in line.actions()].count(PauseBot) == 1


def _turn_then_reply(line: Timeline, writing_ms: int = 320) -> None:
    """A turn ends; its reply is written for ``writing_ms`` (not audible yet)."""
    line.feed(0.9, 640)
    line.feed(0.0, 512)
    assert isinstance(line.actions()[-1], CommitTurn)
    line.feed(0.0, writing_ms)


def test_speech_over_the_first_bot_audio_after_a_turn_continues_it() -> None:
    line = Timeline(soft_commit_ms=480)
    _turn_then_reply(line)  # the wait for the reply does not count: nothing was heard
    line.feed(0.0, 448, bot=True)
    line.feed(0.9, 96, bot=True)
    assert line.turns.bot_paused and line.turns.continues_turn
    line.feed(0.0, 96, bot=True)
    _, check = line.first(CheckWords)
    assert isinstance(check, CheckWords)
    assert line.turns.continues_turn  # still deciding the same speech
    actions = line.turns.on_words(check.generation, "to the sea", check.end_ms)
    assert isinstance(actions[-1], CommitTurn) and not line.turns.continues_turn


def test_speech_after_the_soft_commit_is_a_remark_on_the_reply() -> None:
    line = Timeline(soft_commit_ms=480)
    _turn_then_reply(line)
    line.feed(0.0, 480, bot=True)  # the window is spent
    line.feed(0.9, 96, bot=True)
    assert line.turns.bot_paused and not line.turns.continues_turn


def test_the_soft_commit_opens_again_after_words_over_the_bot_became_a_turn() -> None:
    line = Timeline(soft_commit_ms=480)
    line.feed(0.0, 320, bot=True)
    line.feed(0.9, 320, bot=True)  # "Stop!" over an old reply: no turn had just ended
    line.feed(0.0, 96, bot=True)
    _, check = line.first(CheckWords)
    assert isinstance(check, CheckWords) and not line.turns.continues_turn
    line.turns.on_words(check.generation, "Stop!", check.end_ms)
    line.feed(0.0, 160, bot=False)
    line.feed(0.0, 160, bot=True)  # the answer to "Stop!" starts
    line.feed(0.9, 96, bot=True)
    assert line.turns.continues_turn


@pytest.mark.parametrize("closed", ["off", "reset"])
def test_no_soft_commit_when_off_or_after_a_reset(closed: str) -> None:
    line = Timeline(soft_commit_ms=None if closed == "off" else 480)
    _turn_then_reply(line)
    if closed == "reset":
        line.turns.reset()
    line.feed(0.0, 64, bot=True)
    line.feed(0.9, 96, bot=True)
    assert line.turns.bot_paused and not line.turns.continues_turn
