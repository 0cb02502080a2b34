"""The character HTTP routes, in process through Starlette's TestClient."""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from voice.characters import png
from voice.characters.api import character_routes
from voice.characters.card import parse_card
from voice.characters.export import placeholder_png
from voice.characters.library import CharacterLibrary

MAX_BYTES = 4096


def card(name: str = "Ada", **data: Any) -> dict[str, Any]:
    fields = {
        "name": name,
        "description": "{{char}} repairs clocks. " + "She likes gears. " * 20,
        "creator_notes": "HIDDEN NOTES",
        "tags": ["clocks"],
        "extensions": {"voice": "joe"},
        **data,
    }
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": fields}


def card_png(obj: dict[str, Any]) -> bytes:
    encoded = base64.b64encode(json.dumps(obj).encode()).decode()
    return png.with_text(png.solid_png(3, 3, (200, 100, 50)), {"ccv3": encoded})


@pytest.fixture
def library(tmp_path: Path) -> CharacterLibrary:
    (tmp_path / "ada.json").write_text(json.dumps(card()))
    return CharacterLibrary(tmp_path, max_bytes=MAX_BYTES)


@pytest.fixture
def client(library: CharacterLibrary) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=character_routes(library))) as test_client:
        yield test_client


def test_list(client: TestClient) -> None:
    response = client.get("/v1/characters")
    assert response.status_code == 200
    (entry,) = response.json()["data"]
    assert entry["id"] == "ada"
    assert entry["name"] == "Ada"
    assert entry["tags"] == ["clocks"]
    assert entry["voice"] == "joe"
    assert entry["has_avatar"] is False
    assert entry["avatar_url"] == "/v1/characters/ada/avatar.png"
    assert entry["description"].startswith("Ada repairs clocks.")
    assert entry["description"].endswith("…")
    assert len(entry["description"]) <= 201
    assert "HIDDEN" not in response.text


def test_get_returns_v3_json(client: TestClient) -> None:
    response = client.get("/v1/characters/ada")
    assert response.status_code == 200
    assert response.json() == card()


def test_unknown_character_is_404(client: TestClient) -> None:
    for path in ("/v1/characters/nobody", "/v1/characters/nobody/avatar.png"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "character_not_found"


def test_avatar_is_a_placeholder_for_json_cards(client: TestClient) -> None:
    response = client.get("/v1/characters/ada/avatar.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == placeholder_png("Ada")


def test_upload_json_then_export_round_trip(client: TestClient) -> None:
    original = card("Bea", first_mes="Hi {{user}}")
    response = client.post(
        "/v1/characters", content=json.dumps(original), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "bea"
    assert response.headers["location"] == "/v1/characters/bea"
    assert client.get("/v1/characters/bea").json() == original

    as_json = client.get("/v1/characters/bea/export", params={"format": "json", "spec": "v3"})
    assert as_json.status_code == 200
    assert 'filename="bea.json"' in as_json.headers["content-disposition"]
    assert json.loads(as_json.content) == original
    as_v2 = client.get("/v1/characters/bea/export", params={"spec": "v2"}).json()
    assert as_v2["spec"] == "chara_card_v2"

    as_png = client.get("/v1/characters/bea/export", params={"format": "png"})
    assert as_png.headers["content-type"] == "image/png"
    assert parse_card(as_png.content).raw == original  # on a placeholder image


def test_upload_png_keeps_its_avatar(client: TestClient, library: CharacterLibrary) -> None:
    data = card_png(card("Cy"))
    response = client.post(
        "/v1/characters?id=cyrus", content=data, headers={"content-type": "image/png"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["has_avatar"] is True
    assert (library.folder / "cyrus.png").read_bytes() == data
    avatar = client.get("/v1/characters/cyrus/avatar.png").content
    assert png.text_chunks(png.read_chunks(avatar)) == {}
    exported = client.get("/v1/characters/cyrus/export?format=png").content
    assert parse_card(exported) == parse_card(data)


def test_upload_sniffs_octet_stream(client: TestClient) -> None:
    response = client.post(
        "/v1/characters",
        content=card_png(card("Di")),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 201


def test_duplicate_upload_is_409_unless_replaced(client: TestClient) -> None:
    body = json.dumps(card("Ada", personality="new"))
    headers = {"content-type": "application/json"}
    response = client.post("/v1/characters", content=body, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "character_exists"
    response = client.post("/v1/characters?replace=true", content=body, headers=headers)
    assert response.status_code == 201
    assert client.get("/v1/characters/ada").json()["data"]["personality"] == "new"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{nope", "application/json", 400, "malformed_card"),
        (b'{"spec": "chara_card_v3", "data": {"name": 1}}', "application/json", 422, None),
        (b'{"name": "x"}', "image/png", 400, "malformed_card"),
        (png.solid_png(1, 1, (0, 0, 0)), "image/png", 422, "invalid_card"),
        (b"name: x", "text/yaml", 415, "unsupported_media_type"),
        (b"--b\r\n", "multipart/form-data; boundary=b", 400, "invalid_request"),
    ],
)
def test_bad_uploads(
    client: TestClient, body: bytes, content_type: str, status: int, code: str | None
) -> None:
    response = client.post("/v1/characters", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == (code or "invalid_card")
    assert error["message"]
    assert [entry["id"] for entry in client.get("/v1/characters").json()["data"]] == ["ada"]


def test_bad_parameters_are_400(client: TestClient) -> None:
    assert client.get("/v1/characters/ada/export?format=gif").status_code == 400
    assert client.get("/v1/characters/ada/export?spec=v9").status_code == 400
    response = client.post(
        "/v1/characters?id=Not%20A%20Slug",
        content=json.dumps(card("Eve")),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_id"


def test_oversized_json_upload_is_413_by_content_length(client: TestClient) -> None:
    body = json.dumps(card("Big", scenario="x" * MAX_BYTES))
    response = client.post(
        "/v1/characters", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == {
        "message": f"card is {len(body) / 1024:.1f} KiB; the limit is 4.0 KiB",
        "code": "card_too_large",
    }


def test_oversized_streamed_upload_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1024

    response = client.post(
        "/v1/characters", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than the limit of 4.0 KiB" in response.json()["error"]["message"]


def test_png_may_be_larger_than_a_json_card(client: TestClient) -> None:
    data = png.with_text(card_png(card("Fay")), {"Comment": "x" * MAX_BYTES})
    assert MAX_BYTES < len(data) < 4 * MAX_BYTES
    response = client.post("/v1/characters", content=data, headers={"content-type": "image/png"})
    assert response.status_code == 201
    too_big = png.with_text(data, {"Comment": "x" * 4 * MAX_BYTES})
    response = client.post("/v1/characters", content=too_big, headers={"content-type": "image/png"})
    assert response.status_code == 413


def png_chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return struct.pack(">I4s", size, kind) + data + struct.pack(">I", zlib.crc32(kind + data))


def with_chunk(chunk: bytes) -> bytes:
    image = png.solid_png(2, 2, (1, 2, 3))
    return image[:-12] + chunk + image[-12:]


HOSTILE_UPLOADS = {
    "truncated PNG": (card_png(card("Tru"))[:-40], "image/png", 400),
    "zTXt zlib bomb": (
        with_chunk(png_chunk(b"zTXt", b"ccv3\0\0" + zlib.compress(bytes(4 << 20), 9))),
        "image/png",
        422,
    ),
    "iTXt zlib bomb": (
        with_chunk(png_chunk(b"iTXt", b"ccv3\0\x01\0\0\0" + zlib.compress(bytes(4 << 20), 9))),
        "image/png",
        422,
    ),
    "chunk length past the end": (
        with_chunk(png_chunk(b"tEXt", b"ccv3\0x", length=0xFFFFFFF0)),
        "image/png",
        400,
    ),
    "garbage after the signature": (b"\x89PNG\r\n\x1a\n" + os.urandom(500), "image/png", 400),
    "deep JSON": (b'{"spec":"chara_card_v3","data":' + b"[" * 1500 + b"]" * 1500 + b"}",
                  "application/json", 400),
    "NaN": (json.dumps(card("Nan", extensions={"x": float("nan")})).encode(),
            "application/json", 400),
    "lone surrogate": (json.dumps(card("Sur\ud800")).encode(), "application/json", 400),
    "huge integer": (json.dumps(card("Int", extensions={"x": 7})).replace('"x": 7', '"x": '
                     + "7" * 3000).encode(), "application/json", 400),
    "binary": (os.urandom(3000), "application/octet-stream", 400),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE_UPLOADS))
def test_hostile_uploads_get_a_4xx_and_store_nothing(client: TestClient, name: str) -> None:
    body, content_type, status = HOSTILE_UPLOADS[name]
    response = client.post("/v1/characters", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    listing = client.get("/v1/characters")
    assert listing.status_code == 200
    assert [entry["id"] for entry in listing.json()["data"]] == ["ada"]


def test_a_form_upload_like_curl_f(client: TestClient) -> None:
    """``curl -F file=@eve.png -F id=eve-2`` and an HTML form send multipart/form-data."""
    response = client.post(
        "/v1/characters",
        files={"file": ("eve.png", card_png(card("Eve")), "image/png")},
        data={"id": "eve-2"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "eve-2"
    assert client.get("/v1/characters/eve-2").json()["data"]["name"] == "Eve"
    json_card = ("eve.json", json.dumps(card("Eve", personality="new")), "application/json")
    again = client.post("/v1/characters", files={"file": json_card}, data={"id": "eve-2"})
    assert again.status_code == 409
    replaced = client.post(
        "/v1/characters", files={"file": json_card}, data={"id": "eve-2", "replace": "true"}
    )
    assert replaced.status_code == 201
    assert client.get("/v1/characters/eve-2").json()["data"]["personality"] == "new"


@pytest.mark.parametrize(
    ("files", "data", "status", "message"),
    [
        ({}, {}, 400, "no 'file' part"),
        ({"card": ("a.json", b"{}", "application/json")}, {}, 400, "unexpected form part 'card'"),
        ({"file": ("a.txt", b"hi", "text/plain")}, {}, 415, "unsupported content type"),
        ({"file": ("a.json", b"{nope", "application/json")}, {}, 400, "JSON"),
        ({"file": ("a.json", b"x" * (MAX_BYTES + 1), "application/json")}, {}, 413, "limit"),
    ],
)
def test_bad_form_uploads(
    client: TestClient, files: dict[str, Any], data: dict[str, str], status: int, message: str
) -> None:
    if not files:  # a form with fields only (httpx would send it url-encoded)
        response = client.post(
            "/v1/characters",
            content=b'--b\r\nContent-Disposition: form-data; name="id"\r\n\r\nx\r\n--b--\r\n',
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    else:
        response = client.post("/v1/characters", files=files, data=data)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert [entry["id"] for entry in client.get("/v1/characters").json()["data"]] == ["ada"]
