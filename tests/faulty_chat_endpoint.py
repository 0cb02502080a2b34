"""A real HTTP server on loopback that breaks a real chat model's replies on demand.

:class:`FaultyChatEndpoint` forwards every request unchanged to an upstream
OpenAI-compatible endpoint (in the tests, a real ``llama_cpp.server``), relaying streamed
replies event by event, until a fault is armed. While one is, every *streamed* chat
completion gets it instead; other requests (model lists, the non-streamed warm-up and
memory calls) still pass through. The faults are real bytes on a real socket:

- ``http_500``: an HTTP 500 answer with an OpenAI-style error body, upstream not asked;
- ``http_401``: an HTTP 401 whose message quotes the API key the client sent, as some
  servers do;
- ``reset_mid_stream``: a few events of the real reply, then a TCP reset;
- ``close_mid_stream``: a few events, then a clean end of the HTTP body without ``[DONE]``;
- ``garbage_bytes`` / ``garbage_json`` / ``wrong_shape``: a few events, then an event that
  is not UTF-8, not JSON, or JSON that is no chat completion chunk;
- ``silent``: nothing at all (no status line) until the client gives up;
- ``stall_mid_stream``: a few events, then nothing until the client gives up.

It runs its own event loop in a background thread, so sync fixtures of any scope can own
it and test code in any event loop (or in a ``voice serve`` child) can call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from voice.llm_server import free_port

Fault = Literal[
    "http_500",
    "http_401",
    "reset_mid_stream",
    "close_mid_stream",
    "garbage_bytes",
    "garbage_json",
    "wrong_shape",
    "silent",
    "stall_mid_stream",
]

#: Events of the real reply relayed before a mid-stream fault: llama.cpp's first event
#: carries only the role, so the client has had real text when the fault hits.
EVENTS_BEFORE_FAULT = 4
#: The longest a ``silent`` or ``stall_mid_stream`` fault holds a connection open.
HOLD_LIMIT_S = 120.0

_GARBAGE = {
    "garbage_bytes": b"data: \xff\xfe\x80 \x00\x9c not text at all\n\n",
    "garbage_json": b'data: {"id": "chatcmpl-x", "choices": [{"delta": {"content": "oops\n\n',
    "wrong_shape": b'data: {"choices": "none of your business"}\n\n',
}
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class Exchange:
    """One streamed chat completion the endpoint saw."""

    fault: Fault | None
    #: The request's JSON body (its ``messages`` are the prompt).
    request: dict[str, object] = field(default_factory=dict)
    #: Set once the client closed the connection (or it broke); for any thread to wait on.
    client_gone: threading.Event = field(default_factory=threading.Event)
    #: Set once the upstream reply was relayed to its end (not for faulted streams).
    upstream_done: threading.Event = field(default_factory=threading.Event)
    #: SSE events relayed to the client, the fault's own bytes not counted.
    events_relayed: int = 0
    #: The same as ``client_gone``, for the endpoint's own event loop.
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        self.client_gone.set()
        self.hung_up.set()


class FaultyChatEndpoint:
    """A fault-injecting HTTP proxy in front of ``upstream`` (``http://host:port/v1``)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.scheme == "http" and parts.hostname, upstream
        self._upstream = (parts.hostname, parts.port or 80)
        self.port = free_port()
        self.exchanges: list[Exchange] = []
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        #: Connection handlers running now (asyncio's server keeps no reference to them
        #: once their connection is lost).
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="faulty-chat-endpoint")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultyChatEndpoint:
        self._thread.start()
        if not self._started.wait(10):
            raise TimeoutError("the fault endpoint did not start")
        return self

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def arm(self, fault: Fault) -> None:
        """Every streamed chat completion from now on gets ``fault``."""
        with self._lock:
            self._fault = fault

    def disarm(self) -> None:
        with self._lock:
            self._fault = None

    def streams(self, fault: Fault | None = None) -> list[Exchange]:
        """The streamed chat completions seen so far that got ``fault`` (None: no fault)."""
        with self._lock:
            return [exchange for exchange in self.exchanges if exchange.fault == fault]

    # --- the server, in its own thread ----------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._started.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        exchange: Exchange | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, value in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            streamed = (
                method == "POST"
                and path.endswith("/chat/completions")
                and json.loads(body or b"{}").get("stream") is True
            )
            if streamed:
                with self._lock:
                    exchange = Exchange(self._fault, json.loads(body))
                    self.exchanges.append(exchange)
                watch = asyncio.ensure_future(_wait_for_eof(reader, exchange))
                try:
                    await self._stream(method, path, headers, body, writer, exchange)
                finally:
                    watch.cancel()
            else:
                await self._forward(method, path, headers, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if exchange is not None:
                exchange.close()
            writer.close()
            try:
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            finally:
                self._handlers.discard(handler)

    async def _forward(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Relay one plain request and its whole answer."""
        status, content_type, chunks = await self._upstream_request(method, path, headers, body)
        payload = b"".join([chunk async for chunk in chunks])
        writer.write(_head(status, content_type, content_length=len(payload)) + payload)
        await writer.drain()

    async def _stream(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
        exchange: Exchange,
    ) -> None:
        fault = exchange.fault
        if fault in ("http_500", "http_401"):
            key = headers.get("authorization", "").removeprefix("Bearer ")
            status, message = (
                ("500 Internal Server Error", "injected fault: the model crashed")
                if fault == "http_500"
                else ("401 Unauthorized", f"Incorrect API key provided: {key}.")
            )
            error = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
            writer.write(_head(status, "application/json", len(error)) + error)
            await writer.drain()
            return
        if fault == "silent":
            await _hold(exchange)
            return
        status, content_type, chunks = await self._upstream_request(method, path, headers, body)
        try:
            writer.write(_head(status, content_type))
            pending = b""
            async for data in chunks:
                pending += data
                while match := _EVENT_END.search(pending):
                    event, pending = pending[: match.end()], pending[match.end() :]
                    if fault is not None and exchange.events_relayed == EVENTS_BEFORE_FAULT:
                        chunks.close()  # the real model stops writing, as its client left
                        await self._break(fault, writer, exchange)
                        return
                    writer.write(_chunk(event))
                    await writer.drain()
                    exchange.events_relayed += 1
            writer.write(_chunk(pending) + b"0\r\n\r\n")
            await writer.drain()
            exchange.upstream_done.set()
        finally:
            chunks.close()

    async def _break(self, fault: Fault, writer: asyncio.StreamWriter, exchange: Exchange) -> None:
        if fault == "reset_mid_stream":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # closing with a zero linger time sends a RST
        elif fault == "close_mid_stream":
            writer.write(b"0\r\n\r\n")  # a well-formed end of the body, the reply unfinished
            await writer.drain()
        elif fault == "stall_mid_stream":
            await _hold(exchange)
        else:
            writer.write(_chunk(_GARBAGE[fault]))
            await writer.drain()
            await _hold(exchange)  # the client, not a closed socket, must end this

    async def _upstream_request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, str, _Chunks]:
        """Send the request upstream; its status, content type and decoded body chunks."""
        reader, writer = await asyncio.open_connection(*self._upstream)
        forwarded = {
            name: value
            for name, value in headers.items()
            if name not in ("host", "connection", "content-length", "accept-encoding")
        }
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._upstream[0]}:{self._upstream[1]}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in forwarded.items())
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        response_head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = response_head[0].split(" ", 1)[1]
        response_headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in response_head[1:] if ":" in line)
        }
        content_type = response_headers.get("content-type", "application/octet-stream")
        chunked = response_headers.get("transfer-encoding", "").lower() == "chunked"
        length = response_headers.get("content-length")
        return status, content_type, _Chunks(reader, writer, chunked, length)


class _Chunks:
    """The upstream body, de-chunked, as an async iterator; closes the upstream at the end."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        chunked: bool,
        length: str | None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._chunked = chunked
        self._length = None if length is None else int(length)

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._next()
        except BaseException:
            self.close()
            raise
        if not data:
            self.close()
            raise StopAsyncIteration
        return data

    def close(self) -> None:
        """Hang up on the upstream (safe to call twice)."""
        self._writer.close()

    async def _next(self) -> bytes:
        if self._chunked:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return b""
            data = await self._reader.readexactly(size)
            await self._reader.readexactly(2)
            return data
        if self._length is not None:
            if self._length == 0:
                return b""
            data = await self._reader.read(min(self._length, 65536))
            self._length -= len(data)
            return data
        return await self._reader.read(65536)


async def _wait_for_eof(reader: asyncio.StreamReader, exchange: Exchange) -> None:
    """The client sends nothing after its request: EOF (or an error) means it hung up."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    exchange.close()


async def _hold(exchange: Exchange) -> None:
    """Send nothing until the client hangs up (bounded, so a broken test cannot hang)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exchange.hung_up.wait(), HOLD_LIMIT_S)


def _head(status: str, content_type: str, content_length: int | None = None) -> bytes:
    framing = (
        "Transfer-Encoding: chunked"
        if content_length is None
        else f"Content-Length: {content_length}"
    )
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{framing}\r\n"
    return (head + "Connection: close\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""
