"""A real uvicorn server for an ASGI app, in the test's own event loop, and an HTTP client."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its ``http://`` base URL.

    The socket listens before the server starts, so clients can connect at once: the
    kernel queues them until uvicorn accepts.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


async def http(method: str, url: str, *, key: str | None = None) -> Reply:
    """One HTTP request (urllib, in a thread); the JSON body decoded when there is one."""

    def call() -> Reply:
        request = urllib.request.Request(url, method=method)
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return _reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return _reply(error.code, dict(error.headers), error.read())

    return await asyncio.to_thread(call)


def _reply(status: int, headers: dict[str, str], data: bytes) -> Reply:
    return Reply(status, headers, json.loads(data) if data else None)
