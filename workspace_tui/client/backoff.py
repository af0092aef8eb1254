"""Reconnect delays: exponential backoff with full jitter, reset after a stable connection.

Pure and deterministic when given an RNG, so tests can pin every delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for successive reconnect attempts.

    The n-th delay (n from 0) is ``rng() * min(cap, base * 2**n)`` ("full
    jitter": spreads a crowd of clients that lost the same server), no
    more than ``refused_ceiling`` after a refused connect, and about what the
    server said after a ``Retry-After`` (:meth:`told_delay`). Call
    :meth:`reset` once a connection has stayed up long enough
    (``reset_after`` seconds, checked by the caller with :meth:`stable`).
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        reset_after: float = 10.0,
        refused_ceiling: float = 3.0,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self.refused_ceiling = refused_ceiling
        self._rng = rng or random.random
        self.failures = 0  # consecutive failed attempts since the last reset

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # min() before the power would overflow for very long outages
        return min(self.cap, self.base * 2 ** min(self.failures, 64))

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = self._rng() * self.ceiling()
        self.failures += 1
        return delay

    def refused_delay(self) -> float:
        """The delay after a refused TCP connect: nothing listens, most likely a server restarting.
        A refused connect costs the host one reset, so its delay grows like any other but never
        past ``refused_ceiling``: once the server listens again a crowd of clients is back within
        that, instead of waiting out what the outage grew their backoff to."""
        delay = self._rng() * min(self.refused_ceiling, self.ceiling())
        self.failures += 1
        return delay

    def told_delay(self, retry_after: float) -> float:
        """The delay after the server said when to come back (``Retry-After``): about that, from
        half of it to half again as much, so that a crowd told the same comes back spread out;
        never past ``cap``. Counts one more failure, like any other."""
        delay = min(self.cap, retry_after * (0.5 + self._rng()))
        self.failures += 1
        return delay

    def stable(self, uptime: float) -> bool:
        """Whether a connection that stayed up ``uptime`` seconds earns a reset."""
        return uptime >= self.reset_after

    def reset(self) -> None:
        self.failures = 0
