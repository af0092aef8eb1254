"""Connections that have not finished their handshake, counted per address and in all.

A silent socket costs a file descriptor until the handshake timeout: without a cap, one
address opening a thousand of them uses up the open-file limit and locks everyone out.
Over a cap the new TCP connection gets :data:`BUSY` and is closed at once, before anything
is read: one write of constant bytes, no parsing, nothing kept.
"""

from __future__ import annotations

from collections import Counter

RETRY_AFTER_S = 1  # a handshake takes milliseconds: by then most of those ahead are through

_BUSY_TEXT = b"too many connections are in their handshake right now: try again in a second\n"

# Without it a client only saw its connection reset, and took that for a failure: after a
# restart, whose refused connects had already grown its backoff, it waited up to 30 s.
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Retry-After: %d\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s" % (RETRY_AFTER_S, len(_BUSY_TEXT), _BUSY_TEXT)
)


class PendingHandshakes:
    """How many handshakes are pending, and whether one more may start.

    ``per_address`` 0 (or ``None`` passed as the address) means no per-address cap;
    ``overall`` 0 means no overall cap.
    """

    def __init__(self, per_address: int, overall: int) -> None:
        self.per_address = per_address
        self.overall = overall
        self.by_address: Counter[str] = Counter()
        self.total = 0
        self.refused: Counter[str] = Counter()  # by which cap: "address", "overall"

    def begin(self, address: str | None) -> bool:
        """Count one more pending handshake from *address* (``None``: not capped per address),
        or refuse it (counted in :attr:`refused`) and return False."""
        if self.overall and self.total >= self.overall:
            self.refused["overall"] += 1
            return False
        if address is not None and self.per_address and self.by_address[address] >= self.per_address:
            self.refused["address"] += 1
            return False
        self.total += 1
        if address is not None:
            self.by_address[address] += 1
        return True

    def end(self, address: str | None) -> None:
        """A handshake counted by :meth:`begin` is over (answered, timed out or dropped)."""
        self.total -= 1
        if address is not None:
            left = self.by_address[address] - 1
            if left > 0:
                self.by_address[address] = left
            else:
                del self.by_address[address]
