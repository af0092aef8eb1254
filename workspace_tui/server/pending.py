"""Connections that have not finished their handshake, counted per address and in all.

A silent socket costs a file descriptor until the handshake timeout: without a cap, one
address opening a thousand of them uses up the open-file limit and locks everyone out.
Over a cap the new TCP connection is dropped at once, before it costs anything more.
"""

from __future__ import annotations

from collections import Counter


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
