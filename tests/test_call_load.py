"""Counting live calls: a lone call may spend the machine's spare cores."""

from __future__ import annotations

from tests.fakes import FakeEngines, FakeLLM, Recorder, VirtualClock
from voice.call_load import CallLoad
from voice.config import Settings
from voice.session import RealtimeSession


def test_alone_until_a_second_call_joins_and_again_once_it_leaves() -> None:
    load = CallLoad()
    changes: list[bool] = []
    load.on_change = changes.append
    first = load.join()
    assert load.alone and load.live == 1
    second = load.join()
    assert not load.alone
    second.leave()
    second.leave()  # safe twice: counted once
    assert load.alone and load.live == 1
    first.leave()
    assert load.live == 0 and load.alone
    assert changes == [False, True]


async def test_a_session_counts_itself_in_until_it_is_closed() -> None:
    engines = FakeEngines(FakeLLM(["Sure."]))
    recorder = Recorder(VirtualClock())
    sessions = [
        RealtimeSession(engines, Settings(), recorder.send, recorder.clock) for _ in range(2)
    ]
    assert engines.calls.live == 2 and not engines.calls.alone
    await sessions[0].aclose()
    await sessions[0].aclose()
    assert engines.calls.live == 1 and engines.calls.alone
    await sessions[1].aclose()
    assert engines.calls.live == 0
