"""Request bodies from untrusted clients: read within a size limit, decoded within the
JSON limits, refused with an OpenAI-style error body that says what was wrong."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse

from voice import json_limits
from voice.protocol import MAX_INT_DIGITS, MAX_JSON_MEMBERS, MAX_NESTING_DEPTH


class BadRequest(Exception):
    """A request to answer with a 4xx: its status, message, ``param`` and ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, param=self.param, code=self.code,
                              headers=self.headers)  # fmt: skip


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body; :class:`BadRequest` (413) once it grows past ``max_bytes``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BadRequest(413, f"the request body may be at most {max_bytes} bytes")
    return bytes(body)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object (empty: ``{}``), within the protocol's JSON limits."""
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        return {}
    try:
        value = json_limits.loads(
            raw.decode("utf-8"), max_depth=MAX_NESTING_DEPTH, max_members=MAX_JSON_MEMBERS,
            max_int_digits=MAX_INT_DIGITS,
        )  # fmt: skip
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 JSON", code="invalid_json") from None
    except json_limits.JsonLimitError as exc:
        raise BadRequest(400, f"the body {exc.message}", code=exc.code) from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be a JSON object", code="invalid_json")
    return value


async def parse_form(
    request: Request, body: bytes, *, max_files: int, max_fields: int, max_part_size: int
) -> FormData:
    """``body`` (read already, within its limit) as the ``multipart/form-data`` form of
    ``request``; :class:`BadRequest` (400) for a malformed one. Close the form after use."""

    async def chunks() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers, chunks(), max_files=max_files, max_fields=max_fields,
        max_part_size=max_part_size,
    )  # fmt: skip
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(400, f"invalid multipart body: {exc.message}") from None


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-style error body."""
    error = {"message": message, "type": "invalid_request_error", "code": code, "param": param}
    return JSONResponse({"error": error}, status_code=status, headers=headers)
