"""Character cards: parsing V1/V2/V3 JSON and PNG, errors, export round trips, the library."""

from __future__ import annotations

import base64
import json
import os
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from voice.characters import png
from voice.characters.card import CharacterCard, card_from_dict, parse_card
from voice.characters.export import placeholder_png, to_dict, to_json, to_png
from voice.characters.fields import CardError
from voice.characters.library import CharacterLibrary, DuplicateCharacterError, slugify
from voice.characters.macros import expand

REPO = Path(__file__).resolve().parents[1]

DATA: dict[str, Any] = {
    "name": "Ada",
    "description": "{{char}} repairs clocks and talks to {{user}} while she works.",
    "personality": "precise, kind",
    "scenario": "A workshop at dusk.",
    "first_mes": "Hello {{user}}, mind the springs.",
    "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello.",
    "creator_notes": "Secret notes for people browsing cards.",
    "system_prompt": "",
    "post_history_instructions": "Stay brief.",
    "alternate_greetings": ["Oh, it's you, {{user}}."],
    "tags": ["clocks"],
    "creator": "tests",
    "character_version": "1",
    "extensions": {"voice": "joe", "other_app": {"x": 1}},
    "character_book": {
        "extensions": {},
        "entries": [
            {
                "keys": ["pendulum"],
                "content": "@@depth 4\nPendulums swing.",
                "extensions": {},
                "enabled": True,
                "insertion_order": 1,
                "comment": "kept for export",
            }
        ],
    },
    "unknown_field": [1, 2, 3],
}


def v2(**changes: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {**DATA, **changes}}


def v3(**changes: Any) -> dict[str, Any]:
    data = {**DATA, "group_only_greetings": [], "nickname": "", **changes}
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def card_png(**texts: object) -> bytes:
    """A tiny PNG with a ``tEXt`` chunk per keyword: a dict is base64-encoded as a card."""
    image = png.solid_png(2, 2, (10, 20, 30))
    return png.with_text(
        image,
        {
            key: base64.b64encode(encode(value)).decode() if isinstance(value, dict) else str(value)
            for key, value in texts.items()
        },
    )


def error_of(data: bytes, **kwargs: Any) -> CardError:
    with pytest.raises(CardError) as caught:
        parse_card(data, **kwargs)
    return caught.value


# --- parsing ----------------------------------------------------------------------------


def test_v2_json_fields_are_read() -> None:
    card = parse_card(encode(v2()))
    assert card.spec == "chara_card_v2"
    assert card.name == "Ada"
    assert card.alternate_greetings == ("Oh, it's you, {{user}}.",)
    assert card.tags == ("clocks",)
    assert card.voice == "joe"
    assert card.avatar_png is None
    assert card.character_book is not None
    (entry,) = card.character_book.entries
    assert entry.keys == ("pendulum",)
    assert entry.content == "Pendulums swing."  # the decorator line is not prompt text
    assert entry.decorators == {"depth"}
    assert card.raw["data"]["unknown_field"] == [1, 2, 3]


def test_v3_json_reads_nickname_and_regex_entries() -> None:
    book = {"extensions": {}, "entries": [{"keys": ["^cl"], "content": "c", "use_regex": True}]}
    card = parse_card(encode(v3(nickname="Addy", character_book=book)))
    assert card.spec == "chara_card_v3"
    assert card.display_name == "Addy"
    assert card.character_book is not None
    assert card.character_book.entries[0].use_regex


def test_v1_flat_card_is_read_leniently() -> None:
    card = parse_card(encode({"name": "Old", "description": "d", "first_mes": "hi", "x": None}))
    assert card.spec == "chara_card_v1"
    assert (card.name, card.description, card.personality) == ("Old", "d", "")


def test_null_fields_read_as_empty() -> None:
    card = parse_card(encode(v2(creator_notes=None, tags=None, character_book=None)))
    assert card.creator_notes == ""
    assert card.tags == ()
    assert card.character_book is None


def test_png_with_chara_chunk() -> None:
    card = parse_card(card_png(chara=v2()))
    assert card.spec == "chara_card_v2"
    assert card.name == "Ada"
    assert card.avatar_png is not None
    assert "chara" not in png.text_chunks(png.read_chunks(card.avatar_png))


def test_png_with_ccv3_chunk() -> None:
    card = parse_card(card_png(ccv3=v3()))
    assert card.spec == "chara_card_v3"


def test_png_with_both_chunks_prefers_ccv3() -> None:
    card = parse_card(card_png(chara=v2(name="Old name"), ccv3=v3(name="New name")))
    assert card.name == "New name"
    assert card.spec == "chara_card_v3"


def test_png_keeps_other_text_chunks_in_the_avatar() -> None:
    card = parse_card(card_png(ccv3=v3(), Comment="drawn by hand"))
    assert card.avatar_png is not None
    assert png.text_chunks(png.read_chunks(card.avatar_png)) == {"Comment": "drawn by hand"}


@pytest.mark.parametrize(
    ("data", "message", "code"),
    [
        (b"{not json", "card JSON is not valid JSON", "malformed_card"),
        (b"\xff\xfe\x00{", "card JSON is not valid", "malformed_card"),
        (b"[1, 2]", "card JSON is not an object", "invalid_card"),
        (encode({"spec": "chara_card_v9", "data": {}}), "unsupported card spec", "invalid_card"),
        (encode({"spec": "chara_card_v2", "data": []}), "card 'data' must be an object", None),
        (encode(v2(name="")), "card 'data.name' must be a non-empty string", "invalid_card"),
        (encode(v3(name=None)), "card 'data.name' must be a non-empty string", "invalid_card"),
        (encode({"description": "no name"}), "card 'name' must be a non-empty string", None),
        (encode(v2(description=5)), "'data.description' must be a string, not a number", None),
        (encode(v2(tags="a,b")), "'data.tags' must be an array of strings", None),
        (encode(v2(alternate_greetings=["a", 1])), "'data.alternate_greetings[1]'", None),
        (encode(v2(extensions=[])), "'data.extensions' must be an object, not an array", None),
        (encode(v2(character_book=[])), "'data.character_book' must be an object", None),
        (
            encode(v2(character_book={"entries": [{"keys": ["k"], "enabled": "yes"}]})),
            "'data.character_book.entries[0].enabled' must be a boolean, not a string",
            None,
        ),
        (
            encode(v2(character_book={"entries": [{"keys": ["k"], "insertion_order": True}]})),
            "'data.character_book.entries[0].insertion_order' must be a number",
            None,
        ),
    ],
)
def test_invalid_json_cards_name_the_problem(data: bytes, message: str, code: str | None) -> None:
    error = error_of(data)
    assert message in str(error)
    assert error.code == (code or "invalid_card")


def test_oversized_json_card() -> None:
    data = encode(v2(description="x" * 3000))
    error = error_of(data, max_bytes=2048)
    assert error.code == "card_too_large"
    assert str(error) == f"card is {len(data) / 1024:.1f} KiB; the limit is 2.0 KiB"


def test_oversized_card_inside_a_png() -> None:
    data = card_png(ccv3=v3(description="x" * 3000))
    error = error_of(data, max_bytes=2048)  # the PNG itself is within 4 x 2 KiB
    assert error.code == "card_too_large"
    assert str(error).startswith("card JSON in the PNG is 3.")


def test_oversized_png() -> None:
    data = card_png(ccv3=v3(), Comment="x" * 9000)
    error = error_of(data, max_bytes=2048)
    assert error.code == "card_too_large"
    assert str(error).startswith("card PNG is ")
    assert str(error).endswith("; the limit is 8.0 KiB")


def test_png_without_card_chunk() -> None:
    error = error_of(png.solid_png(1, 1, (0, 0, 0)))
    assert str(error) == "PNG has no 'chara' or 'ccv3' text chunk"


def test_truncated_png() -> None:
    data = card_png(ccv3=v3())
    error = error_of(data[:-30])
    assert error.code == "malformed_card"
    assert "PNG is truncated" in str(error)


def test_png_with_corrupted_chunk() -> None:
    data = bytearray(card_png(ccv3=v3()))
    data[40] ^= 0xFF
    assert "bad CRC" in str(error_of(bytes(data)))


def test_png_with_bad_base64() -> None:
    error = error_of(card_png(ccv3="not base64!!"))
    assert str(error) == "PNG 'ccv3' chunk is not valid base64"
    assert error.code == "malformed_card"


def test_png_with_base64_of_garbage() -> None:
    error = error_of(card_png(ccv3=base64.b64encode(b"{oops").decode()))
    assert "card JSON in the PNG 'ccv3' chunk is not valid JSON" in str(error)


def test_kind_must_match_the_bytes() -> None:
    assert "not a PNG" in str(error_of(encode(v2()), kind="png"))
    assert "is a PNG" in str(error_of(card_png(ccv3=v3()), kind="json"))


# --- export -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [v2, v3])
def test_json_round_trip_in_the_cards_own_spec_is_lossless(make: Any) -> None:
    original = make()
    card = parse_card(encode(original))
    exported = to_json(card, "chara_card_v2" if make is v2 else "chara_card_v3")
    assert json.loads(exported) == original
    again = parse_card(exported.encode())
    assert again == card
    assert again.raw == card.raw


def test_v2_exported_as_v3_is_the_same_character() -> None:
    card = parse_card(encode(v2()))
    as_v3 = to_dict(card, "chara_card_v3")
    assert as_v3["spec"] == "chara_card_v3"
    assert as_v3["data"]["group_only_greetings"] == []
    assert as_v3["data"]["character_book"]["entries"][0]["use_regex"] is False
    assert as_v3["data"]["character_book"]["entries"][0]["comment"] == "kept for export"
    assert as_v3["data"]["unknown_field"] == [1, 2, 3]
    assert card_from_dict(as_v3) == card


def test_v1_exports_as_complete_v2() -> None:
    card = parse_card(encode({"name": "Old", "description": "d"}))
    data = to_dict(card, "chara_card_v2")["data"]
    assert data["name"] == "Old"
    assert data["alternate_greetings"] == []
    assert data["extensions"] == {}
    assert card_from_dict(to_dict(card, "chara_card_v2")) == card


@pytest.mark.parametrize("texts", [{"chara": v2()}, {"ccv3": v3()}])
def test_png_round_trip(texts: dict[str, Any]) -> None:
    card = parse_card(card_png(**texts))
    exported = to_png(card)
    chunks = png.text_chunks(png.read_chunks(exported))
    assert set(chunks) == {"chara", "ccv3"}
    assert json.loads(base64.b64decode(chunks["chara"]))["spec"] == "chara_card_v2"
    again = parse_card(exported)
    assert again == card
    assert again.avatar_png == card.avatar_png
    assert again.spec == "chara_card_v3"  # a V2 card comes back upgraded
    assert to_png(parse_card(to_png(again))) == to_png(again)  # export is then a fixed point


def test_png_export_of_a_json_card_uses_a_placeholder_image() -> None:
    card = parse_card(encode(v3()))
    exported = to_png(card)
    again = parse_card(exported)
    assert again.avatar_png == placeholder_png("Ada")
    assert again.raw == card.raw


# --- macros -----------------------------------------------------------------------------


def test_macros_are_case_insensitive_and_expanded_once() -> None:
    text = "{{char}} {{ CHAR }} <BOT> <char> and {{User}} <USER>{{// hidden note }}."
    assert expand(text, char="Ada", user="{{char}}") == ("Ada Ada Ada Ada and {{char}} {{char}}.")


# --- library ----------------------------------------------------------------------------


def test_library_loads_json_and_png_and_reports_bad_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "Ada Lovelace.json").write_bytes(encode(v2()))
    (tmp_path / "ada.png").write_bytes(card_png(ccv3=v3(name="Other Ada")))
    (tmp_path / "broken.json").write_bytes(b"{")
    (tmp_path / "notes.txt").write_text("ignored")
    library = CharacterLibrary(tmp_path)
    assert [entry.id for entry in library.list()] == ["ada", "ada-lovelace"]
    assert library.get("ada-lovelace") is not None
    assert library.get("missing") is None
    assert set(library.errors) == {"broken.json"}
    assert "not valid JSON" in library.errors["broken.json"]
    assert "broken.json" in caplog.text


def test_library_reports_clashing_ids(tmp_path: Path) -> None:
    (tmp_path / "ada.json").write_bytes(encode(v2()))
    (tmp_path / "Ada.png").write_bytes(card_png(ccv3=v3()))
    library = CharacterLibrary(tmp_path)
    assert len(library.list()) == 1
    assert len(library.errors) == 1
    assert "already taken" in next(iter(library.errors.values()))


def test_library_refuses_oversized_files_without_reading_them(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_bytes(encode(v2(description="x" * 5000)))
    library = CharacterLibrary(tmp_path, max_bytes=2048)
    assert "the limit is 2.0 KiB" in library.errors["big.json"]


def test_library_of_a_missing_folder_is_empty_until_an_add(tmp_path: Path) -> None:
    library = CharacterLibrary(tmp_path / "cards")
    assert library.list() == []
    entry = library.add(encode(v2()))
    assert entry.id == "ada"
    assert entry.path == tmp_path / "cards" / "ada.json"


def test_add_stores_the_bytes_and_rejects_duplicates(tmp_path: Path) -> None:
    library = CharacterLibrary(tmp_path)
    data = card_png(ccv3=v3())
    entry = library.add(data, "My Ada.png")
    assert entry.id == "my-ada"
    assert (tmp_path / "my-ada.png").read_bytes() == data
    with pytest.raises(DuplicateCharacterError, match="'my-ada' already exists"):
        library.add(encode(v2()), "my ada")
    replaced = library.add(encode(v2(name="Ada Two")), "my-ada", replace=True)
    assert replaced.card.name == "Ada Two"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["my-ada.json"]
    assert CharacterLibrary(tmp_path).get("my-ada") == replaced


def test_failed_add_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = CharacterLibrary(tmp_path)
    with pytest.raises(CardError):
        library.add(encode(v2(name="")), "bad")
    assert list(tmp_path.iterdir()) == []

    def failing_replace(source: str, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        library.add(encode(v2()), "ada")
    assert list(tmp_path.iterdir()) == []
    assert library.get("ada") is None


def test_library_export(tmp_path: Path) -> None:
    library = CharacterLibrary(tmp_path)
    library.add(encode(v2()), "ada")
    assert json.loads(library.export("ada", "json", "chara_card_v2")) == v2()
    assert parse_card(library.export("ada", "png")).name == "Ada"
    with pytest.raises(KeyError):
        library.export("nobody")


def test_slugs() -> None:
    assert slugify("Ada Lovelace (v2)") == "ada-lovelace-v2"
    assert slugify("Zoë") == "zoe"
    assert slugify("???") == "character"


# --- the example characters ---------------------------------------------------------------


def test_example_characters_load_cleanly() -> None:
    library = CharacterLibrary(REPO / "characters")
    assert library.errors == {}
    entries = library.list()
    assert len(entries) >= 3
    assert any(entry.card.avatar_png is not None for entry in entries)
    for entry in entries:
        card: CharacterCard = entry.card
        assert card.spec == "chara_card_v3"
        assert card.voice == "joe"
        assert len(card.alternate_greetings) == 2
        assert card.character_book is not None and len(card.character_book.entries) >= 2


# --- hostile files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"spec": "chara_card_v2", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "card JSON nests arrays and objects more than 64 levels deep"),
        (encode(v2(extensions={"x": float("nan")})), "card JSON has NaN, which is not a JSON"),
        (encode(v2(extensions={"x": 1e308})).replace(b"1e+308", b"1e999"),
         "card JSON has the number 1e999, too large for a 64-bit float"),
        (encode(v2(extensions={"x": 1})).replace(b'"x": 1', b'"x": ' + b"9" * 5000),
         "card JSON has an integer of 5000 digits; at most 100 are accepted"),
        (encode(v2(name="A\ud800")),
         "card JSON has a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) in "
         "the string at 'data.name'"),
    ],
)  # fmt: skip
def test_json_the_server_could_not_show_back_is_refused(data: bytes, message: str) -> None:
    error = error_of(data)
    assert error.code == "malformed_card"
    assert str(error).startswith(message)


def test_deep_card_inside_a_png_is_refused() -> None:
    deep = b'{"spec":"chara_card_v2","data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    error = error_of(card_png(chara=base64.b64encode(deep).decode()))
    assert str(error) == (
        "card JSON in the PNG 'chara' chunk nests arrays and objects more than 64 levels deep"
    )


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I4s", len(data), kind) + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_compressed_text_chunks_are_never_inflated(kind: bytes) -> None:
    """A zlib bomb in a compressed text chunk (64 MiB of zeros) costs only its own bytes."""
    bomb = zlib.compress(bytes(64 * 1024 * 1024), 9)
    header = b"chara\0\0" if kind == b"zTXt" else b"chara\0\x01\0\0\0"
    image = png.solid_png(2, 2, (1, 2, 3))
    data = image[:-12] + png_chunk(kind, header + bomb) + image[-12:]
    tracemalloc.start()
    try:
        error = error_of(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(error) == "PNG has no 'chara' or 'ccv3' text chunk"
    assert peak < 8 * len(data)  # the file and a copy or two of it, nothing inflated


def test_chunk_length_past_the_end_is_refused() -> None:
    image = png.solid_png(2, 2, (1, 2, 3))
    chunk = struct.pack(">I4s", 0xFFFFFFF0, b"tEXt") + b"chara\0abc"
    error = error_of(image[:-12] + chunk + image[-12:])
    assert error.code == "malformed_card"
    assert str(error) == "PNG is truncated: chunk 'tEXt' runs past the end of the file"
