"""Character cards (Character Card V1, V2 and V3) from JSON or PNG files, and back.

No I/O: bytes in, a validated :class:`CharacterCard` out; a card in, JSON or PNG bytes out.

* JSON: ``{"spec": "chara_card_v2" | "chara_card_v3", "spec_version": …, "data": {…}}``, or a
  V1 card (the fields of ``data`` in a flat object, read leniently).
* PNG: the card JSON, UTF-8 and base64-encoded, in a ``tEXt`` chunk named ``ccv3`` (V3) or
  ``chara`` (V2); when both exist ``ccv3`` wins, as the V3 spec asks.

Exporting (JSON or PNG, V2 or V3) is :mod:`voice.characters.export`.

Every field the server uses is type-checked; everything else in the file, known to us or
not, is kept in :attr:`CharacterCard.raw` so that exporting in the card's own spec gives
back exactly what was imported.

Sizes: the card JSON may be up to ``max_bytes`` (the ``max_card_bytes`` setting, 2 MiB by
default), whether it is a ``.json`` file or sits inside a PNG; a PNG file may be up to
``PNG_SIZE_FACTOR`` times that (8 MiB by default), to leave room for the image. The JSON
may nest at most ``MAX_CARD_NESTING_DEPTH`` levels, its numbers must be finite and its strings
valid Unicode: a card is shown back as JSON, which could not hold them otherwise. PNG text
is read from uncompressed ``tEXt`` chunks only: nothing is ever inflated, so a compressed
chunk (``zTXt``, ``iTXt``) cannot be a decompression bomb.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voice import json_limits
from voice.characters import png
from voice.characters.fields import CardError, CardFields, json_type

Spec = Literal["chara_card_v1", "chara_card_v2", "chara_card_v3"]
ExportSpec = Literal["chara_card_v2", "chara_card_v3"]

DEFAULT_MAX_CARD_BYTES: Final = 2 * 1024 * 1024
#: A PNG card may be this many times ``max_bytes``: the image is most of the file.
PNG_SIZE_FACTOR: Final = 4
#: The PNG text chunks that carry cards, by the spec they carry.
CHUNK_KEYWORDS: Final[dict[ExportSpec, str]] = {"chara_card_v2": "chara", "chara_card_v3": "ccv3"}
#: Deepest nesting of arrays and objects in a card's JSON (real cards nest under ten levels;
#: extensions of other tools included). Checked before decoding: see :mod:`voice.json_limits`.
MAX_CARD_NESTING_DEPTH: Final = 64
#: Most digits of an integer in a card's JSON (Python refuses to convert more than 4300).
MAX_CARD_INT_DIGITS: Final = 100


@dataclass(frozen=True)
class LoreEntry:
    """One lorebook entry, as the prompt builder uses it."""

    keys: tuple[str, ...]
    #: The text added to the prompt, without its leading ``@@decorator`` lines.
    content: str
    enabled: bool = True
    insertion_order: float = 0
    #: ``None``: the card did not say; matching is then case-insensitive.
    case_sensitive: bool | None = None
    use_regex: bool = False
    constant: bool = False
    selective: bool = False
    secondary_keys: tuple[str, ...] = ()
    priority: float | None = None
    name: str = ""
    position: str | None = None
    #: Names of the ``@@decorators`` found at the top of the content (``activate``, …).
    decorators: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CharacterBook:
    """A card's lorebook."""

    entries: tuple[LoreEntry, ...]
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool = False


@dataclass(frozen=True)
class CharacterCard:
    """A validated character card.

    Made by :func:`parse_card` or :func:`card_from_dict`. Export writes :attr:`raw`, so a
    copy changed with ``dataclasses.replace`` exports unchanged: change the data, then parse.

    Equality compares the character (every field below except ``spec`` and ``raw``): a V2
    card and its V3 export are the same character.
    """

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    alternate_greetings: tuple[str, ...] = ()
    mes_example: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    #: For people browsing cards; never sent to the model.
    creator_notes: str = ""
    #: V3: replaces the name in ``{{char}}`` when set.
    nickname: str = ""
    tags: tuple[str, ...] = ()
    creator: str = ""
    character_version: str = ""
    character_book: CharacterBook | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    #: The spec the card was read as.
    spec: Spec = field(default="chara_card_v3", compare=False)
    #: The card object exactly as imported (envelope included), for lossless export.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: The PNG the card came in, without its card text chunks; ``None`` for JSON cards.
    avatar_png: bytes | None = field(default=None, repr=False)

    @property
    def display_name(self) -> str:
        """What ``{{char}}`` stands for: the nickname if set, else the name."""
        return self.nickname or self.name

    @property
    def voice(self) -> str | None:
        """The voice preset named by ``extensions.voice``, if the card names one."""
        voice = self.extensions.get("voice")
        return voice if isinstance(voice, str) and voice else None


# --- import ----------------------------------------------------------------------------


def parse_card(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_CARD_BYTES,
    kind: Literal["json", "png"] | None = None,
) -> CharacterCard:
    """Parse a card file's bytes: a PNG if it starts with the PNG signature, else JSON.

    ``kind`` insists on one of the two. Raises :class:`CardError`.
    """
    is_png = png.is_png(data)
    if kind == "png" and not is_png:
        raise CardError("file is not a PNG (it lacks the PNG signature)", "malformed_card")
    if kind == "json" and is_png:
        raise CardError("file is a PNG, not JSON", "malformed_card")
    if is_png:
        return _parse_png(data, max_bytes)
    _check_size("card", len(data), max_bytes)
    return _validate(_load_json(data, "card JSON"), None)


def card_from_dict(obj: object, *, avatar_png: bytes | None = None) -> CharacterCard:
    """Validate a decoded card object (V1, V2 or V3); raises :class:`CardError`.

    The card keeps a deep copy of ``obj`` as :attr:`CharacterCard.raw`.
    """
    return _validate(copy.deepcopy(obj), avatar_png)


def _validate(obj: object, avatar_png: bytes | None) -> CharacterCard:
    if not isinstance(obj, dict):
        raise CardError("card JSON is not an object")
    spec = obj.get("spec")
    if spec is None and "data" not in obj:
        return _card_from_fields(obj, "", "chara_card_v1", obj, avatar_png)
    if spec not in ("chara_card_v2", "chara_card_v3"):
        raise CardError(
            f"unsupported card spec {spec!r}; expected 'chara_card_v2' or 'chara_card_v3'"
        )
    data = obj.get("data")
    if not isinstance(data, dict):
        raise CardError(f"card 'data' must be an object, not {json_type(data)}")
    return _card_from_fields(data, "data.", spec, obj, avatar_png)


def _parse_png(data: bytes, max_bytes: int) -> CharacterCard:
    _check_size("card PNG", len(data), PNG_SIZE_FACTOR * max_bytes)
    try:
        chunks = png.read_chunks(data)
    except png.PngError as exc:
        raise CardError(str(exc), "malformed_card") from exc
    texts = png.text_chunks(chunks)
    keyword = "ccv3" if "ccv3" in texts else "chara" if "chara" in texts else None
    if keyword is None:
        raise CardError("PNG has no 'chara' or 'ccv3' text chunk")
    try:
        payload = base64.b64decode("".join(texts[keyword].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CardError(f"PNG {keyword!r} chunk is not valid base64", "malformed_card") from exc
    _check_size("card JSON in the PNG", len(payload), max_bytes)
    obj = _load_json(payload, f"card JSON in the PNG {keyword!r} chunk")
    avatar = png.write_chunks(png.without_text(chunks, CHUNK_KEYWORDS.values()))
    return _validate(obj, avatar)


def _load_json(data: bytes, what: str) -> object:
    encoding = json.detect_encoding(data)  # UTF-8 (with or without BOM), UTF-16 or UTF-32
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CardError(f"{what} is not valid {encoding.upper()}", "malformed_card") from exc
    try:
        return json_limits.loads(
            text, max_depth=MAX_CARD_NESTING_DEPTH, max_int_digits=MAX_CARD_INT_DIGITS
        )
    except json_limits.JsonLimitError as exc:
        raise CardError(f"{what} {exc.message}", "malformed_card") from exc


def _card_from_fields(
    data: Mapping[str, Any],
    prefix: str,
    spec: Spec,
    raw: Mapping[str, Any],
    avatar_png: bytes | None,
) -> CharacterCard:
    fields = CardFields(data, prefix)
    name = fields.text("name")
    if not name.strip():
        raise CardError(f"card '{prefix}name' must be a non-empty string")
    book = data.get("character_book")
    return CharacterCard(
        name=name,
        description=fields.text("description"),
        personality=fields.text("personality"),
        scenario=fields.text("scenario"),
        first_mes=fields.text("first_mes"),
        alternate_greetings=fields.texts("alternate_greetings"),
        mes_example=fields.text("mes_example"),
        system_prompt=fields.text("system_prompt"),
        post_history_instructions=fields.text("post_history_instructions"),
        creator_notes=fields.text("creator_notes"),
        nickname=fields.text("nickname"),
        tags=fields.texts("tags"),
        creator=fields.text("creator"),
        character_version=fields.text("character_version"),
        character_book=None if book is None else _book(book, f"{prefix}character_book"),
        extensions=copy.deepcopy(fields.mapping("extensions")),
        spec=spec,
        raw=raw,
        avatar_png=avatar_png,
    )


def _book(obj: object, path: str) -> CharacterBook:
    if not isinstance(obj, dict):
        raise CardError(f"card '{path}' must be an object, not {json_type(obj)}")
    fields = CardFields(obj, f"{path}.")
    entries = obj.get("entries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise CardError(f"card '{path}.entries' must be an array, not {json_type(entries)}")
    scan_depth, token_budget = fields.number("scan_depth"), fields.number("token_budget")
    return CharacterBook(
        entries=tuple(_entry(entry, f"{path}.entries[{i}]") for i, entry in enumerate(entries)),
        scan_depth=None if scan_depth is None else int(scan_depth),
        token_budget=None if token_budget is None else int(token_budget),
        recursive_scanning=fields.flag("recursive_scanning", default=False),
    )


def _entry(obj: object, path: str) -> LoreEntry:
    if not isinstance(obj, dict):
        raise CardError(f"card '{path}' must be an object, not {json_type(obj)}")
    fields = CardFields(obj, f"{path}.")
    decorators, content = _split_decorators(fields.text("content"))
    return LoreEntry(
        keys=fields.keys("keys"),
        content=content,
        enabled=fields.flag("enabled", default=True),
        insertion_order=fields.number("insertion_order") or 0,
        case_sensitive=fields.optional_flag("case_sensitive"),
        use_regex=fields.flag("use_regex", default=False),
        constant=fields.flag("constant", default=False),
        selective=fields.flag("selective", default=False),
        secondary_keys=fields.keys("secondary_keys"),
        priority=fields.number("priority"),
        name=fields.text("name"),
        position=fields.text("position") or None,
        decorators=decorators,
    )


def _split_decorators(content: str) -> tuple[frozenset[str], str]:
    """The ``@@decorator`` lines at the top of a lorebook entry's content, and the rest."""
    lines = content.split("\n")
    names: set[str] = set()
    while lines and lines[0].startswith("@@"):
        line = lines.pop(0)
        if not line.startswith("@@@") and len(line) > 2:  # @@@ lines are fallbacks
            names.add(line[2:].split(maxsplit=1)[0].lower())
    return frozenset(names), "\n".join(lines).strip("\n")


def _check_size(what: str, size: int, limit: int) -> None:
    if size > limit:
        raise CardError(
            f"{what} is {format_size(size)}; the limit is {format_size(limit)}", "card_too_large"
        )


def format_size(size: int) -> str:
    """``size`` bytes for people: ``512 bytes``, ``12.0 KiB``, ``3.2 MiB``."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"
