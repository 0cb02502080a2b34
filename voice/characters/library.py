"""The folder of character cards the server offers: loaded at start, added to at run time.

Blocking file I/O: call :meth:`CharacterLibrary.add` and :meth:`CharacterLibrary.export`
from a worker thread in async code (the HTTP routes do). A lock keeps concurrent adds
consistent; reads see a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from voice.characters.card import (
    DEFAULT_MAX_CARD_BYTES,
    PNG_SIZE_FACTOR,
    CharacterCard,
    ExportSpec,
    format_size,
    parse_card,
)
from voice.characters.export import to_json, to_png
from voice.characters.fields import CardError

log = logging.getLogger(__name__)

CARD_SUFFIXES = (".json", ".png")


class DuplicateCharacterError(ValueError):
    """A card was added under an id the library already has (and ``replace`` was false)."""


@dataclass(frozen=True)
class CharacterEntry:
    """A card in the library, its id and the file it lives in (``None``: the database)."""

    id: str
    card: CharacterCard
    path: Path | None


def slugify(text: str) -> str:
    """A stable id made of text: lowercase ASCII letters, digits and dashes (≤ 64 chars)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:64].strip("-")
    return slug or "character"


class CharacterLibrary:
    """The cards in ``folder`` (``*.json`` and ``*.png``), by id: the slug of the file stem.

    Files that are not valid cards are logged and listed in :attr:`errors` (file name to
    message); they never stop the library from loading the others. The folder may be
    missing: the library is then empty until the first :meth:`add` creates it.
    """

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_CARD_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.errors: dict[str, str] = {}
        self._entries: dict[str, CharacterEntry] = {}
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Read the folder again, replacing what was loaded."""
        entries: dict[str, CharacterEntry] = {}
        errors: dict[str, str] = {}
        paths = sorted(self.folder.iterdir()) if self.folder.is_dir() else []
        for path in paths:
            if path.name.startswith(".") or path.suffix.lower() not in CARD_SUFFIXES:
                continue
            character_id = slugify(path.stem)
            try:
                if character_id in entries:
                    taken = entries[character_id].path
                    assert taken is not None  # every entry here was read from the folder
                    raise CardError(f"its id {character_id!r} is already taken by {taken.name}")
                entries[character_id] = CharacterEntry(character_id, self._read(path), path)
            except (CardError, OSError) as exc:
                errors[path.name] = str(exc)
                log.warning("character card %s not loaded: %s", path.name, exc)
        with self._lock:
            self._entries, self.errors = entries, errors
        log.info("loaded %d character cards from %s", len(entries), self.folder)

    def list(self) -> list[CharacterEntry]:
        """Every card, by id."""
        entries = self._entries
        return [entries[key] for key in sorted(entries)]

    def get(self, character_id: str) -> CharacterEntry | None:
        return self._entries.get(character_id)

    def add(
        self,
        data: bytes,
        filename_hint: str | None = None,
        *,
        replace: bool = False,
        kind: Literal["json", "png"] | None = None,
    ) -> CharacterEntry:
        """Validate a card file's bytes, then store them as ``<id>.json`` or ``<id>.png``.

        The id is the slug of ``filename_hint``'s stem, or of the card's name. The bytes are
        written as given (lossless), to a temporary file first and renamed into place, so a
        failed add leaves no file behind. Raises :class:`CardError` for an invalid card and
        :class:`DuplicateCharacterError` for a taken id unless ``replace`` is true.
        ``kind`` insists on JSON or PNG (see :func:`parse_card`).
        """
        character_id, card = self.validate(data, filename_hint, kind)
        suffix = ".png" if card.avatar_png is not None else ".json"
        path = self.folder / f"{character_id}{suffix}"
        with self._lock:
            previous = self._entries.get(character_id)
            if not replace and (previous is not None or path.exists()):
                raise DuplicateCharacterError(
                    f"a character with id {character_id!r} already exists"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
            if previous is not None and previous.path is not None and previous.path != path:
                previous.path.unlink(missing_ok=True)
            entry = CharacterEntry(character_id, card, path)
            self._entries = {**self._entries, character_id: entry}
            self.errors.pop(path.name, None)
        return entry

    def validate(
        self, data: bytes, filename_hint: str | None, kind: Literal["json", "png"] | None
    ) -> tuple[str, CharacterCard]:
        """The id (the slug of ``filename_hint``'s stem, or of the card's name) and the card
        of a card file's bytes; raises :class:`CardError`."""
        card = parse_card(data, max_bytes=self.max_bytes, kind=kind)
        return slugify(Path(filename_hint).stem if filename_hint else card.name), card

    def put(self, entry: CharacterEntry) -> None:
        """Add or replace a card read from elsewhere (the database), in memory only."""
        with self._lock:
            self._entries = {**self._entries, entry.id: entry}

    async def find(self, character_id: str) -> CharacterEntry | None:
        """:meth:`get`, for callers that may also hold a :class:`SharedLibrary`."""
        return self.get(character_id)

    async def store(
        self,
        data: bytes,
        filename_hint: str | None = None,
        *,
        replace: bool = False,
        kind: Literal["json", "png"] | None = None,
    ) -> CharacterEntry:
        """:meth:`add` on a worker thread (it writes a file)."""
        return await asyncio.to_thread(
            functools.partial(self.add, data, filename_hint, replace=replace, kind=kind)
        )

    async def refresh(self) -> None:
        """Nothing to do: the folder is read at start and changed only through :meth:`add`."""

    def export(
        self,
        character_id: str,
        fmt: Literal["json", "png"] = "json",
        spec: ExportSpec = "chara_card_v3",
    ) -> bytes:
        """A card as a JSON file in ``spec`` or as a PNG (with both V2 and V3 chunks).

        Raises ``KeyError`` for an unknown id.
        """
        entry = self._entries.get(character_id)
        if entry is None:
            raise KeyError(character_id)
        if fmt == "png":
            return to_png(entry.card)
        return to_json(entry.card, spec, indent=2).encode()

    def _read(self, path: Path) -> CharacterCard:
        limit = self.max_bytes * (PNG_SIZE_FACTOR if path.suffix.lower() == ".png" else 1)
        size = path.stat().st_size
        if size > limit:  # not read at all
            raise CardError(f"file is {format_size(size)}; the limit is {format_size(limit)}")
        return parse_card(path.read_bytes(), max_bytes=self.max_bytes)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file and ``os.replace``."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
