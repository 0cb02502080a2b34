"""Secret files under the data folder: the local user's API key, and others like it.

A leaf module (standard library only), so that reading a key file does not load the HTTP
stack: :mod:`voice.config` validates keys through :mod:`voice.memory.crypto`, which reads
its key file with this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: The single-user key's file in the data folder.
LOCAL_KEY_FILE = "local-api-key"


def load_or_create_secret(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of the secret file ``path``, created with ``make()`` (mode 0600) if absent.

    The secret is written to a private temporary file and linked into place, so the file
    appears complete or not at all, and two processes starting at once agree on one
    secret. An existing file readable by others is tightened to 0600 with a warning.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(make() + b"\n")
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:
        log.warning("secret file %s was readable by others; setting mode 0600", path)
        path.chmod(0o600)
    return path.read_bytes().strip()


def new_api_key() -> str:
    """A random key. The prefix keeps it from starting with "-", which command lines
    (``voice bench --api-key KEY``) would read as an option."""
    return "vk_" + secrets.token_urlsafe(32)


def load_or_create_local_key(data_dir: Path) -> str:
    """The single-user key in ``data_dir/local-api-key``, generated on first use."""
    secret = load_or_create_secret(data_dir / LOCAL_KEY_FILE, lambda: new_api_key().encode())
    return secret.decode()
