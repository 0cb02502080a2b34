"""Every way the chat model can fail a reply is one clear ``LLMError``, and the next works.

The faults are real: :class:`FaultyChatEndpoint` breaks, on a real socket, the replies of
a real ``llama_cpp.server`` (the shared test server's embedded SmolLM2 child).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.faulty_chat_endpoint import Fault, FaultyChatEndpoint
from voice.llm import ChatLLM, LLMError, LLMFailure
from voice.llm_server import free_port

pytestmark = pytest.mark.e2e

STORY = [
    {"role": "system", "content": "You are a storyteller."},
    {"role": "user", "content": "Tell me a story about a dragon who loves tea."},
]
#: Generous: the tests must not fail on a busy machine; the faults hit whatever the value.
PATIENT_S = 60.0
#: The timeout under test, where one is.
STRICT_S = 1.0


@pytest.fixture
async def llm(endpoint: FaultyChatEndpoint) -> AsyncIterator[ChatLLM]:
    endpoint.disarm()
    client = ChatLLM(
        endpoint.base_url,
        "smollm2",
        max_tokens=12,  # a loaded 2-core machine may write only a few tokens a second
        first_token_timeout_s=PATIENT_S,
        stall_timeout_s=PATIENT_S,
    )
    yield client
    endpoint.disarm()
    await client.aclose()


async def hung_up(endpoint: FaultyChatEndpoint, fault: Fault | None, timeout: float = 10) -> bool:
    """Whether the client closed the (last) stream that got ``fault``, waiting a while."""
    exchange = endpoint.streams(fault)[-1]
    return await asyncio.to_thread(exchange.client_gone.wait, timeout)


@pytest.mark.parametrize(
    ("fault", "reason", "message", "text_first"),
    [
        ("http_500", "http_error", "answered HTTP 500: injected fault: the model crashed", False),
        ("reset_mid_stream", "connection_lost", "broke in the middle of its reply", True),
        ("close_mid_stream", "connection_lost", "ended before its reply was finished", True),
        ("garbage_bytes", "malformed_stream", "malformed stream chunk (not UTF-8 text)", True),
        ("garbage_json", "malformed_stream", "malformed stream chunk (not valid JSON)", True),
        ("wrong_shape", "malformed_stream", "(not a chat completion chunk)", True),
        ("silent", "first_token_timeout", "no first token from the chat model within 1 s", False),
        ("stall_mid_stream", "stalled", "sent nothing for 1 s in the middle of its reply", True),
    ],
)
async def test_fault_is_a_clear_error_and_the_next_reply_works(
    endpoint: FaultyChatEndpoint,
    llm: ChatLLM,
    fault: Fault,
    reason: LLMFailure,
    message: str,
    text_first: bool,
) -> None:
    if fault == "silent":
        llm.first_token_timeout_s = STRICT_S
    if fault == "stall_mid_stream":
        llm.stall_timeout_s = STRICT_S
    endpoint.arm(fault)
    before: list[str] = []
    with pytest.raises(LLMError) as caught:
        async for delta in llm.stream(STORY):
            before.append(delta)
    assert caught.value.reason == reason
    assert message in str(caught.value)
    assert bool(before) == text_first, before  # the fault hit where it was meant to
    assert len(endpoint.streams(fault)) == 1
    assert await hung_up(endpoint, fault), "the failed stream was left open"

    endpoint.disarm()
    llm.first_token_timeout_s = llm.stall_timeout_s = PATIENT_S
    reply = "".join([delta async for delta in llm.stream(STORY)])
    assert reply.strip()


async def test_the_api_key_is_never_quoted_in_an_error(endpoint: FaultyChatEndpoint) -> None:
    secret = "sk-very-secret-0123456789"
    llm = ChatLLM(endpoint.base_url, "smollm2", secret)
    endpoint.arm("http_401")
    try:
        with pytest.raises(LLMError) as caught:
            async for _ in llm.stream(STORY):
                pass
    finally:
        endpoint.disarm()
        await llm.aclose()
    assert str(caught.value) == (
        "the chat model endpoint answered HTTP 401: Incorrect API key provided: ***."
    )


async def test_unreachable_model_is_named_with_its_address() -> None:
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    llm = ChatLLM(nobody, "smollm2")
    try:
        with pytest.raises(LLMError) as caught:
            async for _ in llm.stream(STORY):
                pass
        assert caught.value.reason == "unreachable"
        assert (
            str(caught.value) == f"could not reach the chat model at {nobody} (connection refused)"
        )
    finally:
        await llm.aclose()


async def test_closing_the_reply_closes_the_http_stream(
    endpoint: FaultyChatEndpoint, llm: ChatLLM
) -> None:
    replies = llm.stream(STORY)
    assert (await anext(replies)).strip()
    await replies.aclose()
    assert await hung_up(endpoint, None)


async def test_cancelling_the_reader_closes_the_http_stream(
    endpoint: FaultyChatEndpoint, llm: ChatLLM
) -> None:
    first = asyncio.Event()

    async def read() -> None:
        async for _ in llm.stream(STORY):
            first.set()
            await asyncio.sleep(3600)  # a consumer busy elsewhere, e.g. playing audio

    reader = asyncio.create_task(read())
    async with asyncio.timeout(PATIENT_S):
        await first.wait()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await hung_up(endpoint, None)


async def test_time_the_consumer_takes_is_not_a_stall(
    endpoint: FaultyChatEndpoint, llm: ChatLLM
) -> None:
    """Only waits for the model count: a consumer slower than the stall timeout is fine."""
    llm.stall_timeout_s = 0.5
    deltas: list[str] = []
    async for delta in llm.stream(STORY):
        deltas.append(delta)
        if len(deltas) == 1:  # busy elsewhere, longer than the stall timeout and the reply
            await asyncio.sleep(2 * llm.stall_timeout_s)
            exchange = endpoint.streams(None)[-1]
            assert await asyncio.to_thread(exchange.upstream_done.wait, PATIENT_S)
    assert len(deltas) > 1
