"""Character cards (Character Card V1, V2 and V3) from JSON or PNG files, and back.

No I/O: bytes in, a validated :class:`CharacterCard` out; a card in, JSON or PNG bytes out.

* JSON: ``{"spec": "chara_card_v2" | "chara_card_v3", "spec_version": …, "data": {…}}``, or a
  V1 card (the fields of ``data`` in a flat object, read leniently).
* PNG: the card JSON, UTF-8 and base64-encoded, in a ``tEXt`` chunk named ``ccv3`` (V3) or
  ``chara`` (V2); when both exist ``ccv3`` wins, as the V3 spec asks.

Every field the server uses is type-checked; everything else in the file, known to us or
not, is kept in :attr:`CharacterCard.raw` so that exporting in the card's own spec gives
back exactly what was imported.

Sizes: the card JSON may be up to ``max_bytes`` (the ``max_card_bytes`` setting, 2 MiB by
default), whether it is a ``.json`` file or sits inside a PNG; a PNG file may be up to
``PNG_SIZE_FACTOR`` times that (8 MiB by default), to leave room for the image.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voice.characters import png

Spec = Literal["chara_card_v1", "chara_card_v2", "chara_card_v3"]
ExportSpec = Literal["chara_card_v2", "chara_card_v3"]
ErrorCode = Literal["card_too_large", "malformed_card", "invalid_card"]

DEFAULT_MAX_CARD_BYTES: Final = 2 * 1024 * 1024
#: A PNG card may be this many times ``max_bytes``: the image is most of the file.
PNG_SIZE_FACTOR: Final = 4
#: The PNG text chunks that carry cards, by the spec they carry.
CHUNK_KEYWORDS: Final[dict[ExportSpec, str]] = {"chara_card_v2": "chara", "chara_card_v3": "ccv3"}
_SPEC_VERSIONS: Final[dict[ExportSpec, str]] = {"chara_card_v2": "2.0", "chara_card_v3": "3.0"}


class CardError(ValueError):
    """A card that cannot be imported. The message names the problem; ``code`` classifies it:
    ``card_too_large``, ``malformed_card`` (not JSON, not a PNG, bad base64) or
    ``invalid_card`` (well-formed, but not a valid card)."""

    def __init__(self, message: str, code: ErrorCode = "invalid_card") -> None:
        super().__init__(message)
        self.code: ErrorCode = code


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
        raise CardError(f"card 'data' must be an object, not {_json_type(data)}")
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
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise CardError(f"{what} is not valid UTF-8", "malformed_card") from exc
    except json.JSONDecodeError as exc:
        raise CardError(f"{what} is not valid JSON: {exc}", "malformed_card") from exc
    except RecursionError as exc:
        raise CardError(f"{what} is nested too deeply", "malformed_card") from exc


def _card_from_fields(
    data: Mapping[str, Any],
    prefix: str,
    spec: Spec,
    raw: Mapping[str, Any],
    avatar_png: bytes | None,
) -> CharacterCard:
    fields = _Fields(data, prefix)
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
        raise CardError(f"card '{path}' must be an object, not {_json_type(obj)}")
    fields = _Fields(obj, f"{path}.")
    entries = obj.get("entries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise CardError(f"card '{path}.entries' must be an array, not {_json_type(entries)}")
    scan_depth, token_budget = fields.number("scan_depth"), fields.number("token_budget")
    return CharacterBook(
        entries=tuple(_entry(entry, f"{path}.entries[{i}]") for i, entry in enumerate(entries)),
        scan_depth=None if scan_depth is None else int(scan_depth),
        token_budget=None if token_budget is None else int(token_budget),
        recursive_scanning=fields.flag("recursive_scanning", default=False),
    )


def _entry(obj: object, path: str) -> LoreEntry:
    if not isinstance(obj, dict):
        raise CardError(f"card '{path}' must be an object, not {_json_type(obj)}")
    fields = _Fields(obj, f"{path}.")
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


class _Fields:
    """Typed reads of one JSON object's fields; errors name the field's path.

    A missing field or ``null`` reads as the empty value: real-world cards use both.
    """

    def __init__(self, obj: Mapping[str, Any], prefix: str) -> None:
        self._obj = obj
        self._prefix = prefix

    def _fail(self, key: str, expected: str, value: object) -> CardError:
        return CardError(f"card '{self._prefix}{key}' must be {expected}, not {_json_type(value)}")

    def text(self, key: str) -> str:
        value = self._obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._fail(key, "an array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self._fail(f"{key}[{index}]", "a string", item)
        return tuple(value)

    def keys(self, key: str) -> tuple[str, ...]:
        """Lorebook keys: an array of strings, or (leniently) one comma-separated string."""
        value = self._obj.get(key)
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return self.texts(key)

    def optional_flag(self, key: str) -> bool | None:
        value = self._obj.get(key)
        if value is not None and not isinstance(value, bool):
            raise self._fail(key, "a boolean", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.optional_flag(key)
        return default if value is None else value

    def number(self, key: str) -> float | None:
        value = self._obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number", value)
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


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


# --- export ----------------------------------------------------------------------------


def to_dict(card: CharacterCard, spec: ExportSpec = "chara_card_v3") -> dict[str, Any]:
    """The card as a ``spec`` object.

    In the card's own spec this is a copy of :attr:`CharacterCard.raw`. Otherwise the data
    is carried over whole (unknown fields too) and the target spec's required fields are
    filled in: V2 and V3 are supersets of each other's data in practice.
    """
    if card.spec == spec:
        return copy.deepcopy(dict(card.raw))
    if card.spec == "chara_card_v1":
        envelope: dict[str, Any] = {}
        data = copy.deepcopy(dict(card.raw))
    else:
        envelope = {
            key: copy.deepcopy(value)
            for key, value in card.raw.items()
            if key not in ("spec", "spec_version", "data")
        }
        data = copy.deepcopy(dict(card.raw["data"]))
    required: dict[str, Any] = {
        "name": card.name,
        "description": card.description,
        "personality": card.personality,
        "scenario": card.scenario,
        "first_mes": card.first_mes,
        "mes_example": card.mes_example,
        "creator_notes": card.creator_notes,
        "system_prompt": card.system_prompt,
        "post_history_instructions": card.post_history_instructions,
        "alternate_greetings": list(card.alternate_greetings),
        "tags": list(card.tags),
        "creator": card.creator,
        "character_version": card.character_version,
        "extensions": dict(card.extensions),
    }
    if spec == "chara_card_v3":
        required["group_only_greetings"] = []
        if card.character_book is not None:  # V3 requires use_regex on every entry
            for entry in data["character_book"].get("entries") or []:
                entry.setdefault("use_regex", False)
    for key, value in required.items():
        if data.get(key) is None:
            data[key] = copy.deepcopy(value)
    return {**envelope, "spec": spec, "spec_version": _SPEC_VERSIONS[spec], "data": data}


def to_json(
    card: CharacterCard, spec: ExportSpec = "chara_card_v3", *, indent: int | None = None
) -> str:
    """The card as JSON text in ``spec`` (compact unless ``indent`` is given)."""
    separators = (",", ":") if indent is None else None
    return json.dumps(to_dict(card, spec), ensure_ascii=False, indent=indent, separators=separators)


def to_png(card: CharacterCard) -> bytes:
    """The card as a PNG with both a ``chara`` (V2) and a ``ccv3`` (V3) text chunk.

    The image is the card's avatar, or :func:`placeholder_png` when it has none.
    """
    image = card.avatar_png if card.avatar_png is not None else placeholder_png(card.name)
    texts = {
        keyword: base64.b64encode(to_json(card, spec).encode()).decode("ascii")
        for spec, keyword in CHUNK_KEYWORDS.items()
    }
    return png.with_text(image, texts)


def placeholder_png(name: str) -> bytes:
    """A 64 by 64 square in a soft colour derived from ``name`` (stable across runs)."""
    digest = hashlib.sha256(name.encode()).digest()
    red, green, blue = (96 + byte % 128 for byte in digest[:3])
    return png.solid_png(64, 64, (red, green, blue))
