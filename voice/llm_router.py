"""Which copy of the chat model a request goes to, when there are several.

A llama.cpp server built by llama-cpp-python answers one request at a time: with one
copy, a call's reply waits for every other call's whole reply. With a few copies (the
embedded pool, ``VOICE_LLM_PROCESSES``) each request goes to the copy with the fewest
requests in flight; among those, to the one whose last prompt shares the most leading
messages with this one, so the copy that has this call's conversation in its prompt
cache answers it and the first token comes without re-reading the card and the turns.

The choice is made when the request starts, on the event loop (no lock needed), and the
request holds its copy until it ends, however it ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI


@dataclass
class Endpoint:
    """One copy of the model: its client, its requests in flight, its last prompt."""

    base_url: str
    client: AsyncOpenAI
    in_flight: int = 0
    last_prompt: Sequence[Any] = field(default_factory=tuple)
    #: Requests it was given, since start (``/health``).
    served: int = 0


def shared_lead(a: Sequence[Any], b: Sequence[Any]) -> int:
    """How many leading messages ``a`` and ``b`` have in common."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def choose(endpoints: Sequence[Endpoint], messages: Sequence[Any]) -> Endpoint:
    """The least busy endpoint; between equally busy ones, the best prompt-cache match,
    then the first."""
    return min(
        endpoints,
        key=lambda e: (e.in_flight, -shared_lead(e.last_prompt, messages)),
    )


class EndpointRouter:
    """The endpoints of one chat model, and the choice of one per request."""

    def __init__(self, base_urls: Sequence[str], api_key: str) -> None:
        if not base_urls:
            raise ValueError("a chat model needs at least one endpoint")
        self.endpoints = [
            Endpoint(url, AsyncOpenAI(base_url=url, api_key=api_key, max_retries=0))
            for url in base_urls
        ]

    @property
    def base_url(self) -> str:
        """The first endpoint's URL (what errors and ``/health`` name)."""
        return self.endpoints[0].base_url

    @contextmanager
    def lease(self, messages: Sequence[Any], base_url: str | None = None) -> Iterator[Endpoint]:
        """The endpoint for a request with ``messages`` (or the one at ``base_url``: a
        warm-up), held while the block runs."""
        if base_url is None:
            endpoint = choose(self.endpoints, messages)
        else:
            endpoint = next(e for e in self.endpoints if e.base_url == base_url)
        endpoint.in_flight += 1
        endpoint.served += 1
        endpoint.last_prompt = tuple(messages)
        try:
            yield endpoint
        finally:
            endpoint.in_flight -= 1

    def status(self) -> list[dict[str, Any]]:
        """Per endpoint: its URL, requests in flight and requests served."""
        return [
            {"base_url": e.base_url, "in_flight": e.in_flight, "served": e.served}
            for e in self.endpoints
        ]

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()
