"""Client secrets: short-lived keys that a browser or phone app holds instead of an API key.

No I/O and no clock of its own (``clock`` is injected: seconds since the epoch, because the
API reports ``expires_at`` in those and what is reported is what is enforced). A secret is
``ek_`` and 256 random bits; the table keeps only its SHA-256 digest, so a copy of the
table (or of the process's memory at rest in a core dump) does not hold usable secrets. A
digest of a random 256-bit value needs no salt or slow hash, and looking it up in a dict
tells a guesser nothing: to hit an entry it must produce a preimage.

A secret is bound to the user whose key minted it and, optionally, to a session
configuration (a JSON object, already checked by the caller) that every session opened
with it starts with. It opens any number of sessions until ``expires_at``; a session
already open goes on after that.

Secrets live in this process's memory only: they do not survive a restart, and replicas
behind one load balancer do not share them (a WebRTC call, its hang-up and its sideband
connection are per process anyway). Memory is bounded: at most ``max_per_user`` live
secrets per user and ``max_total`` in all, beyond which minting is refused (never is a
live secret evicted to make room: another user's minting must not end yours); expired
ones are swept out when a secret is minted, and the last ``remembered_expired`` of them
are remembered by digest only, so that using one gets "expired" rather than "invalid".
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]

#: What every client secret starts with, as OpenAI's do.
SECRET_PREFIX = "ek_"
#: ``expires_after.seconds``: the default and the bounds of the Realtime API.
DEFAULT_TTL_S = 600
MIN_TTL_S = 10
MAX_TTL_S = 7200


@dataclass(frozen=True)
class Grant:
    """What a live client secret stands for."""

    user: str
    #: The session configuration the secret's sessions start with (a ``session.update``'s
    #: ``session`` object), or ``None``.
    session: dict[str, Any] | None
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class Expired:
    """A secret that was valid once and has expired (``expires_at``, epoch seconds)."""

    expires_at: float


class TooManySecrets(Exception):
    """Minting refused: the user (or the server) holds as many live secrets as allowed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        #: Whole seconds until the oldest of the secrets in the way expires.
        self.retry_after = retry_after


class ClientSecrets:
    """The live client secrets of this process, by digest."""

    def __init__(
        self,
        *,
        max_per_user: int = 100,
        max_total: int = 10_000,
        remembered_expired: int = 4096,
        clock: Clock = time.time,
    ) -> None:
        if max_per_user < 1 or max_total < 1 or remembered_expired < 0:
            raise ValueError("ClientSecrets needs max_per_user, max_total > 0")
        self.max_per_user = max_per_user
        self.max_total = max_total
        self.remembered_expired = remembered_expired
        self._clock = clock
        self._live: dict[bytes, Grant] = {}
        self._per_user: dict[str, int] = {}
        self._expired: OrderedDict[bytes, float] = OrderedDict()

    def mint(
        self, user: str, *, ttl_s: int = DEFAULT_TTL_S, session: dict[str, Any] | None = None
    ) -> tuple[str, Grant]:
        """A new secret for ``user``, valid ``ttl_s`` seconds, and what it grants.

        Raises :class:`ValueError` for a ``ttl_s`` outside :data:`MIN_TTL_S` to
        :data:`MAX_TTL_S`, :class:`TooManySecrets` when a bound is reached.
        """
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"a client secret lives {MIN_TTL_S} to {MAX_TTL_S} seconds")
        self.sweep()
        if self._per_user.get(user, 0) >= self.max_per_user:
            raise TooManySecrets(
                f"this user already holds {self.max_per_user} live client secrets; "
                "use one of them, or wait until one expires",
                self._retry_after(user),
            )
        if len(self._live) >= self.max_total:
            raise TooManySecrets(
                f"the server holds {self.max_total} live client secrets; try again later",
                self._retry_after(None),
            )
        now = self._clock()
        grant = Grant(user, session, created_at=now, expires_at=now + ttl_s)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        self._live[_digest(secret)] = grant
        self._per_user[user] = self._per_user.get(user, 0) + 1
        return secret, grant

    def lookup(self, secret: str) -> Grant | Expired | None:
        """What ``secret`` grants now; :class:`Expired` once it has expired; ``None`` if it
        was never one of ours (or expired so long ago that it is forgotten)."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        digest = _digest(secret)
        grant = self._live.get(digest)
        if grant is not None:
            if self._clock() < grant.expires_at:
                return grant
            self._expire(digest, grant)
        expired_at = self._expired.get(digest)
        return None if expired_at is None else Expired(expired_at)

    def sweep(self) -> None:
        """Forget the secrets that have expired (remembering the latest of them as expired)."""
        now = self._clock()
        for digest, grant in [(d, g) for d, g in self._live.items() if now >= g.expires_at]:
            self._expire(digest, grant)

    def live_for(self, user: str) -> int:
        """How many live (or not yet swept) secrets ``user`` holds."""
        return self._per_user.get(user, 0)

    def __len__(self) -> int:
        """Secrets held (live, or expired and not yet swept)."""
        return len(self._live)

    def _expire(self, digest: bytes, grant: Grant) -> None:
        del self._live[digest]
        left = self._per_user[grant.user] - 1
        if left:
            self._per_user[grant.user] = left
        else:
            del self._per_user[grant.user]
        if self.remembered_expired:
            self._expired[digest] = grant.expires_at
            while len(self._expired) > self.remembered_expired:
                self._expired.popitem(last=False)

    def _retry_after(self, user: str | None) -> int:
        ends = [g.expires_at for g in self._live.values() if user is None or g.user == user]
        return max(1, math.ceil(min(ends) - self._clock())) if ends else 1


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
