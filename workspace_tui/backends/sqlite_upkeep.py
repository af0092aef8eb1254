"""Keeping the SQLite store bounded: old messages removed in small steps, and a free-disk floor.

The size that counts is what the messages take in the file: the pages in use
(``page_count - freelist_count``), table and index together. Rows are removed
oldest first, at most :data:`TRIM_ROWS` per step (for the size cap, about as
many as the excess needs, from what the last removed rows took), each step one short
transaction on the event loop; when more must go the next step is queued
behind whatever else is ready, so a large backlog never holds the loop.
Removed rows leave free pages that SQLite reuses for new messages before it
grows the file, so the file stays near the cap instead of growing past it
(it does not shrink by itself: ``VACUUM`` does that, with the server stopped).
The newest message is never removed, so ids keep increasing across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable

from workspace_tui.protocol import make_message_id

log = logging.getLogger("workspace.server.store")

TRIM_ROWS = 100  # rows removed per step, at most (~5 ms: each row also leaves its exactly-once index)
TRIM_TARGET = 0.95  # past the cap, remove down to this fraction of it (not one row per commit)
TICK = 2.0  # seconds between checks of the age limit
DISK_EVERY = 5.0  # seconds between looks at the free disk space, at least


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the file's pages in use (free pages excluded); read from the header, cheap."""
    return db.execute(_USED_BYTES).fetchone()[0]  # one statement, not three: it runs after every commit


_USED_BYTES = (
    "SELECT (page_count - freelist_count) * page_size"
    " FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
)


def remove_oldest(db: sqlite3.Connection, rows: int, before: str | None = None) -> int:
    """Delete at most *rows* of the oldest messages (only those with ``id < before`` when
    given), never the newest one; how many went."""
    newest = db.execute("SELECT max(id) FROM messages").fetchone()[0]
    if newest is None:
        return 0
    bound = newest if before is None or before > newest else before
    edge = db.execute("SELECT id FROM messages WHERE id < ? ORDER BY id LIMIT 1 OFFSET ?",
                      (bound, rows - 1)).fetchone()
    if edge is None:
        removed = db.execute("DELETE FROM messages WHERE id < ?", (bound,)).rowcount
        db.execute("DELETE FROM mentions WHERE message_id < ?", (bound,))
        return removed
    db.execute("DELETE FROM mentions WHERE message_id <= ?", (edge[0],))
    return db.execute("DELETE FROM messages WHERE id <= ?", (edge[0],)).rowcount


def free_disk(folder: str) -> int | None:
    """Bytes an unprivileged process may still write on *folder*'s filesystem (statvfs's
    ``f_bavail``: what is reserved for root does not count)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class Upkeep:
    """The store's limits, applied on the event loop (see the module docstring).

    ``retention`` (seconds, 0 = keep), ``max_bytes`` (0 = no cap) and ``min_free_disk``
    (0 = no floor) may be changed while it runs. ``on_disk(low)`` is called when the free
    space falls below the floor (``True``) and when it is back above it (``False``).
    """

    def __init__(self, db: sqlite3.Connection, folder: str | None, *, retention: float, max_bytes: int,
                 min_free_disk: int, on_disk: Callable[[bool], None]) -> None:
        self.db = db
        self.folder = folder  # None: an in-memory store, no disk to watch
        self.retention = retention
        self.max_bytes = max_bytes
        self.min_free_disk = min_free_disk
        self.tick_every = TICK
        self.disk_every = DISK_EVERY
        self.used = used_bytes(db)
        self.disk_free: int | None = None
        self.disk_low = False
        self.removed = 0  # messages removed since start, by age or size
        self._on_disk = on_disk
        self._shrinking = False
        self._row_bytes = 4096.0  # learnt from each removal; a high first guess removes few rows
        self._disk_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None
        self._stopped = False

    def start(self) -> None:
        """Look at the disk now (a store that starts on a full disk refuses the first send), then run."""
        self.check_disk()
        self._tick()

    def stop(self) -> None:
        self._stopped = True
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()

    def committed(self) -> None:
        """After a commit: past the cap, start removing at once rather than at the next tick."""
        if not self.max_bytes:
            return
        try:
            self.used = used_bytes(self.db)
        except sqlite3.Error:
            return  # the next tick looks again
        if self.used > self.max_bytes:
            self._shrinking = True
            self._step_soon()

    def check_disk(self) -> None:
        """Compare the free space with the floor; report a change."""
        self._disk_at = time.monotonic()
        if self.folder is None:
            return
        self.disk_free = free_disk(self.folder)
        low = bool(self.min_free_disk) and self.disk_free is not None and self.disk_free < self.min_free_disk
        if low == self.disk_low:
            return
        self.disk_low = low
        if low:
            log.warning("only %d MiB free on the store's disk (%s), below --min-free-disk %d MiB: "
                        "sends are refused until there is more room", (self.disk_free or 0) >> 20,
                        self.folder, self.min_free_disk >> 20)
        else:
            log.info("free disk space is back above the floor (%d MiB): sends are accepted again",
                     (self.disk_free or 0) >> 20)
        self._on_disk(low)

    # -- the loop ----------------------------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        if self._stopped:
            return
        self._timer = asyncio.get_running_loop().call_later(self.tick_every, self._tick)
        if time.monotonic() - self._disk_at >= self.disk_every:
            self.check_disk()
        self._step()

    def _step_soon(self) -> None:
        if self._soon is None and not self._stopped:
            self._soon = asyncio.get_running_loop().call_soon(self._step_queued)

    def _step_queued(self) -> None:
        self._soon = None
        if not self._stopped:
            self._step()

    def _step(self) -> None:
        """Remove one batch (by age first, then by size); queue the next if more must go."""
        try:
            more = self._remove_batch()
        except sqlite3.Error as exc:  # a busy or failing disk: try again at the next tick
            log.error("could not remove old messages: %s", exc)
            return
        if more:
            self._step_soon()

    def _remove_batch(self) -> bool:
        """One step; whether another should follow at once."""
        db = self.db
        if self.retention:
            cutoff = make_message_id(max(0, time.time_ns() // 1_000_000 - int(self.retention * 1000)), 0)
            n = remove_oldest(db, TRIM_ROWS, before=cutoff)
            self.removed += n
            if n >= TRIM_ROWS:
                self.used = used_bytes(db)
                return True
        self.used = used_bytes(db)
        target = self.max_bytes * TRIM_TARGET
        if self.max_bytes and self.used > self.max_bytes:
            self._shrinking = True
        if not self.max_bytes or self.used <= target:
            self._shrinking = False
        if not self._shrinking:
            return False
        rows = max(1, min(TRIM_ROWS, int((self.used - target) / self._row_bytes) + 1))
        before = self.used
        n = remove_oldest(db, rows)
        self.removed += n
        self.used = used_bytes(db)
        if n and before > self.used:  # what a row takes in the file, to remove no more than needed
            self._row_bytes = max(64.0, (before - self.used) / n)
        if n == 0:  # only the newest is left: nothing more to remove
            self._shrinking = False
        return self._shrinking
