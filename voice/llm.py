"""Chat completions streamed from any OpenAI-compatible endpoint through the ``openai`` client.

Every way the model can fail a reply ends in one :class:`LLMError` whose message says what
happened in plain words (a user sees it in ``response.done``, an operator in the log) and
whose :attr:`LLMError.reason` names the kind of failure for code. Nothing is retried: a
reply is asked for once, so a half-spoken reply is never started again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from voice import constrained_calls
from voice.llm_router import EndpointRouter
from voice.protocol import new_id
from voice.tools import FunctionTool, Message, ToolCallDelta, ToolSpec, as_text

ToolMode = Literal["native", "constrained"]

#: Kinds of failure, stable for code (the messages are for people and may be reworded).
LLMFailure = Literal[
    "unreachable",  # no connection could be made
    "http_error",  # the endpoint answered with an HTTP error status
    "connection_lost",  # the connection broke, or the stream ended, before the reply did
    "malformed_stream",  # a stream chunk that is not text, JSON, or a chat completion chunk
    "stream_error",  # the endpoint sent an error event in the stream
    "first_token_timeout",  # no text within the first-token timeout
    "stalled",  # the stream went quiet for the stall timeout after text had come
]

#: Longest part of an endpoint's own error message quoted in ours.
MAX_QUOTED_CHARS = 200


@dataclass
class StreamReport:
    """What a stream said about itself: why it ended, and the tokens it cost.

    The tokens are the endpoint's own usage figures when it sends them (asked for with
    ``stream_options.include_usage``; vLLM and OpenAI do). An endpoint that does not (the
    embedded llama.cpp server, which streams one token per chunk) leaves ``input_tokens``
    unknown, and ``output_tokens`` counts the text chunks it streamed.
    """

    finish_reason: str | None = None
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    #: Text chunks received (the output tokens, where the endpoint reports none).
    chunks: int = 0
    reported_usage: bool = False

    def take_usage(self, usage: Any) -> None:
        """The endpoint's ``usage`` object, if a chunk carried one."""
        if usage is None:
            return
        self.reported_usage = True
        self.input_tokens = getattr(usage, "prompt_tokens", None)
        self.output_tokens = getattr(usage, "completion_tokens", None)
        details = getattr(usage, "prompt_tokens_details", None)
        self.cached_tokens = getattr(details, "cached_tokens", None)

    def finish(self) -> None:
        if not self.reported_usage:
            self.output_tokens = self.chunks

    @property
    def cut_off(self) -> bool:
        """The model stopped at the token limit, not at the end of what it had to say."""
        return self.finish_reason == "length"


class LLMError(Exception):
    """The chat model could not give (all of) a reply; ``str()`` says why."""

    def __init__(self, reason: LLMFailure, message: str) -> None:
        super().__init__(message)
        self.reason: LLMFailure = reason


class ChatLLM:
    """Streams reply text for a list of chat messages."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        api_key: str = "none",
        *,
        max_tokens: int = 200,
        temperature: float = 0.7,
        first_token_timeout_s: float = 15.0,
        stall_timeout_s: float = 10.0,
        tool_mode: ToolMode = "native",
    ) -> None:
        #: Several URLs: copies of one model, each request to the least busy (llm_router).
        self._router = EndpointRouter(
            [base_url] if isinstance(base_url, str) else base_url, api_key
        )
        self.base_url = self._router.base_url
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.first_token_timeout_s = first_token_timeout_s
        self.stall_timeout_s = stall_timeout_s
        #: How function calls are asked for: the endpoint's own tool calling ("native"), or
        #: for a model without it, JSON decoded under a grammar (voice.constrained_calls).
        self.tool_mode: ToolMode = tool_mode
        self._api_key = api_key  # scrubbed from the endpoint's words quoted in errors

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        report: StreamReport | None = None,
        tools: ToolSpec | None = None,
    ) -> AsyncIterator[str | ToolCallDelta]:
        """Yield the reply as the model writes it: text deltas, and pieces of function calls
        when ``tools`` are offered. ``report`` learns why it ended, and what it cost.

        Raises :class:`LLMError` (see :meth:`_stream`).
        """
        if tools is None or not tools.active:
            plain = as_text(messages, None) if self.tool_mode == "constrained" else messages
            async for piece in self._stream(plain, max_tokens, report):
                yield piece
            return
        if self.tool_mode == "native":
            extra = {
                "tools": [tool.chat_tool() for tool in tools.tools],
                "tool_choice": tools.choice.chat_choice(),
            }
            async for piece in self._stream(messages, max_tokens, report, **extra):
                yield piece
            return
        worded = as_text(messages, tools)
        tool = await self._choose(messages, worded, tools)
        if tool is None:
            async for piece in self._stream(worded, max_tokens, report):
                yield piece
            return
        yield ToolCallDelta(0, new_call_id(), tool.name, "")
        asked, grammar = constrained_calls.arguments_request(tool, worded)
        async for piece in self._stream(asked, max_tokens, report, response_format=grammar):
            yield ToolCallDelta(0, None, None, str(piece))
        if report is not None and report.finish_reason == "stop":
            report.finish_reason = "tool_calls"

    async def _choose(
        self, messages: list[Message], worded: list[Message], spec: ToolSpec
    ) -> FunctionTool | None:
        """The function a constrained reply calls (None: it replies in words); ``worded``:
        ``messages`` with the calls and results in words, as the model is asked."""
        chosen = constrained_calls.chosen_without_model(spec, messages)
        if chosen != "ask":
            return chosen if isinstance(chosen, FunctionTool) else None
        asked, grammar = constrained_calls.pick_request(spec, worded)
        extra = {"response_format": grammar}
        content = "".join([str(p) async for p in self._stream(asked, 32, None, **extra)])
        return constrained_calls.picked(content, spec)

    async def _stream(
        self,
        messages: list[Message],
        max_tokens: int | None,
        report: StreamReport | None,
        **extra: Any,
    ) -> AsyncIterator[str | ToolCallDelta]:
        """One streamed request: its text and tool-call deltas (``extra``: more parameters).

        Raises :class:`LLMError` when the request fails, when no text arrives within
        ``first_token_timeout_s`` of the call, when the stream then goes quiet for
        ``stall_timeout_s``, breaks, is malformed, or ends before the model said it had
        finished. Only the waits for the model count: time the caller spends between two
        deltas does not. Closing or cancelling the iteration closes the HTTP stream, which
        tells the model server to stop generating.
        """
        with self._router.lease(messages) as endpoint:
            pieces = self._stream_from(endpoint.client, messages, max_tokens, report, **extra)
            async with aclosing(pieces):  # closing this iteration closes the HTTP stream now
                async for piece in pieces:
                    yield piece

    async def _stream_from(
        self,
        client: AsyncOpenAI,
        messages: list[Message],
        max_tokens: int | None,
        report: StreamReport | None,
        **extra: Any,
    ) -> AsyncGenerator[str | ToolCallDelta, None]:
        loop = asyncio.get_running_loop()
        first_token_deadline = loop.time() + self.first_token_timeout_s
        wrote = False
        try:
            async with asyncio.timeout_at(first_token_deadline) as waiting:
                stream = await client.chat.completions.create(
                    model=self.model,
                    messages=cast(list[ChatCompletionMessageParam], messages),
                    stream=True,
                    stream_options={"include_usage": True},
                    max_tokens=max_tokens or self.max_tokens,
                    temperature=self.temperature,
                    **extra,
                )
        except TimeoutError:
            if not waiting.expired():
                raise
            raise self._first_token_timeout() from None
        except openai.APIError as exc:
            raise self._request_error(exc) from exc
        async with stream:
            finished = False
            while True:
                deadline = loop.time() + self.stall_timeout_s if wrote else first_token_deadline
                try:
                    async with asyncio.timeout_at(deadline) as waiting:
                        chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if not waiting.expired():
                        raise
                    if wrote:
                        raise LLMError(
                            "stalled",
                            f"the chat model sent nothing for {self.stall_timeout_s:g} s "
                            "in the middle of its reply",
                        ) from None
                    raise self._first_token_timeout() from None
                except (openai.APIError, ValueError) as exc:
                    raise _stream_error(exc, wrote, self._api_key) from exc
                text, done, calls = read_chunk(chunk)
                finished = finished or done is not None
                if report is not None:
                    report.take_usage(getattr(chunk, "usage", None))
                    report.finish_reason = done or report.finish_reason
                    report.chunks += bool(text) or bool(calls)
                if text:
                    wrote = True
                    yield text
                for call in calls:
                    wrote = True
                    yield call
            if not finished:
                raise LLMError(
                    "connection_lost",
                    "the chat model's stream ended before its reply was finished",
                )
            if report is not None:
                report.finish()

    async def complete(
        self, messages: list[dict[str, Any]], *, max_tokens: int = 1, base_url: str | None = None
    ) -> str:
        """One non-streamed completion (the prompt-cache warm-up, memory updates), at the
        endpoint ``base_url`` names or the least busy.

        Raises :class:`LLMError` when the request fails.
        """
        try:
            with self._router.lease(messages, base_url) as endpoint:
                result = await endpoint.client.chat.completions.create(
                    model=self.model,
                    messages=cast(list[ChatCompletionMessageParam], messages),
                    max_tokens=max_tokens,
                    temperature=0.0,
                )
        except openai.APIError as exc:
            raise self._request_error(exc) from exc
        return result.choices[0].message.content or ""

    def endpoints(self) -> list[dict[str, Any]]:
        """Per copy of the model: its URL, requests in flight and served (``/health``)."""
        return self._router.status()

    async def aclose(self) -> None:
        await self._router.aclose()

    def _first_token_timeout(self) -> LLMError:
        return LLMError(
            "first_token_timeout",
            f"no first token from the chat model within {self.first_token_timeout_s:g} s",
        )

    def _request_error(self, exc: openai.APIError) -> LLMError:
        """The error of a request that got no (usable) answer."""
        if isinstance(exc, openai.APIStatusError):
            return LLMError(
                "http_error",
                f"the chat model endpoint answered HTTP {exc.status_code}: "
                + _quote(_status_message(exc), self._api_key),
            )
        if isinstance(exc, openai.APITimeoutError):
            return LLMError("unreachable", f"the chat model at {self.base_url} did not answer")
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(
                "unreachable",
                f"could not reach the chat model at {self.base_url} ({_root_cause(exc)})",
            )
        return LLMError(
            "stream_error",
            "the chat model reported an error: " + _quote(exc.message, self._api_key),
        )


def read_chunk(chunk: object) -> tuple[str, str | None, list[ToolCallDelta]]:
    """The text of one stream chunk, why the model finished (None: it goes on), and the
    pieces of function calls it carries.

    Raises :class:`LLMError` for a chunk that is not shaped like a chat completion chunk
    (the ``openai`` client builds chunks without validating them).
    """
    try:
        choices = getattr(chunk, "choices")  # noqa: B009 - absent on a malformed chunk
        if not choices:  # e.g. a final usage-only chunk
            return "", None, []
        choice = choices[0]
        text = choice.delta.content
        finish_reason = choice.finish_reason
        calls = [
            ToolCallDelta(
                call.index or 0,
                call.id,
                call.function.name if call.function else None,
                (call.function.arguments or "") if call.function else "",
            )
            for call in getattr(choice.delta, "tool_calls", None) or []
        ]
    except (AttributeError, TypeError, IndexError, KeyError):
        raise LLMError(
            "malformed_stream",
            "the chat model sent a malformed stream chunk (not a chat completion chunk)",
        ) from None
    if text is not None and not isinstance(text, str):
        raise LLMError(
            "malformed_stream",
            "the chat model sent a malformed stream chunk (its text is not a string)",
        )
    return text or "", None if finish_reason is None else str(finish_reason), calls


def _stream_error(exc: Exception, wrote: bool, secret: str) -> LLMError:
    """The error of a stream that broke after its HTTP answer had begun."""
    when = "in the middle of its reply" if wrote else "before its reply began"
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("stalled", f"the chat model stopped answering {when}")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(
            "connection_lost",
            f"the connection to the chat model broke {when} ({_root_cause(exc)})",
        )
    if isinstance(exc, openai.APIError):
        return LLMError(
            "stream_error",
            f"the chat model reported an error {when}: " + _quote(exc.message, secret),
        )
    if isinstance(exc, UnicodeDecodeError):
        what = "not UTF-8 text"
    elif isinstance(exc, json.JSONDecodeError):
        what = "not valid JSON"
    else:
        what = "not a chat completion chunk"
    return LLMError("malformed_stream", f"the chat model sent a malformed stream chunk ({what})")


def _status_message(exc: openai.APIStatusError) -> str:
    """The endpoint's own words: ``error.message`` of an OpenAI-style body, else the body."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message.strip():
            return message
    return exc.response.reason_phrase or "no reason given"


def _root_cause(exc: BaseException) -> str:
    """The innermost cause of a connection error, e.g. 'connection refused'."""
    seen = {id(exc)}
    cause: BaseException = exc
    while (inner := cause.__cause__ or cause.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        cause = inner
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    text = str(cause).strip()
    return text or type(cause).__name__


def _quote(text: str, secret: str) -> str:
    """The endpoint's own words, on one line, shortened, never with the API key in them."""
    text = " ".join(text.split())
    if len(secret) >= 4:
        text = text.replace(secret, "***")
    if len(text) > MAX_QUOTED_CHARS:
        text = text[: MAX_QUOTED_CHARS - 1] + "…"
    return text


def new_call_id() -> str:
    """A call id shaped like the API's (``call_…``)."""
    return new_id("call")
