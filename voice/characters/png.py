"""Just enough PNG for character cards: read and rewrite ``tEXt`` chunks, draw a placeholder.

No I/O and no image decoding: the file is checked chunk by chunk (signature, lengths, CRCs,
``IHDR`` first, ``IEND`` last), which is all a card needs. Standard library only.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngError(ValueError):
    """The bytes are not a well-formed PNG; the message says where it breaks."""


@dataclass(frozen=True)
class Chunk:
    """One PNG chunk: its four-letter type and its data (length and CRC are derived)."""

    type: bytes
    data: bytes


def is_png(data: bytes) -> bool:
    """Whether ``data`` starts with the PNG signature."""
    return data.startswith(SIGNATURE)


def read_chunks(data: bytes) -> list[Chunk]:
    """The chunks of a PNG file, up to and including ``IEND``; raises :class:`PngError`."""
    if not is_png(data):
        raise PngError("file does not start with the PNG signature")
    chunks: list[Chunk] = []
    offset = len(SIGNATURE)
    while True:
        if offset + 8 > len(data):
            raise PngError("PNG is truncated: it ends before its IEND chunk")
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 8 + length + 4
        if end > len(data):
            name = kind.decode("latin-1")
            raise PngError(f"PNG is truncated: chunk {name!r} runs past the end of the file")
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(kind + body) != crc:
            raise PngError(f"PNG chunk {kind.decode('latin-1')!r} has a bad CRC")
        if not chunks and kind != b"IHDR":
            raise PngError("PNG does not start with an IHDR chunk")
        chunks.append(Chunk(kind, body))
        offset = end
        if kind == b"IEND":
            return chunks


def write_chunks(chunks: Iterable[Chunk]) -> bytes:
    """A PNG file made of ``chunks`` (which must start with IHDR and end with IEND)."""
    parts = [SIGNATURE]
    for chunk in chunks:
        crc = zlib.crc32(chunk.type + chunk.data)
        parts.append(struct.pack(">I4s", len(chunk.data), chunk.type))
        parts.append(chunk.data)
        parts.append(struct.pack(">I", crc))
    return b"".join(parts)


def text_chunks(chunks: Iterable[Chunk]) -> dict[str, str]:
    """``tEXt`` keywords and their Latin-1 text; the first chunk of a keyword wins.

    Malformed ``tEXt`` chunks (no NUL separator) are not ours to judge and are skipped.
    """
    texts: dict[str, str] = {}
    for chunk in chunks:
        if chunk.type != b"tEXt" or b"\0" not in chunk.data:
            continue
        keyword, text = chunk.data.split(b"\0", 1)
        texts.setdefault(keyword.decode("latin-1"), text.decode("latin-1"))
    return texts


def without_text(chunks: Iterable[Chunk], keywords: Collection[str]) -> list[Chunk]:
    """``chunks`` minus the ``tEXt`` chunks named by one of ``keywords``."""
    names = {keyword.encode("latin-1") for keyword in keywords}
    return [
        chunk
        for chunk in chunks
        if chunk.type != b"tEXt" or chunk.data.split(b"\0", 1)[0] not in names
    ]


def with_text(data: bytes, texts: Mapping[str, str]) -> bytes:
    """``data`` with one ``tEXt`` chunk per entry of ``texts``, replacing same-named ones.

    The new chunks go just before ``IEND``, as other card tools place them.
    """
    chunks = without_text(read_chunks(data), texts)
    added = [
        Chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))
        for keyword, text in texts.items()
    ]
    return write_chunks([*chunks[:-1], *added, chunks[-1]])


def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """An 8-bit RGB PNG of one colour."""
    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return write_chunks(
        [
            Chunk(b"IHDR", header),
            Chunk(b"IDAT", zlib.compress(row * height, 9)),
            Chunk(b"IEND", b""),
        ]
    )
