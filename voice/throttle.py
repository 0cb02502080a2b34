"""Slowing down key guessing: failed authentications counted per client address.

No I/O and no clock of its own: the time comes from the injected ``clock`` (seconds,
monotonic). An address with ``max_failures`` failures within the last ``window_s``
seconds is refused until the oldest of them is that old, so a guesser gets at most
``max_failures`` tries per window. Success does not forget failures (behind a proxy many
users share one address; a user with the right key must not clear a guesser's record), and
one address's record never touches another's. IPv6 clients are counted per /64 network,
the block a single host usually has to itself.

Memory is bounded: at most ``max_addresses`` records of at most ``max_failures`` times
each; when full, the record touched longest ago is dropped.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

Clock = Callable[[], float]


class FailureThrottle:
    """Failed attempts per address within a sliding window."""

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 60.0,
        max_addresses: int = 4096,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0 or max_addresses < 1:
            raise ValueError("a FailureThrottle needs max_failures, window_s, max_addresses > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, or ``None`` if it may now."""
        times = self._failures.get(_bucket(address))
        if times is None or len(times) < self.max_failures:
            return None
        wait = times[0] + self.window_s - self._clock()
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, address: str) -> bool:
        """Count one failure; ``True`` if it used up the address's allowance."""
        bucket = _bucket(address)
        times = self._failures.pop(bucket, None)
        if times is None:
            times = deque(maxlen=self.max_failures)
        times.append(self._clock())
        self._failures[bucket] = times  # now the most recently touched
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return len(times) == self.max_failures and self.retry_after(address) is not None

    def __len__(self) -> int:
        """Addresses with a record (for tests and metrics)."""
        return len(self._failures)


def _bucket(address: str) -> str:
    """The key an address is counted under: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a Unix socket peer, "unknown"): as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
