"""Log lines that are one per event while events are few, and a count when they are many.

A small team's server logs every connect and disconnect, which is what an
operator reads. A reconnect storm (or a flood of refused handshakes) would
write thousands of lines a second, and formatting them was a tenth of the
server's cost per connection: past ``burst`` lines in a ``window``, events are
counted instead, and one summary line says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class BurstLog:
    """A logger's INFO lines for frequent events (*kind* names the event in the summary)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 20,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        later: Callable[[float, Callable[[], None]], object] | None = None,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.window = window
        self.clock = clock
        self.later = later  # schedules the summary for the end of the window (else: at the next event)
        self.window_ends = 0.0
        self.lines = 0  # lines written in this window
        self.left_out: Counter[str] = Counter()
        self._summary_due = False

    def info(self, kind: str, msg: str, *args: object) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        now = self.clock()
        if now >= self.window_ends:
            self.summarize()
            self.window_ends = now + self.window
            self.lines = 0
        if self.lines < self.burst:
            self.lines += 1
            self.logger.info(msg, *args)
            return
        self.left_out[kind] += 1
        if not self._summary_due and self.later is not None:
            self._summary_due = True
            self.later(max(0.0, self.window_ends - now), self.summarize)

    def summarize(self) -> None:
        """Write the count of what was left out, if anything was."""
        self._summary_due = False
        if not self.left_out:
            return
        counts = ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.left_out.items()))
        self.left_out.clear()
        self.logger.info("busy: %s not logged one by one in the last %.0f s", counts, self.window)
