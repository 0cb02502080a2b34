"""Wire-level fuzz of a running `voice serve`: hostile Realtime messages and HTTP bodies.

.venv/bin/python scripts/fuzz_wire.py --spawn --cases 2000 --seed 1
.venv/bin/python scripts/fuzz_wire.py --url http://127.0.0.1:8000 --api-key KEY --cases 500

``--spawn`` starts a ``voice serve`` of its own (a temporary data folder, a copy of
``characters/``) and stops it at the end; ``--url`` fuzzes a running server.

Seeded cases go over one Realtime WebSocket: binary frames, random JSON, wrong field types,
huge base64 under the size limit, deep nesting, numbers and strings past the parser's
limits, unknown item ids, response.create/response.cancel bursts. After every case a sync
message (a ``conversation.item.retrieve`` of an id that does not exist, whose ``error``
names it) shows the case was handled and which ``error`` events it got: a case that must be
refused must get exactly one. Hostile HTTP bodies go to ``POST /v1/characters`` (truncated
PNGs, zlib bombs in ``zTXt``/``iTXt`` chunks, impossible chunk lengths, bad JSON) and
``POST /v1/realtime/calls`` (garbage SDP, SDP without audio, huge bodies): each must get a
4xx. When the server ends the WebSocket the script reconnects and counts it. At the end the
same connection must answer a typed turn (a ``response.done`` that completed, with audio).

Exit status 1 if the server ended a connection, answered an HTTP 5xx, stored a hostile
card, sent a ``server_error`` (a bug of its own, logged with its traceback), left a refused
case with other than one ``error``, failed to answer a sync, or did not answer the final
turn.
Run it only against a server whose characters folder you do not mind: every upload is meant
to be refused, but one that is not would be stored.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import random
import struct
import sys
import time
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voice.bench.spawn import spawned_server

REPO = Path(__file__).resolve().parents[1]
#: The server's default ``max_message_bytes``; huge cases stay under it.
MESSAGE_LIMIT = 4 * 1024 * 1024
#: How long one case may take to be answered (a huge audio message runs the VAD over it).
SYNC_TIMEOUT_S = 60.0
FINAL_TURN_TIMEOUT_S = 120.0

Expect = Literal["one_error", "any"]
Message = str | bytes


@dataclass
class Case:
    kind: str
    messages: list[Message]
    #: ``one_error``: the case must be refused with exactly one ``error`` event.
    expect: Expect


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    error_codes: Counter[str] = field(default_factory=Counter)
    #: Refused cases that did not get exactly one error: kind -> count.
    wrong_error_counts: Counter[str] = field(default_factory=Counter)
    wrong_error_examples: list[str] = field(default_factory=list)
    server_closes: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    http_status: Counter[str] = field(default_factory=Counter)
    http_5xx: list[str] = field(default_factory=list)
    http_accepted: list[str] = field(default_factory=list)
    final_turn: str = "not run"

    @property
    def ok(self) -> bool:
        return (
            not self.server_closes
            and not self.http_5xx
            and not self.unanswered
            and not self.wrong_error_counts
            and not self.http_accepted
            and not self.error_codes["server_error"]
            and self.final_turn == "answered"
        )

    def summary(self) -> str:
        lines = [
            f"cases sent: {sum(self.cases.values())}  "
            + "  ".join(f"{kind}={n}" for kind, n in sorted(self.cases.items())),
            f"error events returned: {self.errors}  "
            + "  ".join(f"{code}={n}" for code, n in self.error_codes.most_common()),
            f"server_error events (server bugs, tracebacks in its log): "
            f"{self.error_codes['server_error']}",
            f"refused cases without exactly one error: {sum(self.wrong_error_counts.values())}"
            + "".join(f"  {kind}={n}" for kind, n in sorted(self.wrong_error_counts.items())),
            f"connections ended by the server: {len(self.server_closes)}",
            f"cases not answered within {SYNC_TIMEOUT_S:.0f} s: {len(self.unanswered)}",
            "HTTP statuses: " + "  ".join(f"{k}={n}" for k, n in sorted(self.http_status.items())),
            f"HTTP 5xx: {len(self.http_5xx)}",
            f"final turn: {self.final_turn}",
        ]
        for title, items in (
            ("server closes", self.server_closes),
            ("unanswered", self.unanswered),
            ("5xx", self.http_5xx),
            ("wrong error counts", self.wrong_error_examples),
            ("uploads accepted (should not happen)", self.http_accepted),
        ):
            lines.extend(f"  {title}: {item}" for item in items[:10])
        return "\n".join(lines)


# --- Realtime cases -----------------------------------------------------------------------


def random_string(rng: random.Random, size: int) -> str:
    alphabet = 'abc xyz[]{}"\\:,\n\t\u00e9\u4e2d\U0001f600'
    chars = [rng.choice(alphabet) for _ in range(size)]
    if rng.random() < 0.2:  # a lone surrogate (json.dumps escapes it as \udxxx)
        chars.append(chr(rng.randrange(0xD800, 0xE000)))
    return "".join(chars)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice(
            [
                None,
                True,
                rng.randint(-(2**40), 2**40),
                10 ** rng.randint(18, 40),
                rng.uniform(-1e6, 1e6),
                float("inf"),
                float("nan"),
                random_string(rng, rng.randint(0, 30)),
            ]
        )
    if roll < 0.65:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        random_string(rng, rng.randint(0, 8)): random_json(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


EVENT_TYPES = [
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
]


def dumps(value: Any) -> str:
    return json.dumps(value)  # NaN/Infinity as such, lone surrogates as escapes


def case_binary(rng: random.Random) -> Case:
    data = rng.randbytes(rng.randint(0, 4096))
    if rng.random() < 0.3:  # starts like JSON, then turns to bytes
        data = b'{"type": "input_audio_buffer.append", "audio": "' + data
    return Case("binary", [data], "one_error")


def case_random_json(rng: random.Random) -> Case:
    value = random_json(rng)
    if isinstance(value, dict) and rng.random() < 0.6:
        value["type"] = rng.choice(EVENT_TYPES)
        return Case("random_json", [dumps(value)], "any")  # could be valid by chance
    if isinstance(value, dict) and rng.random() < 0.5:
        value["type"] = rng.choice(EVENT_TYPES) + "." + random_string(rng, 5)
    return Case("random_json", [dumps(value)], "one_error")


#: Valid events and the paths of fields with their type, for replacing with a wrong type.
TEMPLATES: list[tuple[dict[str, Any], list[tuple[tuple[str | int, ...], str]]]] = [
    (
        {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief.",
         "output_modalities": ["audio"], "max_output_tokens": 200,
         "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.5,
                   "silence_duration_ms": 500}}, "output": {"voice": "joe"}}}},
        [(("session",), "object"), (("session", "instructions"), "str"),
         (("session", "output_modalities"), "list"), (("session", "max_output_tokens"), "int"),
         (("session", "audio"), "object"), (("session", "audio", "input"), "object"),
         (("session", "audio", "input", "turn_detection", "threshold"), "float"),
         (("session", "audio", "input", "turn_detection", "silence_duration_ms"), "int"),
         (("session", "audio", "output", "voice"), "str")],
    ),
    (
        {"type": "input_audio_buffer.append", "audio": "AAAAAA=="},
        [(("audio",), "str")],
    ),
    (
        {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "hello"}]}},
        [(("item",), "object"), (("item", "role"), "str"), (("item", "content"), "list"),
         (("item", "content", 0), "object"), (("item", "content", 0, "text"), "str")],
    ),
    (
        {"type": "conversation.item.truncate", "item_id": "x", "content_index": 0,
         "audio_end_ms": 100},
        [(("item_id",), "str"), (("content_index",), "int"), (("audio_end_ms",), "int")],
    ),
    (
        {"type": "conversation.item.delete", "item_id": "x"},
        [(("item_id",), "str")],
    ),
    (
        {"type": "conversation.item.retrieve", "item_id": "x"},
        [(("item_id",), "str")],
    ),
    (
        {"type": "response.create", "response": {"instructions": "Say hi.",
         "output_modalities": ["text"]}},
        [(("response",), "object"), (("response", "instructions"), "str"),
         (("response", "output_modalities"), "list")],
    ),
    (
        {"type": "response.cancel", "response_id": "resp_x"},
        [(("response_id",), "str")],
    ),
]  # fmt: skip

#: Values that are surely not of the named type (pydantic's lax mode coerces some others).
WRONG_VALUES: dict[str, list[Any]] = {
    "str": [12, 1.5, [], {}, ["a"], {"a": 1}, True],
    "int": ["abc", 1.5, [], {}, [1], {"a": 1}, "1e3x"],
    "float": ["abc", [], {}, [0.5], {"a": 1}],
    "list": ["audio", 12, {}, {"a": 1}, True],
    "object": ["x", 12, [], [1, 2], True, 1.5],
}


def set_path(value: Any, path: tuple[str | int, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def case_wrong_types(rng: random.Random) -> Case:
    template, fields = rng.choice(TEMPLATES)
    event = json.loads(json.dumps(template))
    path, kind = rng.choice(fields)
    set_path(event, path, rng.choice(WRONG_VALUES[kind]))
    if rng.random() < 0.3:
        del event["type"]
    return Case("wrong_types", [dumps(event)], "one_error")


PCM_INPUT = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
    },
}


def case_huge_base64(rng: random.Random) -> Case:
    overhead = 100
    size = rng.randint(MESSAGE_LIMIT // 8, MESSAGE_LIMIT - overhead)
    raw = size // 4 * 3
    variant = rng.choice(["silence", "noise", "bad_char", "odd_length", "bad_padding"])
    if variant == "silence":
        audio, expect = base64.b64encode(bytes(raw // 2 * 2)).decode(), "any"
    elif variant == "noise":  # quiet noise: the VAD runs over all of it
        samples = bytes(rng.getrandbits(8) & 0x07 for _ in range(4096)) * (raw // 4096 // 2 * 2)
        audio, expect = base64.b64encode(samples).decode(), "any"
    elif variant == "odd_length":
        audio, expect = base64.b64encode(bytes(raw // 2 * 2 - 1)).decode(), "one_error"
    else:
        audio = base64.b64encode(bytes(raw)).decode()
        cut = rng.randrange(len(audio))
        # bad_padding: one character short of a whole number of base64 quanta
        audio = audio[:cut] + "%" + audio[cut + 1 :] if variant == "bad_char" else audio[:-1]
        expect = "one_error"
    messages: list[Message] = [dumps({"type": "input_audio_buffer.append", "audio": audio})]
    if variant == "odd_length":  # odd only in a 16-bit format (μ-law has 8-bit samples)
        messages.insert(0, dumps(PCM_INPUT))
    return Case(f"huge_base64_{variant}", messages, expect)  # type: ignore[arg-type]


def case_nested(rng: random.Random) -> Case:
    depth = rng.choice([33, 100, 1000, 10_000, 100_000, rng.randint(33, 50_000)])
    variant = rng.choice(["array", "object", "in_field", "unclosed", "in_string"])
    if variant == "array":
        body = '{"type":"session.update","session":' + "[" * depth + "]" * depth + "}"
    elif variant == "object":
        body = '{"type":"session.update","session":' + '{"a":' * depth + "1" + "}" * depth + "}"
    elif variant == "in_field":
        inner = "[" * depth + "1" + "]" * depth
        body = (
            '{"type":"conversation.item.create","item":{"type":"message","role":"user",'
            f'"content":[{{"type":"input_text","text":{inner}}}]}}}}'
        )
    elif variant == "unclosed":
        body = '{"type":"session.update","session":' + "[" * depth
    else:  # brackets inside a string are text: a valid event
        text = "[{" * min(depth, 200_000)
        body = dumps({"type": "response.cancel", "response_id": text})
        return Case("nested_in_string", [body], "any")
    return Case(f"nested_{variant}", [body], "one_error")


def case_limits(rng: random.Random) -> Case:
    """Numbers and strings at and past the parser's limits."""
    variant = rng.choice(["huge_int", "int_4301", "big_float", "nan", "surrogate", "long_text",
                          "long_id", "long_user_name"])  # fmt: skip
    if variant in ("huge_int", "int_4301"):
        digits = 4301 if variant == "int_4301" else rng.randint(21, 100_000)
        body = (
            '{"type":"conversation.item.truncate","item_id":"i","content_index":0,'
            f'"audio_end_ms":{"9" * digits}}}'
        )
        return Case(f"limits_{variant}", [body], "one_error")
    if variant == "big_float":
        number = rng.choice(["1e999", "-1e400", "9" * 400 + "e99"])
        body = (
            '{"type":"session.update","session":{"type":"realtime","audio":{"input":'
            f'{{"turn_detection":{{"type":"server_vad","threshold":{number}}}}}}}}}}}'
        )
        return Case("limits_big_float", [body], "one_error")
    if variant == "nan":
        constant = rng.choice(["NaN", "Infinity", "-Infinity"])
        body = '{"type":"response.create","response":{"max_output_tokens":' + constant + "}}"
        return Case("limits_nan", [body], "one_error")
    if variant == "surrogate":
        escape = rng.choice(["\\ud800", "\\udfff", "\\ud83d"])
        body = rng.choice(
            [
                '{"type":"response.create","response":{"instructions":"a' + escape + 'b"}}',
                '{"type":"input_audio_buffer.clear","' + escape + '":1}',
                '{"type":"' + escape + '"}',
            ]
        )
        return Case("limits_surrogate", [body], "one_error")
    if variant == "long_text":  # legal but large: the session must cope
        text = "word " * rng.randint(10_000, 400_000)
        if rng.random() < 0.5:
            event = {
                "type": "session.update",
                "session": {"type": "realtime", "instructions": text},
            }
            return Case("limits_long_instructions", [dumps(event)], "any")
        event = {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": text}]}}  # fmt: skip
        return Case("limits_long_item", [dumps(event)], "any")
    if variant == "long_id":
        item_id = "i" * rng.randint(1000, 1_000_000)
        event = {"type": "conversation.item.retrieve", "item_id": item_id, "event_id": item_id}
        return Case("limits_long_id", [dumps(event)], "one_error")
    name = "n" * rng.randint(65, 100_000)
    event = {"type": "session.update", "session": {"type": "realtime", "user_name": name}}
    return Case("limits_long_user_name", [dumps(event)], "one_error")


def case_unknown_ids(rng: random.Random) -> Case:
    item_id = "item_unknown_" + str(rng.getrandbits(32))
    event = rng.choice(
        [
            {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
             "audio_end_ms": rng.randint(0, 10_000)},
            {"type": "conversation.item.delete", "item_id": item_id},
            {"type": "conversation.item.retrieve", "item_id": item_id},
            {"type": "conversation.item.create", "previous_item_id": item_id,
             "item": {"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": "hi"}]}},
        ]
    )  # fmt: skip
    return Case("unknown_ids", [dumps(event)], "one_error")


def case_items(rng: random.Random) -> Case:
    """Conversation items of every kind: messages without text (refused), audio and image
    parts, function calls and their results (taken, or refused, as they are shaped)."""
    role = rng.choice(["user", "assistant", "system"])
    part_type = {"user": "input_text", "assistant": "output_text", "system": "input_text"}[role]
    variant = rng.choice(["empty_text", "no_text", "other_part", "other_item", "no_content"])
    item: dict[str, Any] = {"type": "message", "role": role}
    if variant == "empty_text":
        item["content"] = [{"type": part_type, "text": rng.choice(["", "   "])}]
    elif variant == "no_text":
        item["content"] = [{"type": part_type}]
    elif variant == "other_part":
        item["content"] = [
            rng.choice(
                [
                    {"type": "input_audio", "audio": "AAAA"},
                    {"type": "input_image", "image_url": "data:,"},
                ]
            )
        ]
        item["role"] = "user"
    elif variant == "other_item":
        item = rng.choice(
            [
                {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"},
                {"type": "function_call_output", "call_id": "c", "output": "x"},
            ]
        )
    else:
        item["content"] = []
    kind = f"items_{variant}" + ("_system" if item.get("role") == "system" else "")
    # Function items are taken; an audio part is taken when it decodes (its bytes vary).
    expect: Expect = "any" if variant in ("other_item", "other_part") else "one_error"
    return Case(kind, [dumps({"type": "conversation.item.create", "item": item})], expect)


def case_burst(rng: random.Random) -> Case:
    """A typed user turn, then creates and cancels in a burst (many refused: that is fine)."""
    messages: list[Message] = [
        dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
               "content": [{"type": "input_text", "text": "Tell me about the sea."}]}}),
    ]  # fmt: skip
    for _ in range(rng.randint(2, 20)):
        kind = rng.choice(
            ["response.create", "response.create", "response.cancel", "output_audio_buffer.clear",
             "input_audio_buffer.commit", "input_audio_buffer.clear"]
        )  # fmt: skip
        event: dict[str, Any] = {"type": kind}
        if kind == "response.create" and rng.random() < 0.5:
            event["response"] = {"output_modalities": [rng.choice(["audio", "text"])]}
        messages.append(dumps(event))
    messages.append(dumps({"type": "response.cancel"}))
    return Case("burst", messages, "any")


def case_valid_config(rng: random.Random) -> Case:
    """A valid session.update, so later cases meet other formats, push-to-talk, text output."""
    session: dict[str, Any] = {"type": "realtime"}
    if rng.random() < 0.5:
        session["output_modalities"] = [rng.choice(["audio", "text"])]
    audio_in: dict[str, Any] = {}
    if rng.random() < 0.5:
        audio_in["format"] = rng.choice(
            [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}, {"type": "audio/pcma"}]
        )
    if rng.random() < 0.5:
        audio_in["turn_detection"] = rng.choice([None, {"type": "server_vad"}])
    if audio_in:
        session["audio"] = {"input": audio_in}
    return Case("valid_config", [dumps({"type": "session.update", "session": session})], "any")


CASES: dict[str, tuple[float, Callable[[random.Random], Case]]] = {
    "binary": (1.0, case_binary),
    "random_json": (1.5, case_random_json),
    "wrong_types": (1.5, case_wrong_types),
    "huge_base64": (0.4, case_huge_base64),
    "nested": (1.0, case_nested),
    "limits": (1.0, case_limits),
    "unknown_ids": (0.7, case_unknown_ids),
    "items": (0.7, case_items),
    "burst": (0.4, case_burst),
    "valid_config": (0.3, case_valid_config),
}


# --- hostile HTTP bodies ------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes, *, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return struct.pack(">I4s", size, kind) + data + struct.pack(">I", zlib.crc32(kind + data))


def small_png(*extra: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + b"".join(extra)
        + png_chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
        + png_chunk(b"IEND", b"")
    )


_BOMB: bytes | None = None


def zlib_bomb() -> bytes:
    """256 MiB of zeros, deflated to about 250 KiB (made once)."""
    global _BOMB
    if _BOMB is None:
        compressor = zlib.compressobj(9)
        block = bytes(1024 * 1024)
        _BOMB = b"".join(compressor.compress(block) for _ in range(256)) + compressor.flush()
    return _BOMB


def card_json(**data: Any) -> bytes:
    card = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": "Fuzz", "description": "", "first_mes": "", **data}}  # fmt: skip
    return json.dumps(card).encode()


def card_bodies(rng: random.Random) -> tuple[str, bytes, str]:
    """(what, body, content type) of a card upload that must be refused."""
    chara = base64.b64encode(b"{not json").decode().encode()
    variant = rng.choice(
        ["truncated_png", "ztxt_bomb", "itxt_bomb", "huge_chunk_length", "bad_crc", "garbage_png",
         "garbage_json", "deep_json", "nan_json", "surrogate_json", "huge_int_json",
         "not_a_card", "png_bad_base64", "png_deep_card", "too_large_json", "binary_json"]
    )  # fmt: skip
    if variant == "truncated_png":
        full = small_png(png_chunk(b"tEXt", b"chara\0" + base64.b64encode(card_json())))
        return variant, full[: rng.randrange(1, len(full) - 1)], "image/png"
    if variant == "ztxt_bomb":
        return variant, small_png(png_chunk(b"zTXt", b"chara\0\0" + zlib_bomb())), "image/png"
    if variant == "itxt_bomb":
        chunk = png_chunk(b"iTXt", b"chara\0\x01\0\0\0" + zlib_bomb())
        return variant, small_png(chunk), "image/png"
    if variant == "huge_chunk_length":
        chunk = png_chunk(b"tEXt", b"chara\0" + chara, length=0xFFFFFFF0)
        return variant, small_png(chunk), "image/png"
    if variant == "bad_crc":
        good = png_chunk(b"tEXt", b"chara\0" + base64.b64encode(card_json()))
        return variant, small_png(good[:-4] + b"\0\0\0\0"), "image/png"
    if variant == "garbage_png":
        return variant, b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(0, 5000)), "image/png"
    if variant == "garbage_json":
        return variant, rng.randbytes(rng.randint(0, 5000)), "application/json"
    if variant == "deep_json":
        depth = rng.choice([65, 1000, 100_000])
        body = b'{"spec":"chara_card_v2","data":' + b"[" * depth + b"]" * depth + b"}"
        return variant, body, "application/json"
    if variant == "nan_json":
        return variant, card_json(extensions={"x": float("nan")}), "application/json"
    if variant == "surrogate_json":
        return variant, card_json(name="Fu\ud800zz"), "application/json"
    if variant == "huge_int_json":
        body = card_json(extensions={"x": 1}).replace(b'"x": 1', b'"x": ' + b"9" * 5000)
        return variant, body, "application/json"
    if variant == "not_a_card":
        return variant, json.dumps(random_json(rng)).encode(), "application/json"
    if variant == "png_bad_base64":
        return variant, small_png(png_chunk(b"tEXt", b"chara\0%%%")), "image/png"
    if variant == "png_deep_card":
        deep = b'{"spec":"chara_card_v2","data":' + b"[" * 5000 + b"]" * 5000 + b"}"
        chunk = png_chunk(b"tEXt", b"chara\0" + base64.b64encode(deep))
        return variant, small_png(chunk), "image/png"
    if variant == "too_large_json":
        return variant, card_json(description="x" * (3 * 1024 * 1024)), "application/json"
    return variant, rng.randbytes(3000), "application/octet-stream"


_OFFERS: dict[bool, str] = {}


async def real_offer(audio: bool) -> str:
    """A real SDP offer (aiortc) with a data channel, with or without audio (made once)."""
    if audio not in _OFFERS:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        if audio:
            pc.addTransceiver("audio")
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        _OFFERS[audio] = pc.localDescription.sdp
        await pc.close()
    return _OFFERS[audio]


#: Edits of a real audio offer: most are refused, some answered (then hung up at once).
OFFER_EDITS: dict[str, Callable[[str], str]] = {
    "no_fingerprint": lambda sdp: "\r\n".join(
        line for line in sdp.split("\r\n") if not line.startswith("a=fingerprint")
    ),
    "no_ice_ufrag": lambda sdp: "\r\n".join(
        line for line in sdp.split("\r\n") if not line.startswith("a=ice-ufrag")
    ),
    "unknown_codecs": lambda sdp: (
        sdp.replace("opus/48000/2", "nope/48000/2")
        .replace("PCMU/8000", "x/8000")
        .replace("PCMA/8000", "y/8000")
    ),
    "port_0": lambda sdp: sdp.replace("m=audio 9", "m=audio 0"),
    "inactive": lambda sdp: sdp.replace("a=sendrecv", "a=inactive"),
    "bad_candidate": lambda sdp: sdp.replace("a=mid:0", "a=mid:0\r\na=candidate:garbage"),
    "bad_rtpmap": lambda sdp: sdp.replace("a=rtpmap:", "a=rtpmap:x"),
    "bad_ssrc": lambda sdp: sdp.replace("a=mid:0", "a=mid:0\r\na=ssrc:abc cname:x"),
    "md5_fingerprint": lambda sdp: sdp.replace("a=fingerprint:sha-256 ", "a=fingerprint:md5 "),
    "second_audio_without_ice": lambda sdp: sdp.replace(
        "m=application", "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:9\r\nm=application"
    ),
}


async def sdp_bodies(rng: random.Random) -> tuple[str, bytes, str]:
    """(what, body, content type) of a hostile WebRTC offer."""
    variant = rng.choice(["garbage", "binary", "no_audio", "truncated", "huge", "wrong_type",
                          "audio_no_ice", "empty", "edited", "edited"])  # fmt: skip
    offer = await real_offer(audio=False)
    if variant == "garbage":
        text = random_string(rng, rng.randint(1, 3000)).encode(errors="replace")
        return variant, text, "application/sdp"
    if variant == "binary":
        return variant, rng.randbytes(rng.randint(1, 3000)), "application/sdp"
    if variant == "no_audio":
        return variant, offer.encode(), "application/sdp"
    if variant == "truncated":
        audio_offer = await real_offer(audio=True)
        return (
            variant,
            audio_offer[: rng.randrange(1, len(audio_offer))].encode(),
            "application/sdp",
        )
    if variant == "huge":
        return variant, b"v=0\r\n" + b"a=x\r\n" * 200_000, "application/sdp"
    if variant == "wrong_type":
        return variant, offer.encode(), "text/plain"
    if variant == "audio_no_ice":
        audio = (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
            "a=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n"
        )
        return variant, audio.encode(), "application/sdp"
    if variant == "edited":
        edit = rng.choice(sorted(OFFER_EDITS))
        body = OFFER_EDITS[edit](await real_offer(audio=True)).encode()
        return f"edited_{edit}", body, "application/sdp"
    return variant, b"", "application/sdp"


# --- the run --------------------------------------------------------------------------------

#: The final turn's configuration (whatever the cases left behind) and question.
FINAL_SESSION = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "instructions": "You are a friendly companion.",
        "output_modalities": ["audio"],
        "max_output_tokens": 60,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": None,  # no turn of the cases' audio may start a reply now
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}},
        },
    },
}
FINAL_QUESTION = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hello! How are you today?"}],
    },
}


class Fuzzer:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        seed: int,
        log: Callable[[str], None],
    ):
        self.http_url = url.rstrip("/")
        self.ws_url = self.http_url.replace("http", "ws", 1) + "/v1/realtime"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.log = log
        self.ws: ClientConnection | None = None
        self.pings = 0

    async def connect(self) -> ClientConnection:
        ws = await connect(
            self.ws_url, additional_headers=self.headers, max_size=None, open_timeout=30
        )
        async with asyncio.timeout(30):
            while json.loads(await ws.recv())["type"] != "session.created":
                pass
        self.ws = ws
        return ws

    async def sync(self, ws: ClientConnection) -> list[dict[str, Any]]:
        """Errors received until the server has handled everything sent before this call."""
        self.pings += 1
        ping = f"fuzz_sync_{self.pings}"
        await ws.send(
            json.dumps({"type": "conversation.item.retrieve", "item_id": ping, "event_id": ping})
        )
        errors: list[dict[str, Any]] = []
        async with asyncio.timeout(SYNC_TIMEOUT_S):
            while True:
                event = json.loads(await ws.recv())
                if event["type"] != "error":
                    continue
                if event["error"].get("event_id") == ping:
                    return errors
                errors.append(event["error"])

    async def run_case(self, index: int, case: Case) -> None:
        ws = self.ws or await self.connect()
        self.tally.cases[case.kind] += 1
        label = f"case {index} ({case.kind})"
        try:
            for message in case.messages:
                await ws.send(message)
            errors = await self.sync(ws)
        except ConnectionClosed as closed:
            # The client never closes before the end: this close is the server's.
            self.tally.server_closes.append(
                f"{label}: code {closed.rcvd.code if closed.rcvd else 1006}"
            )
            self.log(f"!! server ended the connection at {label}; reconnecting")
            self.ws = None
            return
        except TimeoutError:
            self.tally.unanswered.append(label)
            self.log(f"!! {label} not answered within {SYNC_TIMEOUT_S:.0f} s; reconnecting")
            await ws.close()
            self.ws = None
            return
        self.tally.errors += len(errors)
        self.tally.error_codes.update(str(error.get("code")) for error in errors)
        if case.expect == "one_error" and len(errors) != 1:
            self.tally.wrong_error_counts[case.kind] += 1
            codes = [error.get("code") for error in errors]
            self.tally.wrong_error_examples.append(f"{label}: {len(errors)} errors {codes}")

    async def post(self, path: str, body: bytes, content_type: str | None) -> tuple[int, str]:
        """Status and ``Location`` of one POST (standard library, in a thread).

        The server may answer (413) and close before the whole body is sent: the answer is
        read all the same.
        """
        address = urllib.parse.urlsplit(self.http_url)

        def send() -> tuple[int, str]:
            connection = http.client.HTTPConnection(address.netloc, timeout=60)
            headers = {**self.headers, "Content-Length": str(len(body))}
            if content_type is not None:
                headers["Content-Type"] = content_type
            try:
                try:
                    connection.request("POST", path, body=body, headers=headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused before the end of the body; the answer is waiting
                response = connection.getresponse()
                response.read()
                return response.status, response.getheader("location") or ""
            finally:
                connection.close()

        return await asyncio.to_thread(send)

    async def run_http(self, index: int) -> None:
        if self.rng.random() < 0.5:
            what, body, content_type = card_bodies(self.rng)
            path, kind = "/v1/characters", f"card_{what}"
        else:
            what, body, content_type = await sdp_bodies(self.rng)
            path, kind = "/v1/realtime/calls", f"sdp_{what}"
        self.tally.cases[f"http_{kind}"] += 1
        try:
            status, location = await self.post(path, body, content_type)
        except OSError as exc:  # reset or refused: the server did not answer
            self.tally.http_5xx.append(f"case {index} ({kind}): no answer ({exc})")
            return
        self.tally.http_status[str(status)] += 1
        if status >= 500:
            self.tally.http_5xx.append(f"case {index} ({kind}): {status}")
        elif status < 400 and path == "/v1/realtime/calls":
            await self.post(location + "/hangup", b"", None)  # an answered edit: fine
        elif status < 400:
            self.tally.http_accepted.append(f"case {index} ({kind}): {status}")

    async def final_turn(self) -> str:
        """A typed turn on the same connection, back on a known configuration."""
        try:
            ws = self.ws or await self.connect()
            await ws.send(json.dumps({"type": "response.cancel"}))
            await ws.send(json.dumps(FINAL_SESSION))
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await self.sync(ws)
            await ws.send(json.dumps(FINAL_QUESTION))
            await ws.send(json.dumps({"type": "response.create", "event_id": "fuzz_final"}))
            ours: str | None = None  # the id of the response our create started
            audio_bytes = 0
            async with asyncio.timeout(FINAL_TURN_TIMEOUT_S):
                while True:
                    event = json.loads(await ws.recv())
                    kind = event["type"]
                    if kind == "error" and event["error"].get("event_id") == "fuzz_final":
                        if ours is None:  # an earlier response is still on: cancel and retry
                            await ws.send(json.dumps({"type": "response.cancel"}))
                            await ws.send(json.dumps({"type": "response.create",
                                                      "event_id": "fuzz_final"}))  # fmt: skip
                    elif kind == "response.created" and ours is None:
                        ours = event["response"]["id"]
                    elif kind == "response.output_audio.delta" and event["response_id"] == ours:
                        audio_bytes += len(base64.b64decode(event["delta"]))
                    elif kind == "response.done" and event["response"]["id"] == ours:
                        status = event["response"]["status"]
                        if status == "completed" and audio_bytes:
                            return "answered"
                        return f"{status} with {audio_bytes} bytes of audio"
        except ConnectionClosed:
            self.tally.server_closes.append("final turn")
            return "connection ended by the server"
        except TimeoutError:
            return f"not answered within {FINAL_TURN_TIMEOUT_S:.0f} s"

    async def run(self, cases: int, http_share: float = 0.15) -> Tally:
        names = list(CASES)
        weights = [CASES[name][0] for name in names]
        started = time.monotonic()
        await self.connect()
        for index in range(1, cases + 1):
            if self.rng.random() < http_share:
                await self.run_http(index)
            else:
                case = CASES[self.rng.choices(names, weights)[0]][1](self.rng)
                await self.run_case(index, case)
            if index % 50 == 0 or index == cases:
                t = self.tally
                self.log(
                    f"[{index}/{cases}] {time.monotonic() - started:.0f} s  errors={t.errors}  "
                    f"server_closes={len(t.server_closes)}  5xx={len(t.http_5xx)}  "
                    f"wrong_error_counts={sum(t.wrong_error_counts.values())}"
                )
        self.tally.final_turn = await self.final_turn()
        if self.ws is not None:
            await self.ws.close()
        return self.tally


async def fuzz(
    url: str,
    *,
    cases: int,
    seed: int,
    api_key: str | None = None,
    log: Callable[[str], None] = print,
) -> Tally:
    """Run ``cases`` seeded cases against the server at ``url``; the tally of what happened."""
    fuzzer = Fuzzer(url, api_key, seed, log)
    return await fuzzer.run(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's HTTP base")
    parser.add_argument("--api-key", default=None, help="API key (loopback may omit it)")
    parser.add_argument("--spawn", action="store_true", help="start a voice serve of its own")
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        url, api_key = args.url, args.api_key
        if args.spawn:
            server = stack.enter_context(spawned_server("fuzz-wire"))
            url, api_key = server.http, server.api_key
            print(f"spawned voice serve at {url}; its log: {server.log_path}", flush=True)
        tally = asyncio.run(
            fuzz(
                url,
                cases=args.cases,
                seed=args.seed,
                api_key=api_key,
                log=lambda line: print(line, flush=True),
            )
        )
    print(f"--- summary (seed {args.seed}, {time.monotonic() - started:.0f} s)")
    print(tally.summary())
    sys.exit(0 if tally.ok else 1)


if __name__ == "__main__":
    main()
