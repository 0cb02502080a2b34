"""Character cards in the database, as two replicas see them: two :class:`SharedLibrary`
instances on one real SQLite file (the PostgreSQL case runs end to end in
tests/test_replicas_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_characters_api import card, card_png
from voice.characters.library import CharacterLibrary, DuplicateCharacterError
from voice.characters.shared import SharedLibrary
from voice.memory.database import Base, create_engine

MAX_BYTES = 8192


def card_bytes(name: str, **data: Any) -> bytes:
    return json.dumps(card(name, **data)).encode()


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    folder = tmp_path / "characters"
    folder.mkdir()
    (folder / "ada.json").write_bytes(card_bytes("Ada"))
    return folder


@pytest.fixture
async def replicas(tmp_path: Path, seed: Path) -> AsyncIterator[tuple[SharedLibrary, ...]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'voice.db'}"
    engines = [create_engine(url), create_engine(url)]
    async with engines[0].begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    empty = tmp_path / "empty"  # the second replica has no card on its disk
    libraries = (
        SharedLibrary(CharacterLibrary(seed, MAX_BYTES), engines[0], refresh_s=3600),
        SharedLibrary(CharacterLibrary(empty, MAX_BYTES), engines[1], refresh_s=3600),
    )
    for library in libraries:
        await library.start()
    yield libraries
    for library, engine in zip(libraries, engines, strict=True):
        await library.aclose()
        await engine.dispose()


async def test_the_folder_seeds_every_replica(replicas: tuple[SharedLibrary, ...]) -> None:
    a, b = replicas
    assert [entry.id for entry in a.list()] == ["ada"]
    assert [entry.id for entry in b.list()] == ["ada"]  # read from the database
    assert b.get("ada") is not None and b.get("ada").path is None  # type: ignore[union-attr]


async def test_an_upload_on_one_replica_is_found_on_the_other(
    replicas: tuple[SharedLibrary, ...], seed: Path
) -> None:
    a, b = replicas
    stored = await a.store(card_png(card("Eve")), "eve")
    assert stored.card.avatar_png is not None
    assert b.get("eve") is None  # not read yet...
    found = await b.find("eve")  # ...but a call naming it looks it up
    assert found is not None and found.card.name == "Eve"
    assert found.card.avatar_png == stored.card.avatar_png  # the image came along
    assert not (seed / "eve.png").exists()  # nothing on a replica's disk


async def test_a_taken_id_is_refused_on_any_replica_and_replace_wins_everywhere(
    replicas: tuple[SharedLibrary, ...],
) -> None:
    a, b = replicas
    with pytest.raises(DuplicateCharacterError):
        await b.store(card_bytes("Ada"), "ada")  # seeded by A's folder
    await b.store(card_bytes("Ada", personality="new"), "ada", replace=True)
    await a.refresh()
    entry = a.get("ada")
    assert entry is not None and entry.card.personality == "new"


async def test_a_replaced_seed_card_is_not_reseeded_at_restart(
    tmp_path: Path, seed: Path, replicas: tuple[SharedLibrary, ...]
) -> None:
    a, _ = replicas
    await a.store(card_bytes("Ada", personality="uploaded"), "ada", replace=True)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'voice.db'}")
    restarted = SharedLibrary(CharacterLibrary(seed, MAX_BYTES), engine, refresh_s=3600)
    try:
        await restarted.start()
        entry = restarted.get("ada")
        assert entry is not None and entry.card.personality == "uploaded"
    finally:
        await restarted.aclose()
        await engine.dispose()
