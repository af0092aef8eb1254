"""Per-user rate limits: token buckets with a sticky back-off and flood detection.

Pure: every call is given the time (seconds on a monotonic clock).
"""

from __future__ import annotations

from collections import deque


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.stamp: float | None = None  # set by the first call

    def _refill(self, now: float) -> None:
        if self.stamp is None:
            self.stamp = now
        elif now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is available."""
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # a client that waited exactly the announced time gets its token
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


class Limiter:
    """One user's limit for one kind of frame, across all their connections.

    Sticky: once a frame is refused, every frame is refused until the announced
    retry time has passed, so a pipelining client cannot get a later message
    accepted ahead of an earlier refused one. More than ``flood`` refusals
    within ``window`` seconds means flooding (the caller closes with 1008).
    """

    __slots__ = ("bucket", "blocked_until", "refusals", "flood", "window")

    def __init__(self, capacity: float, per_second: float, flood: int, window: float = 60.0) -> None:
        self.bucket = TokenBucket(capacity, per_second)
        self.blocked_until = 0.0
        self.refusals: deque[float] = deque()
        self.flood = flood
        self.window = window

    def check(self, now: float) -> int:
        """0 when the frame may pass, else the milliseconds the client must wait (always >= 1)."""
        if now < self.blocked_until:
            wait = self.blocked_until - now
        else:
            wait = self.bucket.take(now)
            if not wait:
                return 0
            self.blocked_until = now + wait
        self.refusals.append(now)
        return max(1, int(wait * 1000 + 0.999))

    def refused(self, now: float) -> None:
        """Count a refusal decided elsewhere (a global limit kept by the backend)."""
        self.refusals.append(now)

    def flooding(self, now: float) -> bool:
        cutoff = now - self.window
        refusals = self.refusals
        while refusals and refusals[0] < cutoff:
            refusals.popleft()
        return len(refusals) > self.flood

    def idle(self, now: float) -> bool:
        """True when forgetting this limiter changes nothing (bucket full, no recent refusals)."""
        return now >= self.blocked_until and self.bucket.full(now) and not self.flooding(now)
