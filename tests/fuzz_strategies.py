"""Hypothesis strategies for Realtime client messages: valid events, broken ones, raw bytes.

Reusable by any property test that drives the protocol or a session:

* :func:`client_events` — valid client events (as dicts) of every GA type the server speaks;
* :func:`mutated_events` — valid events with one thing broken (a wrong type, a missing or
  extra field, a value wrapped in extra nesting, an unknown ``type``);
* :func:`json_values` — arbitrary JSON values (strings full of brackets, quotes, escapes);
* :func:`hostile_texts` — texts aimed at the parser's limits (deep nesting, huge integers,
  ``NaN``, lone surrogate escapes, truncated JSON);
* :func:`client_messages` — all of the above as wire messages (``str``), plus raw bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from voice.protocol import CLIENT_EVENT_TYPES

#: Every client event type of the GA Realtime API (the parser's table).
EVENT_TYPES = tuple(CLIENT_EVENT_TYPES)

Event = dict[str, Any]

_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)
_texts = st.text(max_size=40)
_modalities = st.sampled_from([["audio"], ["text"]])


def _with_event_id(event: Event, event_id: str | None) -> Event:
    return event if event_id is None else {**event, "event_id": event_id}


@st.composite
def _session(draw: st.DrawFn) -> dict[str, Any]:
    session: dict[str, Any] = {"type": "realtime"}
    if draw(st.booleans()):
        session["instructions"] = draw(_texts)
    if draw(st.booleans()):
        session["output_modalities"] = draw(_modalities)
    if draw(st.booleans()):
        session["max_output_tokens"] = draw(st.integers(1, 4096) | st.just("inf"))
    audio: dict[str, Any] = {}
    if draw(st.booleans()):
        audio_in: dict[str, Any] = {}
        if draw(st.booleans()):
            audio_in["format"] = draw(
                st.sampled_from(
                    [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"},
                     {"type": "audio/pcma"}]
                )
            )  # fmt: skip
        if draw(st.booleans()):
            audio_in["turn_detection"] = draw(
                st.none()
                | st.fixed_dictionaries(
                    {"type": st.just("server_vad")},
                    optional={
                        "threshold": st.floats(0.05, 0.95),
                        "silence_duration_ms": st.integers(100, 2000),
                        "prefix_padding_ms": st.integers(0, 1000),
                        "create_response": st.booleans(),
                        "interrupt_response": st.booleans(),
                    },
                )
            )
        audio["input"] = audio_in
    if draw(st.booleans()):
        audio["output"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "format": st.sampled_from([{"type": "audio/pcm", "rate": 24000},
                                               {"type": "audio/pcmu"}]),
                    "voice": st.sampled_from(["joe", "alloy"]),
                },
            )
        )  # fmt: skip
    if audio:
        session["audio"] = audio
    if draw(st.booleans()):
        session["user_name"] = draw(st.text(min_size=1, max_size=64))
    return session


_content_types = {"user": "input_text", "assistant": "output_text", "system": "input_text"}


@st.composite
def _item(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(sorted(_content_types)))
    parts = draw(st.lists(_texts, min_size=1, max_size=3))
    item: dict[str, Any] = {
        "type": "message",
        "role": role,
        "content": [{"type": _content_types[role], "text": text} for text in parts],
    }
    if draw(st.booleans()):
        item["id"] = draw(_ids)
    return item


@st.composite
def client_events(draw: st.DrawFn, types: tuple[str, ...] = EVENT_TYPES) -> Event:
    """A valid client event of one of ``types``, as a JSON-ready dict."""
    kind = draw(st.sampled_from(types))
    event: Event = {"type": kind}
    if kind == "session.update":
        event["session"] = draw(_session())
    elif kind == "input_audio_buffer.append":
        pcm = draw(st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2]))
        event["audio"] = base64.b64encode(pcm).decode()
    elif kind == "conversation.item.create":
        event["item"] = draw(_item())
        if draw(st.booleans()):
            event["previous_item_id"] = draw(_ids)
    elif kind == "conversation.item.truncate":
        event.update(
            item_id=draw(_ids), content_index=0, audio_end_ms=draw(st.integers(0, 100_000))
        )
    elif kind in ("conversation.item.delete", "conversation.item.retrieve"):
        event["item_id"] = draw(_ids)
    elif kind == "response.create" and draw(st.booleans()):
        event["response"] = draw(
            st.fixed_dictionaries(
                {}, optional={"instructions": _texts, "output_modalities": _modalities}
            )
        )
    elif kind == "response.cancel" and draw(st.booleans()):
        event["response_id"] = draw(_ids)
    return _with_event_id(event, draw(st.none() | _ids))


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value; strings are drawn to be full of brackets, quotes and escapes."""
    tricky = st.text(st.sampled_from('[]{}"\\:,') | st.characters(), max_size=20)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | tricky
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(tricky, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _wrong_value_for(value: Any) -> st.SearchStrategy[Any]:
    """A JSON value of another type than ``value``'s."""
    others: list[st.SearchStrategy[Any]] = [st.just(None), st.just([1, "x"]), st.just({"x": []})]
    if not isinstance(value, str):
        others.append(st.just("wrong type"))
    if isinstance(value, str | dict | list) or value is None:
        others.append(st.integers(-5, 5))
    if not isinstance(value, bool):
        others.append(st.booleans())
    return st.one_of(others)


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into ``value`` (keys and indices), the root excluded."""
    found: list[tuple[str | int, ...]] = []
    items: list[tuple[str | int, Any]] = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        found.append((*path, key))
        found.extend(_paths(child, (*path, key)))
    return found


def _replace(value: Any, path: tuple[str | int, ...], new: Any) -> Any:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _delete(value: Any, path: tuple[str | int, ...]) -> Any:
    if len(path) == 1:
        copy: Any = dict(value) if isinstance(value, dict) else list(value)
        del copy[path[0]]
        return copy
    return _replace(value, path[:1], _delete(value[path[0]], path[1:]))


def _get(value: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated_events(draw: st.DrawFn) -> Event:
    """A valid event with one thing broken (the result may, by chance, still be valid)."""
    event = draw(client_events())
    paths = [p for p in _paths(event) if p != ("type",)]
    mutation = draw(st.sampled_from(["wrong_type", "missing", "extra", "nest", "unknown_type"]))
    if mutation == "unknown_type":
        return {**event, "type": draw(st.sampled_from(EVENT_TYPES)) + draw(st.text(max_size=5))}
    if mutation == "extra" or not paths:
        return {**event, draw(_texts): draw(json_values(max_leaves=5))}
    path = draw(st.sampled_from(paths))
    if mutation == "missing":
        return dict(_delete(event, path))
    old = _get(event, path)
    if mutation == "nest":
        depth = draw(st.integers(1, 40))
        wrapped = old
        for _ in range(depth):
            wrapped = [wrapped] if draw(st.booleans()) else {"x": wrapped}
        return dict(_replace(event, path, wrapped))
    return dict(_replace(event, path, draw(_wrong_value_for(old))))


def _deep(depth: int, opener: str, closer: str, closed: bool) -> str:
    return opener * depth + ("1" + closer * depth if closed else "")


@st.composite
def hostile_texts(draw: st.DrawFn) -> str:
    """Texts aimed at the decoder's limits; most are invalid, a few are valid events."""
    kind = draw(
        st.sampled_from(["deep", "deep_in_field", "deep_in_string", "huge_int", "big_float",
                         "constant", "surrogate", "truncated"])
    )  # fmt: skip
    if kind == "deep":
        depth = draw(st.integers(1, 20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return _deep(depth, opener, closer, draw(st.booleans()))
    if kind == "deep_in_field":
        depth = draw(st.integers(20, 20_000))
        return '{"type":"session.update","session":' + _deep(depth, "[", "]", True) + "}"
    if kind == "deep_in_string":  # brackets inside a string are text, not nesting
        text = json.dumps("[{" * draw(st.integers(0, 5000)) + draw(_texts))
        return '{"type":"session.update","session":{"type":"realtime","instructions":' + text + "}}"
    if kind == "huge_int":
        digits = draw(st.integers(15, 6000))
        return (
            '{"type":"conversation.item.truncate","item_id":"i","content_index":0,'
            f'"audio_end_ms":{"9" * digits}}}'
        )
    if kind == "big_float":
        number = draw(st.sampled_from(["1e999", "-1e400", "1e308", "2.5e-400", "1" * 400 + ".5"]))
        return (
            '{"type":"session.update","session":{"type":"realtime","audio":{"input":'
            f'{{"turn_detection":{{"type":"server_vad","threshold":{number}}}}}}}}}}}'
        )
    if kind == "constant":
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return '{"type":"response.create","response":{"max_output_tokens":' + constant + "}}"
    if kind == "surrogate":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "\\ud83d\\ude00"]))
        where = draw(st.sampled_from(["value", "key", "type"]))
        if where == "key":
            return '{"type":"input_audio_buffer.clear","' + escape + '":1}'
        if where == "type":
            return '{"type":"' + escape + '"}'
        return '{"type":"response.create","response":{"instructions":"a' + escape + 'b"}}'
    valid = json.dumps(draw(client_events()))
    return valid[: draw(st.integers(0, max(0, len(valid) - 1)))]


def client_messages() -> st.SearchStrategy[str | bytes]:
    """Any wire message: valid, mutated, random JSON, hostile text, or raw bytes."""
    as_json: st.SearchStrategy[str | bytes] = st.one_of(
        client_events().map(json.dumps),
        mutated_events().map(json.dumps),
        json_values().map(json.dumps),
    )
    return st.one_of(as_json, hostile_texts(), st.text(max_size=50), st.binary(max_size=200))
