"""The things an app does with a Realtime client, checked the same way for every client.

(a) connect with the library's default session; (b) a spoken turn; (c) push-to-talk; (d)
barge-in, and a backchannel over the bot that does not interrupt; (e) a function tool the
library runs itself. Each takes a
:class:`~tests.client_drivers.ClientDriver` and asserts on the server events the client
received and on the library's own events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.client_drivers import ClientDriver, Event, audio_bytes, pcm_of
from tests.conftest import Clip
from tests.realtime_helpers import WIRE_RATE, silence, word_error_rate
from voice.audio import Float32Array

#: Whisper tiny.en on a clean read sentence, loose: the point is "the user's words".
USER_WORDS_MAX_WER = 0.5
STORY = "Tell me a long story about a dragon and a baker, with many details."
#: The user's request for the weather tool, and what the client's tool answers (fixed).
WEATHER_REQUEST = "What's the weather like in Paris today?"
FORECAST = "Sunny, 24 degrees Celsius, with a light breeze."
#: A ``tool_choice`` naming the weather function, for one ``response.create``.
FORCE_WEATHER = {"type": "function", "name": "get_weather"}


async def settle(driver: ClientDriver) -> Event:
    """Wait until the library's default ``session.update`` was answered; the sentinel's reply.

    The server answers client events in order: ``session.created`` comes first, then the
    answer (``session.updated`` or ``error``) to the library's own ``session.update``; a
    ``input_audio_buffer.clear`` sent after that is answered after everything the library
    sent on connecting.
    """
    created = await driver.server.wait_for("session.created", timeout=30)
    if driver.sends_session_update:
        after = driver.server.index(created) + 1
        await driver.server.wait_for(("session.updated", "error"), after=after, timeout=30)
    await driver.send_raw({"type": "input_audio_buffer.clear"})
    return await driver.server.wait_for("input_audio_buffer.cleared", timeout=30)


def errors(driver: ClientDriver, until: Event | None = None) -> list[Event]:
    events = driver.server.events
    end = driver.server.index(until) + 1 if until is not None else len(events)
    return [event for event in events[:end] if event.get("type") == "error"]


async def default_session_accepted(driver: ClientDriver) -> None:
    """(a) Everything the library sends on connecting, with its defaults, is accepted."""
    cleared = await settle(driver)
    if driver.sends_session_update:
        assert driver.server.of_type("session.updated"), driver.server.summary()
    assert not errors(driver, cleared), driver.server.summary()


async def spoken_turn(driver: ClientDriver, clip: Clip) -> Event:
    """(b) The user speaks (real speech, real time); the reply comes back as audio."""
    await settle(driver)
    start = len(driver.server.events)
    await driver.stream(np.concatenate([silence(0.3), clip.samples, silence(1.5)]))
    transcribed = await driver.server.wait_for(
        "conversation.item.input_audio_transcription.completed", after=start, timeout=60
    )
    assert word_error_rate(clip.transcript, transcribed["transcript"]) <= USER_WORDS_MAX_WER, (
        transcribed["transcript"]
    )
    created = await driver.server.wait_for("response.created", after=start, timeout=60)
    response_id = created["response"]["id"]
    done = await driver.server.wait_for(
        "response.done", lambda e: e["response"]["id"] == response_id, after=start, timeout=120
    )
    assert done["response"]["status"] == "completed", done["response"]
    assert audio_bytes(driver.server, response_id) / (2 * WIRE_RATE) > 0.5
    return done


async def push_to_talk(driver: ClientDriver, clip: Clip) -> Event:
    """(c) Turn detection off; audio, commit and ``response.create`` at once: the reply
    is made from the user's words (their transcript exists before ``response.created``)."""
    await settle(driver)
    start = len(driver.server.events)
    await driver.push_to_talk(pcm_of(clip.samples))
    committed = await driver.server.wait_for("input_audio_buffer.committed", after=start)
    created = await driver.server.wait_for("response.created", after=start, timeout=60)
    transcribed = driver.server.find(
        "conversation.item.input_audio_transcription.completed",
        lambda e: e["item_id"] == committed["item_id"],
        after=start,
    )
    order = driver.server.summary(start)
    assert transcribed is not None, f"no transcript of the user's item; the client saw: {order}"
    assert driver.server.index(transcribed) < driver.server.index(created), (
        f"the reply started before the user's words were transcribed: {order}"
    )
    assert word_error_rate(clip.transcript, transcribed["transcript"]) <= USER_WORDS_MAX_WER, (
        transcribed["transcript"]
    )
    assert not driver.server.find("input_audio_buffer.speech_started", after=start), (
        "VAD ran with turn detection off"
    )
    response_id = created["response"]["id"]
    done = await driver.server.wait_for(
        "response.done", lambda e: e["response"]["id"] == response_id, after=start, timeout=120
    )
    assert done["response"]["status"] == "completed", done["response"]
    assert audio_bytes(driver.server, response_id) > 0
    return done


async def barge_in(driver: ClientDriver, clip: Clip) -> Event:
    """(d) Real speech over the bot's reply stops the reply: the client sees
    ``speech_started``, then the response cancelled (or its item truncated), and no more
    of its audio."""
    await settle(driver)
    start = len(driver.server.events)
    await driver.say_text(STORY)
    first = await driver.server.wait_for("response.output_audio.delta", after=start, timeout=90)
    response_id = first["response_id"]
    await driver.stream(np.concatenate([clip.samples, silence(1.5)]))
    talking = driver.server.index(first)
    started = await driver.server.wait_for(
        "input_audio_buffer.speech_started", after=talking, timeout=30
    )
    done = await driver.server.wait_for(
        "response.done", lambda e: e["response"]["id"] == response_id, after=start, timeout=60
    )
    truncated = driver.server.find(
        "conversation.item.truncated", lambda e: e["item_id"] == first["item_id"], after=start
    )
    order = driver.server.summary(start)
    assert driver.server.index(started) < driver.server.index(done), order
    assert done["response"]["status"] == "cancelled" or truncated is not None, order
    stop = driver.server.index(done if done["response"]["status"] == "cancelled" else truncated)
    later_audio = [
        event
        for event in driver.server.events[stop:]
        if event.get("type") == "response.output_audio.delta"
        and event.get("response_id") == response_id
    ]
    assert not later_audio, f"{len(later_audio)} audio deltas of the stopped reply came after"
    return done


async def backchannel(driver: ClientDriver, sound: Float32Array) -> Event:
    """(d') A backchannel over the bot's reply: the client is told (``speech_started``, the
    response it knew ended) and flushes; then ``speech_stopped``, and the rest of the reply
    comes as a new response with audio, whatever the library did on ``speech_started``."""
    await settle(driver)
    start = len(driver.server.events)
    await driver.say_text(STORY)
    first = await driver.server.wait_for("response.output_audio.delta", after=start, timeout=90)
    await driver.stream(silence(1.0))  # the bot talks for a second
    await driver.stream(np.concatenate([sound, silence(2.0)]))
    talking = driver.server.index(first)
    started = await driver.server.wait_for(
        "input_audio_buffer.speech_started", after=talking, timeout=30
    )
    await driver.server.wait_for(
        "input_audio_buffer.speech_stopped", after=driver.server.index(started), timeout=30
    )
    ended = driver.server.find(
        "response.done", lambda e: e["response"]["id"] == first["response_id"], after=start
    )
    order = driver.server.summary(start)
    assert ended is not None, order
    assert ended["response"]["status"] in ("cancelled", "completed"), order
    continuation = await driver.server.wait_for(
        "response.created", after=driver.server.index(ended), timeout=30
    )
    again = await driver.server.wait_for(
        "response.output_audio.delta",
        lambda e: e["response_id"] == continuation["response"]["id"],
        after=driver.server.index(continuation),
        timeout=30,
    )
    order = driver.server.summary(start)
    assert not driver.server.find("input_audio_buffer.committed", after=start), order
    refused = [e for e in errors(driver)[len(errors(driver, first)) :]]
    assert all(e["error"].get("code") == "response_cancel_not_active" for e in refused), order
    return again


def surfaced_after(driver: ClientDriver, interrupted: str, audio: str) -> bool:
    """The library passed on audio after the last time it reported an interruption."""
    events = driver.client_events
    if interrupted not in events:
        return False
    last = len(events) - events[::-1].index(interrupted)
    return audio in events[last:]


@dataclass(frozen=True)
class ToolRound:
    """One function call and what followed: the call, the client's output, the reply."""

    call: Event
    output: Event
    continuation: Event


async def ask_for_weather(driver: ClientDriver, *, forced: bool) -> int:
    """The user's weather request; the index of the first server event after it.

    ``forced``: a user item and a ``response.create`` whose ``tool_choice`` names the
    function, through the library's raw-event API (the forcing is for that response
    only: the library's own ``response.create`` after its output uses the session's).
    Otherwise the library's typed message, under its session's ``tool_choice`` (``auto``:
    the request names what the only tool does, so the server's router calls it).
    """
    start = len(driver.server.events)
    if not forced:
        await driver.say_text(WEATHER_REQUEST)
        return start
    content = [{"type": "input_text", "text": WEATHER_REQUEST}]
    await driver.send_raw(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": content},
        }
    )
    await driver.send_raw({"type": "response.create", "response": {"tool_choice": FORCE_WEATHER}})
    return start


def function_calls(done: Event) -> list[Event]:
    return [item for item in done["response"]["output"] if item.get("type") == "function_call"]


async def tool_call_continued(driver: ClientDriver, name: str, *, after: int) -> ToolRound:
    """(e) The model calls ``name``; the library runs its own handler and sends the
    ``function_call_output`` itself; the server answers it with a reply in words (a
    continuation that calls nothing again: a forced choice applies to one response)."""
    done = await driver.server.wait_for(
        "response.done", lambda e: bool(function_calls(e)), after=after, timeout=120
    )
    (call,) = function_calls(done)
    assert call["name"] == name, call
    assert call["status"] == "completed", call
    output = await driver.server.wait_for(
        "conversation.item.added",
        lambda e: (
            e["item"].get("type") == "function_call_output"
            and e["item"].get("call_id") == call["call_id"]
        ),
        after=driver.server.index(done),
        timeout=60,
    )
    created = await driver.server.wait_for(
        "response.created", after=driver.server.index(output), timeout=60
    )
    response_id = created["response"]["id"]
    continuation = await driver.server.wait_for(
        "response.done", lambda e: e["response"]["id"] == response_id, after=after, timeout=120
    )
    order = driver.server.summary(after)
    assert continuation["response"]["status"] in ("completed", "incomplete"), order
    if continuation["response"]["status"] == "incomplete":
        reason = continuation["response"]["status_details"]["reason"]
        assert reason == "max_output_tokens", continuation["response"]
    assert not function_calls(continuation), f"the continuation called again: {order}"
    words = [
        part.get("transcript") or part.get("text") or ""
        for item in continuation["response"]["output"]
        if item.get("type") == "message"
        for part in item.get("content") or []
    ]
    assert "".join(words).strip(), f"the continuation said nothing: {continuation['response']}"
    assert not errors(driver, continuation), order
    return ToolRound(call, output["item"], continuation)
