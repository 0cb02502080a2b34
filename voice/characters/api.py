"""HTTP routes for the character library (not mounted here; the server adds them, with auth).

=====  =======================================  ===========================================
GET    ``/v1/characters``                       ``{"object": "list", "data": [listing…]}``
POST   ``/v1/characters[?id=…&replace=true]``   raw card body → 201 and its listing
GET    ``/v1/characters/{id}``                  the card as Character Card V3 JSON
GET    ``/v1/characters/{id}/avatar.png``       its image (a placeholder if it has none)
GET    ``/v1/characters/{id}/export``           ``?format=json|png&spec=v2|v3`` as a file
=====  =======================================  ===========================================

Uploads are the raw request body: ``application/json`` or ``image/png`` (or
``application/octet-stream``, told apart by the PNG signature), or the ``file`` part of a
``multipart/form-data`` form (``curl -F file=@card.png``; ``id`` and ``replace`` may be
form fields too). The body is read with a cap: the card
limit for JSON, ``PNG_SIZE_FACTOR`` times it otherwise; beyond it the answer is 413.
Errors are ``{"error": {"message": …, "code": …}}``: 400 for a body that is not JSON or
PNG, 422 for a well-formed file that is not a valid card, 409 for a taken id.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voice.characters.card import PNG_SIZE_FACTOR, ExportSpec, format_size
from voice.characters.export import placeholder_png, to_dict
from voice.characters.fields import CardError
from voice.characters.library import (
    CharacterEntry,
    CharacterLibrary,
    DuplicateCharacterError,
    slugify,
)
from voice.characters.macros import expand
from voice.characters.shared import SharedLibrary
from voice.memory.database import DatabaseUnavailableError
from voice.request_body import BadRequest, parse_form

#: What a multipart form adds around the card file (boundaries, part headers, small fields).
FORM_OVERHEAD_BYTES: Final = 16 * 1024
#: Characters of the description shown in listings.
EXCERPT_CHARS: Final = 200

_STATUS_BY_CODE: Final = {"card_too_large": 413, "malformed_card": 400, "invalid_card": 422}
_SPECS: Final[dict[str, ExportSpec]] = {"v2": "chara_card_v2", "v3": "chara_card_v3"}


Endpoint = Callable[[Request], Awaitable[Response]]


class _HttpError(Exception):
    """A request the routes refuse, with its HTTP status and error code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def character_routes(library: CharacterLibrary | SharedLibrary) -> list[Route]:
    """The routes above, serving ``library``."""

    async def entry_of(request: Request) -> CharacterEntry:
        character_id = request.path_params["character_id"]
        entry = await library.find(character_id)
        if entry is None:
            raise _HttpError(404, f"no character {character_id!r}", "character_not_found")
        return entry

    @_answering_errors
    async def list_characters(request: Request) -> Response:
        await library.refresh()  # what other replicas stored
        return JSONResponse({"object": "list", "data": [listing(e) for e in library.list()]})

    @_answering_errors
    async def get_character(request: Request) -> Response:
        return JSONResponse(to_dict((await entry_of(request)).card, "chara_card_v3"))

    @_answering_errors
    async def avatar(request: Request) -> Response:
        card = (await entry_of(request)).card
        image = card.avatar_png if card.avatar_png is not None else placeholder_png(card.name)
        return Response(image, media_type="image/png")

    @_answering_errors
    async def export(request: Request) -> Response:
        entry = await entry_of(request)
        fmt: Literal["json", "png"] = (
            "png" if _choice(request, "format", ("json", "png"), "json") == "png" else "json"
        )
        spec = _SPECS[_choice(request, "spec", ("v2", "v3"), "v3")]
        data = await run_in_threadpool(library.export, entry.id, fmt, spec)
        return Response(
            data,
            media_type="image/png" if fmt == "png" else "application/json",
            headers={"Content-Disposition": f'attachment; filename="{entry.id}.{fmt}"'},
        )

    @_answering_errors
    async def upload(request: Request) -> Response:
        fields = dict(request.query_params)
        if _content_type(request) == "multipart/form-data":
            body, kind, form_fields = await _read_form(request, library.max_bytes)
            fields.update(form_fields)
        else:
            kind = _upload_kind(request)
            limit = library.max_bytes * (1 if kind == "json" else PNG_SIZE_FACTOR)
            body = await _read_body(request, limit)
        hint = fields.get("id") or None
        if hint is not None and hint != slugify(hint):
            raise _HttpError(
                400, "'id' may hold only lowercase letters, digits and dashes", "invalid_id"
            )
        replace = _choice(fields, "replace", ("true", "false"), "false") == "true"
        try:
            entry = await library.store(body, hint, replace=replace, kind=kind)
        except DatabaseUnavailableError as exc:
            raise _HttpError(503, str(exc), "database_unavailable") from None
        location = {"Location": f"/v1/characters/{entry.id}"}
        return JSONResponse(listing(entry), status_code=201, headers=location)

    return [
        Route("/v1/characters", list_characters, methods=["GET"]),
        Route("/v1/characters", upload, methods=["POST"]),
        Route("/v1/characters/{character_id}", get_character, methods=["GET"]),
        Route("/v1/characters/{character_id}/avatar.png", avatar, methods=["GET"]),
        Route("/v1/characters/{character_id}/export", export, methods=["GET"]),
    ]


def _answering_errors(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with request and card errors answered as JSON error bodies."""

    @functools.wraps(endpoint)
    async def answering(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _HttpError as exc:
            return _error(exc.status, str(exc), exc.code)
        except CardError as exc:
            return _error(_STATUS_BY_CODE[exc.code], str(exc), exc.code)
        except DuplicateCharacterError as exc:
            return _error(409, str(exc), "character_exists")

    return answering


def listing(entry: CharacterEntry) -> dict[str, Any]:
    """What the list shows of a card (never its creator notes)."""
    card = entry.card
    description = " ".join(expand(card.description, char=card.display_name, user="User").split())
    if len(description) > EXCERPT_CHARS:
        description = description[:EXCERPT_CHARS].rsplit(" ", 1)[0] + "…"
    return {
        "id": entry.id,
        "object": "character",
        "name": card.name,
        "tags": list(card.tags),
        "description": description,
        "voice": card.voice,
        "has_avatar": card.avatar_png is not None,
        "avatar_url": f"/v1/characters/{entry.id}/avatar.png",
    }


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": code}}, status_code=status)


def _choice(
    source: Request | Mapping[str, str], name: str, allowed: tuple[str, ...], default: str
) -> str:
    params = source.query_params if isinstance(source, Request) else source
    value = params.get(name, default)
    if value not in allowed:
        raise _HttpError(
            400, f"'{name}' must be one of {', '.join(allowed)}, not {value!r}", "invalid_parameter"
        )
    return value


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _kind_of(content_type: str) -> Literal["json", "png"] | None:
    """What a Content-Type says a card file is; ``None``: sniff it."""
    if content_type == "application/json":
        return "json"
    if content_type == "image/png":
        return "png"
    if content_type in ("application/octet-stream", ""):
        return None
    raise _HttpError(
        415,
        f"unsupported content type {content_type!r}; send the card file as the request "
        "body (or as the 'file' part of a form) with Content-Type application/json or "
        "image/png",
        "unsupported_media_type",
    )


async def _read_form(
    request: Request, max_bytes: int
) -> tuple[bytes, Literal["json", "png"] | None, dict[str, str]]:
    """The card file of a ``multipart/form-data`` upload (what ``curl -F file=@card.png``
    and HTML forms send), its kind, and the form's ``id`` and ``replace`` fields."""
    limit = max_bytes * PNG_SIZE_FACTOR
    body = await _read_body(request, limit + FORM_OVERHEAD_BYTES)

    try:
        form = await parse_form(request, body, max_files=1, max_fields=2, max_part_size=1024)
    except BadRequest as bad:
        raise _HttpError(bad.status, bad.message, "invalid_request") from None
    try:
        fields: dict[str, str] = {}
        card: tuple[bytes, Literal["json", "png"] | None] | None = None
        for name, value in form.multi_items():
            if name == "file" and isinstance(value, UploadFile) and card is None:
                card = (await value.read(), _kind_of((value.content_type or "").lower()))
            elif name in ("id", "replace") and isinstance(value, str) and name not in fields:
                fields[name] = value
            else:
                raise _HttpError(400, f"unexpected form part {name!r} (send 'file', and "
                                 "optionally 'id' and 'replace')", "invalid_request")  # fmt: skip
    finally:
        await form.close()
    if card is None:
        raise _HttpError(400, "the form has no 'file' part (the card)", "invalid_request")
    data, kind = card
    if len(data) > (max_bytes if kind == "json" else limit):
        raise _HttpError(413, f"card is {format_size(len(data))}; the limit is "
                         f"{format_size(max_bytes if kind == 'json' else limit)}",
                         "card_too_large")  # fmt: skip
    return data, kind, fields


def _upload_kind(request: Request) -> Literal["json", "png"] | None:
    """What the Content-Type says the body is; ``None``: sniff it."""
    return _kind_of(_content_type(request))


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise _HttpError(400, "Content-Length is not a number", "invalid_request")
        if int(declared) > limit:
            raise _HttpError(
                413,
                f"card is {format_size(int(declared))}; the limit is {format_size(limit)}",
                "card_too_large",
            )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _HttpError(
                413, f"card is larger than the limit of {format_size(limit)}", "card_too_large"
            )
    return bytes(body)
