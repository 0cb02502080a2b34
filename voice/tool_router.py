"""Which tool a request is about, for models too small to choose one themselves.

No I/O. With ``tool_choice: "auto"`` a model without native tool calling (the bundled
SmolLM2-135M) must still decide whether to call a function. Asked directly, that model
picks the first option whatever the request (measured: BENCHMARKS.md, "Function
calling"), so the choice is made here, by words: a tool is chosen when the user's last
message shares a content word (after a light stemming) with the tool's name, description
or parameter names. What it misses ("will I need an umbrella" for ``get_weather``) is a
plain reply; the arguments are then written by the model under a grammar.
"""

from __future__ import annotations

import re

from voice.tools import FunctionTool

#: Words that say nothing about which tool is meant.
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further get gets had has have having he her here hers him his how i if in into is it its
    just me more most my myself no nor not now of off on once only or other our out over own
    please same she should so some such than that the their them then there these they this
    those through to too under until up very was we were what when where which while who whom
    why will with would you your yours set give make let tell current new user users value
    number name string like want need one two three four five six seven eight nine ten""".split()
)
_SUFFIXES = ("ings", "ing", "ers", "er", "ied", "ies", "ed", "es", "s")


def stem(word: str) -> str:
    """A crude stem: lower case, one common suffix off (timers, timer -> tim... kept >= 3)."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """The stems of the words in ``text`` that are not stop words (``snake_case`` split)."""
    words = re.findall(r"[a-z]+", text.replace("_", " ").lower())
    return {stem(word) for word in words if word not in STOPWORDS and len(word) > 2}


def tool_words(tool: FunctionTool) -> set[str]:
    properties = tool.parameters.get("properties") or {}
    return content_words(" ".join([tool.name, tool.description, *properties]))


def relevant_tool(request: str, tools: tuple[FunctionTool, ...]) -> FunctionTool | None:
    """The tool sharing the most content words with ``request`` (ties: the first), or None."""
    asked = content_words(request)
    best, best_score = None, 0
    for tool in tools:
        score = len(asked & tool_words(tool))
        if score > best_score:
            best, best_score = tool, score
    return best
