"""Card macros: ``{{char}}``, ``{{user}}``, their legacy forms, and ``{{// comments}}``.

Matched case-insensitively, in one pass, so a name that itself contains ``{{user}}`` is
not expanded again.
"""

from __future__ import annotations

import re

_MACRO = re.compile(
    r"\{\{\s*(?P<curly>char|user)\s*\}\}|<(?P<angle>bot|char|user)>|\{\{//.*?\}\}",
    re.IGNORECASE | re.DOTALL,
)


def expand(text: str, *, char: str, user: str) -> str:
    """``text`` with ``{{char}}``/``<BOT>``/``<char>`` as ``char``, ``{{user}}``/``<USER>``
    as ``user``, and ``{{// …}}`` comments removed."""

    def replace(match: re.Match[str]) -> str:
        name = (match["curly"] or match["angle"] or "").lower()
        if not name:
            return ""  # a {{// comment}}
        return user if name == "user" else char

    return _MACRO.sub(replace, text)
