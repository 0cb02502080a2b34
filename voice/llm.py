"""Chat completions streamed from any OpenAI-compatible endpoint through the ``openai`` client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam


class ChatLLM:
    """Streams reply text for a list of chat messages."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "none",
        *,
        max_tokens: int = 200,
        temperature: float = 0.7,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    async def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        """Yield text deltas as the model writes them.

        Closing or cancelling the iteration closes the HTTP stream, which tells the
        model server to stop generating.
        """
        stream = await self._client.chat.completions.create(
            model=self.model,
            messages=cast(list[ChatCompletionMessageParam], messages),
            stream=True,
            max_tokens=max_tokens or self.max_tokens,
            temperature=self.temperature,
        )
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int = 1) -> str:
        """One non-streamed completion (used to warm the prompt cache)."""
        result = await self._client.chat.completions.create(
            model=self.model,
            messages=cast(list[ChatCompletionMessageParam], messages),
            max_tokens=max_tokens,
            temperature=0.0,
        )
        return result.choices[0].message.content or ""

    async def aclose(self) -> None:
        await self._client.close()
