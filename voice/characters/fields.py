"""Typed reads of a card's JSON: every field the server uses is checked here.

No I/O. A wrong type raises :class:`CardError`, naming the field's path and what was
expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

ErrorCode = Literal["card_too_large", "malformed_card", "invalid_card"]


class CardError(ValueError):
    """A card that cannot be imported. The message names the problem; ``code`` classifies it:
    ``card_too_large``, ``malformed_card`` (not JSON, not a PNG, bad base64) or
    ``invalid_card`` (well-formed, but not a valid card)."""

    def __init__(self, message: str, code: ErrorCode = "invalid_card") -> None:
        super().__init__(message)
        self.code: ErrorCode = code


class CardFields:
    """Typed reads of one JSON object's fields; errors name the field's path.

    A missing field or ``null`` reads as the empty value: real-world cards use both.
    """

    def __init__(self, obj: Mapping[str, Any], prefix: str) -> None:
        self._obj = obj
        self._prefix = prefix

    def _fail(self, key: str, expected: str, value: object) -> CardError:
        return CardError(f"card '{self._prefix}{key}' must be {expected}, not {json_type(value)}")

    def text(self, key: str) -> str:
        value = self._obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._fail(key, "an array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self._fail(f"{key}[{index}]", "a string", item)
        return tuple(value)

    def keys(self, key: str) -> tuple[str, ...]:
        """Lorebook keys: an array of strings, or (leniently) one comma-separated string."""
        value = self._obj.get(key)
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return self.texts(key)

    def optional_flag(self, key: str) -> bool | None:
        value = self._obj.get(key)
        if value is not None and not isinstance(value, bool):
            raise self._fail(key, "a boolean", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.optional_flag(key)
        return default if value is None else value

    def number(self, key: str) -> float | None:
        value = self._obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number", value)
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        return value


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__
