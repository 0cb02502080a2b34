"""Encryption at rest for memory text and transcripts (AES-256-GCM).

One 32-byte server key (``memory_key`` or ``data_dir/memory.key``) is expanded with HKDF
into an encryption key and a keyed-hash key. Each value is sealed with a fresh 96-bit
nonce and bound, as associated data, to where it belongs (table, user id, row id): a
ciphertext copied into another user's row does not decrypt. A blob is
``version (1 byte) || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from voice.keyfiles import load_or_create_secret

if TYPE_CHECKING:
    from voice.config import Settings

KEY_FILE = "memory.key"
KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12


class DecryptionError(ValueError):
    """A blob that is corrupt, from another key, or bound to another row."""


def decode_key(text: str) -> bytes:
    """Decode a base64 (standard or URL-safe, padding optional) 32-byte key."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"memory key is not valid base64: {exc}") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"memory key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def generate_key() -> str:
    """A new random key, base64 encoded (what ``VOICE_MEMORY_KEY`` takes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def load_memory_key(settings: Settings) -> bytes:
    """``settings.memory_key``, or the key in ``data_dir/memory.key`` (created, 0600)."""
    if settings.memory_key is not None:
        return decode_key(settings.memory_key)
    text = load_or_create_secret(settings.data_dir / KEY_FILE, lambda: generate_key().encode())
    return decode_key(text.decode())


class MemoryCipher:
    """Seals and opens text bound to a context string; also keyed digests for dedupe."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(_derive(key, b"voice memory encryption v1"))
        self._mac_key = _derive(key, b"voice memory digest v1")

    def encrypt(self, text: str, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, text.encode(), context.encode())
        return _VERSION + nonce + sealed

    def decrypt(self, blob: bytes, context: str) -> str:
        """The text sealed in ``blob``; :class:`DecryptionError` if it is not ours."""
        if blob[:1] != _VERSION or len(blob) < 1 + _NONCE_BYTES + 16:
            raise DecryptionError("unknown or truncated memory blob")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, context.encode()).decode()
        except InvalidTag:
            raise DecryptionError("memory blob does not match its key or row") from None

    def digest(self, text: str) -> str:
        """Keyed SHA-256 of ``text`` (hex): equal texts match; reveals nothing without the key."""
        return hmac.new(self._mac_key, text.encode(), hashlib.sha256).hexdigest()


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(key)
