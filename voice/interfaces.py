"""What one call needs of the shared models, as protocols.

The loaded engines (:class:`voice.engines.Engines`) satisfy them, and so do the scripted
fakes of the tests, without either naming the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from voice.audio import Float32Array
from voice.call_load import CallLoad
from voice.llm import StreamReport
from voice.stt import SttOptions, Transcript
from voice.tools import Message, ToolCallDelta, ToolSpec
from voice.voices import Voice


class ChatModel(Protocol):
    """Streams a reply's text for chat messages (an OpenAI-compatible endpoint)."""

    @property
    def model(self) -> str: ...

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        report: StreamReport | None = None,
        tools: ToolSpec | None = None,
    ) -> AsyncIterator[str | ToolCallDelta]:
        """Text deltas (and with ``tools``, pieces of function calls) as the model writes
        them; closing the iteration stops the model. ``report`` learns why the stream ended
        and the tokens it cost.
        """
        ...


class SpeechToText(Protocol):
    @property
    def multilingual(self) -> bool:
        """Whether the model knows other languages than English."""
        ...

    async def transcribe(
        self, audio: Float32Array, options: SttOptions | None = None
    ) -> Transcript:
        """The words in 16 kHz mono ``audio`` (in ``options.language``, if given)."""
        ...


class EndOfTurnModel(Protocol):
    async def complete(self, audio: Float32Array) -> float:
        """Probability that the user's turn in 16 kHz ``audio`` (ending now) is complete."""
        ...


class VoiceSource(Protocol):
    """The voice presets a session may speak with."""

    @property
    def names(self) -> Sequence[str]: ...

    @property
    def default(self) -> str: ...

    @property
    def aliases(self) -> Mapping[str, str]:
        """Other names clients may ask for -> the preset that speaks for them."""
        ...

    async def get(self, name: str | None = None) -> Voice:
        """The voice ``name`` (default: :attr:`default`), its model loaded."""
        ...


class SessionEngines(Protocol):
    """The models a session borrows; it never closes them."""

    @property
    def stt(self) -> SpeechToText: ...

    @property
    def voices(self) -> VoiceSource: ...

    @property
    def llm(self) -> ChatModel: ...

    @property
    def turn_model(self) -> EndOfTurnModel | None:
        """The end-of-turn model; None: the words alone end turns early or hold them."""
        ...

    @property
    def calls(self) -> CallLoad:
        """The live calls borrowing these models; a session counts itself in."""
        ...
