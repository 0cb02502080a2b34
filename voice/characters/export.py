"""A character card exported as a V2 or V3 object, JSON text, or a PNG with both chunks.

No I/O. Exporting in the card's own spec gives back exactly what was imported (its
:attr:`~voice.characters.card.CharacterCard.raw`); in the other spec the data is carried
over whole and the target spec's required fields are filled in.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any, Final

from voice.characters import png
from voice.characters.card import CHUNK_KEYWORDS, CharacterCard, ExportSpec

_SPEC_VERSIONS: Final[dict[ExportSpec, str]] = {"chara_card_v2": "2.0", "chara_card_v3": "3.0"}


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
