"""Turn-taking end to end on the real server: echo of the bot's own voice, real interruptions,
backchannels. The client is a simulated phone without echo cancellation (tests/phone_sim.py)
that flushes its audio on ``speech_started``, as Realtime clients do.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Clip, ServerProcess
from tests.phone_sim import LoopbackPhone, Utterance
from tests.realtime_helpers import (
    WIRE_RATE,
    EventLog,
    realtime,
    say_text,
    stream_audio,
)
from voice.audio import resample
from voice.tts import PiperTTS, default_piper_voice

pytestmark = pytest.mark.e2e

STORY = "Tell me a long story about a fox who learns to sail, with many details."


async def ask_for_story(log: EventLog) -> None:
    await say_text(log, STORY)


def to_24k(samples_16k: np.ndarray) -> np.ndarray:
    return resample(samples_16k.astype(np.float32), 16000, WIRE_RATE)


@pytest.mark.parametrize(("delay_ms", "echo_db"), [(40, -10), (120, -18), (200, -25)])
async def test_own_echo_does_not_interrupt_but_the_user_does(
    server: ServerProcess, speech: dict[str, Clip], delay_ms: int, echo_db: float
) -> None:
    clip = speech["ps_goforward"]
    async with realtime(server.ws_base, server.api_key) as log:
        await ask_for_story(log)
        phone = LoopbackPhone(log, delay_ms=delay_ms, echo_db=echo_db)
        run = await phone.run(7.0, [Utterance(at_s=3.5, samples=to_24k(clip.samples))])

        assert run.first_bot_audio_s is not None, "the bot never spoke"
        onset_ms = run.utterance_onsets_s[0] * 1000
        started = log.of_type("input_audio_buffer.speech_started")
        user = [event for event in started if event.audio_start_ms >= onset_ms - 100]
        assert user, ("the user's interruption was not detected", started, onset_ms)
        # The first 3.5 s of the bot echoing back were not taken for the user: echo may
        # pause the bot (the client is told, then speech_stopped), never make a user turn.
        first_user = log.index(user[0])
        echo = [event for event in started if log.index(event) < first_user]
        assert not [
            event
            for event in log.events[:first_user]
            if event.type == "input_audio_buffer.committed"
        ], ("the echo became a user turn", [event.audio_start_ms for event in echo], onset_ms)
        done = await log.wait_for(
            "response.done",
            lambda event: event.response.status == "cancelled",
            after=first_user,
            timeout=30,
        )
        assert done.response.status_details.reason == "turn_detected"


async def test_backchannels_do_not_kill_the_reply(server: ServerProcess) -> None:
    piper = PiperTTS(*default_piper_voice())
    try:
        mm_hmm = resample(await piper.synthesize("Mm-hmm."), piper.sample_rate, WIRE_RATE)
        yeah = resample(await piper.synthesize("Yeah."), piper.sample_rate, WIRE_RATE)
    finally:
        piper.close()
    cough = (np.random.default_rng(7).standard_normal(WIRE_RATE // 6) * 0.1).astype(np.float32)
    async with realtime(server.ws_base, server.api_key) as log:
        await ask_for_story(log)
        phone = LoopbackPhone(log, delay_ms=0, echo_db=None)  # a client with echo cancellation
        run = await phone.run(
            8.0,
            [
                Utterance(at_s=1.5, samples=0.5 * mm_hmm),
                Utterance(at_s=3.5, samples=cough),
                Utterance(at_s=5.0, samples=0.5 * yeah),
            ],
        )
        assert run.first_bot_audio_s is not None
        # Each sound over the bot is told at once (the client flushes its audio) and ends in
        # speech_stopped; none becomes a user turn.
        started = log.of_type("input_audio_buffer.speech_started")
        stopped = log.of_type("input_audio_buffer.speech_stopped")
        assert started, "speech over the bot was not told to the client"
        assert [e.item_id for e in started] == [e.item_id for e in stopped]
        assert not log.of_type("input_audio_buffer.committed")
        # The reply the client knew ends at each; a continuation follows, from the cut clause.
        ids = [event.response.id for event in log.of_type("response.created")]
        for done in log.of_type("response.done"):
            if done.response.status == "cancelled":
                assert done.response.status_details.reason == "turn_detected"
                assert ids.index(done.response.id) + 1 < len(ids), "no continuation followed"
        # The reply kept playing after the last backchannel.
        last_onset_tick = int(run.utterance_onsets_s[-1] * 1000 / 40)
        after = np.concatenate(run.played[last_onset_tick + 25 :])
        assert np.abs(after).max() > 0.01, "the bot stayed silent after the backchannel"


@pytest.mark.parametrize(("delay_ms", "echo_db"), [(40, -10), (120, -18), (200, -25)])
async def test_own_echo_over_the_first_words_after_a_spoken_turn_is_not_a_turn(
    server: ServerProcess, speech: dict[str, Clip], delay_ms: int, echo_db: float
) -> None:
    # The reply to a spoken turn starts in its soft commit, where speech over the bot needs
    # less confidence to count: the bot's own echo must still not become the user's turn.
    async with realtime(server.ws_base, server.api_key) as log:
        await stream_audio(log.connection, speech["ps_goforward"].samples)
        phone = LoopbackPhone(log, delay_ms=delay_ms, echo_db=echo_db)
        run = await phone.run(3.0, [])
        assert run.first_bot_audio_s is not None, "the bot never spoke"
        assert len(log.of_type("input_audio_buffer.committed")) == 1, "the echo became a turn"
