"""A reply prepared during the end-of-turn silence, used only if the turn ends as guessed.

Once the speculative transcript of a pause sounds finished, the floor starts the reply
to it as a *held* :class:`~voice.response.ResponseRun`: the model writes and the first
clause is synthesized while the silence is still being confirmed. When the turn is
committed, the prepared run is taken only if everything the reply depends on (the
:class:`ReplyRecipe`: prompt, voice and speed, modalities, token limit, tools) is exactly
what a fresh run would get; otherwise, or if the user goes on speaking, it is cancelled
unheard.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from voice.response import ReplyPlan, ResponseRun
from voice.tools import Message, ToolSpec


@dataclass(frozen=True)
class ReplyRecipe:
    """Everything a reply is generated from; a prepared reply is valid only for its recipe."""

    messages: tuple[str, ...]
    voice: str
    modalities: tuple[str, ...]
    max_tokens: int | None
    speed: float = 1.0
    tools: ToolSpec | None = None

    @classmethod
    def of(
        cls,
        messages: list[Message],
        voice: str,
        modalities: Sequence[str],
        max_tokens: int | None,
        *,
        speed: float = 1.0,
        tools: ToolSpec | None = None,
    ) -> ReplyRecipe:
        texts = tuple(json.dumps(message, sort_keys=True) for message in messages)
        return cls(texts, voice, tuple(modalities), max_tokens, speed, tools)


class PreparedReply:
    """The session's slot for at most one held run and the recipe it was made from."""

    def __init__(self) -> None:
        self._run: ResponseRun | None = None
        self._recipe: ReplyRecipe | None = None

    @property
    def run(self) -> ResponseRun | None:
        return self._run

    def hold(self, recipe: ReplyRecipe, run: ResponseRun) -> None:
        """Keep ``run`` (started, held), made from ``recipe``."""
        if self._run is not None:
            raise RuntimeError("a prepared reply is already held; discard it first")
        self._run, self._recipe = run, recipe

    def take(self, recipe: ReplyRecipe) -> ResponseRun | None:
        """The held run, if it answers exactly ``recipe`` and has not failed; else None.

        A run that is taken leaves the slot; one that is not stays for :meth:`discard`.
        """
        run = self._run
        if run is None or self._recipe != recipe or run.failure is not None or run.done:
            return None
        self._run, self._recipe = None, None
        return run

    async def discard(self) -> None:
        """Cancel the held run, if any; the client never hears of it. Safe to call twice."""
        run, self._run, self._recipe = self._run, None, None
        if run is not None and await run.stop():
            run.end_cancelled("turn_detected", run.text, emit=False)


#: Works out a reply to prepare (it may look up a voice), or None if it is no longer wanted.
BuildPlan = Callable[[], Awaitable[tuple[ReplyPlan, ReplyRecipe] | None]]
