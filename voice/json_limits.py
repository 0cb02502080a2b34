"""JSON from untrusted clients, decoded within limits checked before and while decoding.

No I/O: text in, plain JSON values out, or a :class:`JsonLimitError` whose ``code`` and
message name the limit. The limits keep hostile input from reaching code that cannot take
it: deep nesting (the decoder and pydantic recurse per level, and 10,000 levels raise
``RecursionError``), integers too long for ``int`` (Python refuses to convert more than
4300 digits), numbers that are not finite (``NaN``, ``Infinity``, ``1e999``: they cannot be
sent back as JSON), and lone UTF-16 surrogates (``"\\ud800"``: a string that cannot be
encoded as UTF-8, so every later ``encode`` or JSON response with it fails).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

import numpy as np

LimitCode = Literal[
    "invalid_json", "nesting_too_deep", "too_many_values", "number_out_of_range", "invalid_string"
]


class JsonLimitError(ValueError):
    """JSON text that is malformed or breaks a limit; ``param`` is where, when known.

    The message starts with a verb, to follow the name of what was decoded: "message is not
    valid JSON: …", "card JSON nests arrays and objects more than 64 levels deep".
    """

    def __init__(self, message: str, code: LimitCode, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code: LimitCode = code
        self.param = param


def loads(text: str, *, max_depth: int, max_int_digits: int, max_members: int | None = None) -> Any:
    """The JSON value of ``text``, nesting at most ``max_depth`` arrays and objects.

    Integers may have at most ``max_int_digits`` digits; every number must be finite and no
    string or key may hold a lone surrogate. With ``max_members``, arrays and objects may
    hold that many elements and members in all (decoding and validating cost per value:
    a 4 MiB array of two million numbers keeps a CPU busy for seconds). Raises
    :class:`JsonLimitError`.
    """
    depth, members = _structure_within(text, max_depth, max_members)
    if depth > max_depth:
        raise _too_deep(max_depth)
    if max_members is not None and members > max_members:
        raise JsonLimitError(
            f"holds more than {max_members} array elements and object members",
            "too_many_values",
        )
    try:
        value = _decoder(max_int_digits).decode(text)
    except json.JSONDecodeError as exc:
        raise JsonLimitError(f"is not valid JSON: {exc}", "invalid_json") from None
    except RecursionError:  # not reached past the check above; the last line of defence
        raise _too_deep(max_depth) from None
    where = _lone_surrogate_at(value) if "\\" in text else None  # only escapes make them
    if where is not None:
        shown = where if len(where) <= 100 else where[:100] + "…"
        raise JsonLimitError(
            "has a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) in "
            f"the string at '{shown or '(top level)'}'",
            "invalid_string",
            shown or None,
        )
    return value


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays and objects deeper than ``limit`` (strings skipped)."""
    return _structure_within(text, limit, None)[0] > limit


def _structure_within(text: str, max_depth: int, max_members: int | None) -> tuple[int, int]:
    """Upper bounds of the nesting depth and the number of members of JSON ``text``.

    Exact enough for the limits: when both are within ``max_depth`` and ``max_members``, the
    text is too. Fast on large messages: a text with few brackets and commas (every audio
    message: base64 has none) is only searched for them, with ``str.find`` at memory speed.
    Otherwise one regular expression (no backtracking) cuts the strings out,
    ``bytes.translate`` keeps the brackets and commas, and the depth is a cumulative sum over
    those, in numpy: no Python loop per character or token. Where the text stops being valid
    JSON the answer may be wrong, but only past the point where the decoder stops too.
    """
    opening = _occurrences(text, "[", max_depth + 1) + _occurrences(text, "{", max_depth + 1)
    commas = 0 if max_members is None else _occurrences(text, ",", max_members + 1)
    if opening <= max_depth and (max_members is None or opening + commas <= max_members):
        return opening, opening + commas
    if max_members is not None and text.count('"') - text.count("\\") > 4 * max_members + 2:
        # Each string is a key or a value, so there are more members than allowed (a
        # backslash escapes at most one of the quotes): no need to cut the strings out.
        return min(opening, max_depth), max_members + 1
    structure = _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _OTHER)
    brackets = structure.replace(b",", b"")
    # Each member but the first of a container follows a comma: commas + containers bound it.
    members = len(structure) - len(brackets) + brackets.count(b"[") + brackets.count(b"{")
    steps = np.frombuffer(brackets.translate(_DEPTH_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0)), members


#: A JSON string literal, matched without backtracking (possessive quantifiers).
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
#: Every byte but those of the structure: brackets and commas.
_OTHER = bytes(byte for byte in range(256) if byte not in b"[]{},")
#: Brackets as steps of nesting depth, read as int8: opening +1, closing -1.
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _occurrences(text: str, char: str, cap: int) -> int:
    """How often ``char`` occurs in ``text``, counting no further than ``cap``.

    (``str.find`` of one character runs at memory speed; ``str.count`` is several times slower.)
    """
    found, position = 0, text.find(char)
    while position >= 0 and found < cap:
        found, position = found + 1, text.find(char, position + 1)
    return found


def _too_deep(limit: int) -> JsonLimitError:
    return JsonLimitError(
        f"nests arrays and objects more than {limit} levels deep", "nesting_too_deep"
    )


_DECODERS: dict[int, json.JSONDecoder] = {}


def _decoder(max_int_digits: int) -> json.JSONDecoder:
    """A decoder whose number hooks enforce the limits (they run only for numbers)."""
    decoder = _DECODERS.get(max_int_digits)
    if decoder is None:

        def parse_int(literal: str) -> int:
            digits = len(literal) - literal.startswith("-")
            if digits > max_int_digits:
                raise JsonLimitError(
                    f"has an integer of {digits} digits; at most {max_int_digits} are accepted",
                    "number_out_of_range",
                )
            return int(literal)

        decoder = _DECODERS[max_int_digits] = json.JSONDecoder(
            parse_int=parse_int, parse_float=_parse_float, parse_constant=_reject_constant
        )
    return decoder


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        shown = literal if len(literal) <= 40 else literal[:40] + "…"
        raise JsonLimitError(
            f"has the number {shown}, too large for a 64-bit float", "number_out_of_range"
        )
    return value


def _reject_constant(name: str) -> float:
    raise JsonLimitError(f"has {name}, which is not a JSON number", "invalid_json")


def _lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """The path of the first string or key in ``value`` holding a lone surrogate, if any.

    Only a ``\\udxxx`` escape can put one there (text from the network was decoded from
    strict UTF-8), and ``isascii`` costs nothing for a Python string: a megabyte of base64
    audio is not read here.
    """
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if _has_surrogate(key):
                return where.encode("utf-8", "backslashreplace").decode()
            found = _lone_surrogate_at(item, where)
            if found is not None:
                return found
    return None


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
