"""What a reply is made from: its prompt, voice, modalities and limit, under a session's settings.

No I/O but the voice lookup (a voice model may load on first use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from voice.companion import Companion
from voice.config import Settings
from voice.conversation import Conversation, Item, fit_turns
from voice.interfaces import VoiceSource
from voice.prepared import BuildPlan, ReplyRecipe
from voice.response import ReplyPlan
from voice.response_request import ResponseRequest
from voice.session_config import SessionConfig
from voice.tools import Message, call_message, output_message

Messages = list[Message]


def prompt_messages(
    conversation: Conversation,
    companion: Companion | None,
    config: SessionConfig,
    *,
    history_turns: int,
    budget_tokens: int,
    instructions: str | None = None,
    pending: Sequence[Item] = (),
    context: Sequence[Item] | None = None,
) -> Messages:
    """The model's messages: the character's prompt, or the session instructions.

    ``instructions`` are a response's own (they replace the session's, or add to a
    character's card); ``pending`` items count as part of the conversation (a turn not
    yet committed); ``context`` replaces the conversation (a response's own ``input``).
    Without a character the turns are cut to ``budget_tokens`` as the session's
    ``truncation`` says (a character's prompt fits its own budget).
    """
    items = [*(conversation if context is None else context), *pending]
    turns = chat_turns(items)
    if config.truncation != "disabled":
        turns = turns[-history_turns:]
    if companion is not None:
        extra = instructions if instructions is not None else config.client_instructions or ""
        return companion.messages(turns, extra)
    chosen = config.instructions if instructions is None else instructions
    system = [{"role": "system", "content": chosen}] if chosen else []
    return system + fit_turns(turns, budget_tokens, system, config.truncation)


def chat_turns(items: Sequence[Item]) -> Messages:
    """The conversation's items as chat turns: messages with words, completed function calls
    and their results (a result whose call is not there is told in words).

    Spoken user messages that follow each other with nothing heard between them are one
    turn (typed ones stay apart, each fitted to the budget on its own): a user who paused,
    was answered, and went on before a word of the answer was heard (the answer's item is
    empty), or spoke again while it was being written.
    """
    turns: Messages = []
    spoken_user = False  # the last turn is a user message said aloud
    calls = {item.call_id for item in items if item.kind == "function_call"}
    for item in items:
        if item.kind != "message":
            spoken_user = False
        if item.kind == "function_call":
            if item.status == "completed":
                turns.append(call_message(item.call_id, item.name, item.arguments))
        elif item.kind == "function_call_output":
            if item.call_id in calls:
                turns.append(output_message(item.call_id, item.text))
            else:
                turns.append({"role": "system", "content": f"(A function returned: {item.text})"})
        elif item.text.strip():
            if item.role == "user" and item.from_audio and spoken_user:
                turns[-1]["content"] = f"{turns[-1]['content'].rstrip()} {item.text.strip()}"
            else:
                turns.append({"role": item.role, "content": item.text})
            spoken_user = item.role == "user" and item.from_audio
    return turns


async def plan_reply(
    voices: VoiceSource,
    config: SessionConfig,
    messages: Messages,
    request: ResponseRequest | None = None,
    script: str | None = None,
) -> tuple[ReplyPlan, ReplyRecipe]:
    """A reply to ``messages`` as the session's settings and ``request`` say, and its recipe."""
    request = request or ResponseRequest()
    chosen = list(request.modalities or config.output_modalities)
    voice_name = request.voice or config.voice
    voice = await voices.get(voice_name)
    if config.speed != 1.0:
        prosody = dataclasses.replace(
            voice.prosody, length_scale=voice.prosody.length_scale / config.speed
        )
        voice = dataclasses.replace(voice, prosody=prosody)
    tokens = config.max_output_tokens
    if request.max_output_tokens is not None:
        tokens = request.max_output_tokens or None
    tools = request.tools or config.tools
    offered = tools if tools.active and script is None else None
    plan = ReplyPlan(
        messages, voice, "audio" in chosen, tokens, script,
        in_conversation=request.in_conversation, metadata=request.metadata, tools=offered,
    )  # fmt: skip
    recipe = ReplyRecipe.of(messages, voice_name, chosen, tokens, speed=config.speed, tools=offered)
    return plan, recipe


class ReplyMaker:
    """Works out a session's replies: the prompt from its conversation and companion, the
    voice and limits from its configuration (read anew for every reply)."""

    def __init__(
        self,
        voices: VoiceSource,
        conversation: Conversation,
        settings: Settings,
        *,
        config: Callable[[], SessionConfig],
        companion: Callable[[], Companion | None],
    ) -> None:
        self._voices = voices
        self._conversation = conversation
        self._settings = settings
        self._config = config
        self._companion = companion

    async def make(
        self,
        request: ResponseRequest | None = None,
        *,
        script: str | None = None,
        pending: Sequence[Item] = (),
    ) -> tuple[ReplyPlan, ReplyRecipe]:
        """The plan of a reply (to the conversation and ``pending``) and its recipe."""
        request = request or ResponseRequest()
        config = self._config()
        messages = prompt_messages(
            self._conversation, self._companion(), config,
            history_turns=self._settings.history_turns,
            budget_tokens=self._settings.prompt_budget_tokens,
            instructions=request.instructions, pending=pending, context=request.input,
        )  # fmt: skip
        return await plan_reply(self._voices, config, messages, request, script)

    def ahead(self, guess: Item, wanted: Callable[[], bool]) -> BuildPlan:
        """How to plan the reply to ``guess`` (the turn not yet ended): dropped once planned
        unless still ``wanted`` -- the user may have gone on, or the turn ended meanwhile."""

        async def build() -> tuple[ReplyPlan, ReplyRecipe] | None:
            plan = await self.make(pending=[guess])
            return plan if wanted() else None

        return build
