"""When the outbox may send: the server's rate limit, seen from our side, and the in-flight window.

Pure: the caller passes the clock, so tests can step through time.
"""

from __future__ import annotations

from collections import deque

# Unacknowledged sends per connection. After a rate-limit rejection the window restarts at 1 and
# doubles with each ack, so a few rejections cannot snowball into a flood close (1008).
WINDOW_MAX = 256


class SendGate:
    """A token bucket mirroring the server's (``messagesPerMinute``, burst = the limit), a pause
    after ``rate_limited``, and a window of unacknowledged sends.

    The bucket is kept across reconnects: what we sent just before a reconnect still counts
    against us on the server.
    """

    def __init__(self) -> None:
        self.per_minute = 0
        self.tokens: float | None = None  # None until the first ``connected`` tells us the limit
        self.at = 0.0
        self.pause_until = 0.0
        self.window = WINDOW_MAX

    def connected(self, per_minute: int, now: float) -> None:
        self.per_minute = per_minute
        if self.tokens is None:
            self.tokens, self.at = float(per_minute), now  # the server's bucket starts full too
        else:
            self._refill(now)
            self.tokens = min(float(per_minute), self.tokens)

    def _refill(self, now: float) -> None:
        if self.tokens is not None and self.per_minute:
            self.tokens = min(float(self.per_minute), self.tokens + (now - self.at) * self.per_minute / 60.0)
        self.at = now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send may go (0: now)."""
        if self.pause_until > now:
            return self.pause_until - now
        if not self.per_minute or self.tokens is None:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) * 60.0 / self.per_minute

    def take(self, now: float) -> None:
        """One send goes out now."""
        if self.per_minute and self.tokens is not None:
            self._refill(now)
            self.tokens = max(0.0, self.tokens - 1.0)

    def rate_limited(self, retry_after_ms: int | None, now: float) -> None:
        """The server said ``rate_limited``: wait, then restart gently with an empty bucket."""
        wait = (retry_after_ms if retry_after_ms is not None else 1000) / 1000
        self.pause_until = max(self.pause_until, now + wait)
        self.tokens, self.at = 0.0, now
        self.window = 1

    def flooded(self, now: float) -> None:
        """Closed with 1008: start over gently."""
        self.tokens, self.at = 0.0, now
        self.window = 1

    def acknowledged(self) -> None:
        self.window = min(WINDOW_MAX, self.window * 2)


class SeenIds:
    """The last *maxlen* message ids delivered, to drop repeats."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._set: set[str] = set()
        self._order: deque[str] = deque()
        self._max = maxlen

    def add(self, message_id: str) -> bool:
        """Remember *message_id*; ``False`` when it was already there."""
        if message_id in self._set:
            return False
        self._set.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self._max:
            self._set.discard(self._order.popleft())
        return True

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._set

    def __len__(self) -> int:
        return len(self._set)
