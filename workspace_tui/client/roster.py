"""Re-reading the roster when a ``presence:batch`` was too big to list (``"complete": false``).

A server that batches presence (workspace.v1) lists at most 200 users per tick; past that it
only says the roster changed, and the client pages ``room:members`` for ``general`` instead.
In a storm of joins every tick says so: the re-read waits until the storm has been quiet
for :data:`QUIET` seconds (at most :data:`MAX_WAIT` after the first), one at a time, and
reads at most :data:`MAX_USERS` users, as many as ``connected`` carries. Pure state, no I/O:
the client asks it what to do and when.
"""

from __future__ import annotations

from typing import NamedTuple

from workspace_tui.protocol import PresenceChanged, RosterEntry

QUIET = 0.5  # seconds without another incomplete batch before the roster is re-read
MAX_WAIT = 5.0  # ... but never later than this after the first incomplete one
PAGE = 100  # users per room:members request (the server's largest page)
MAX_USERS = 200  # users re-read at most, as ``connected`` lists at most 200


class RosterRefreshed(NamedTuple):
    """The roster of ``general`` read afresh (after presence too big to list); ``complete`` is
    ``False`` when more users are online than it holds."""

    users: tuple[RosterEntry, ...]
    complete: bool


class RosterRefresh:
    """When to re-read the roster, and what the pages and the presence meanwhile add up to."""

    def __init__(self) -> None:
        self._first: float | None = None  # the first incomplete batch not yet answered by a re-read
        self._last = 0.0  # ... and the latest
        self._pages: dict[str, RosterEntry] | None = None  # user_id -> entry, while a re-read runs
        self.waiting = False  # a room:members page of ours is on its way

    @property
    def running(self) -> bool:
        return self._pages is not None

    def incomplete(self, now: float) -> None:
        """A ``presence:batch`` said more changed than it lists."""
        if self._first is None:
            self._first = now
        self._last = now

    def due(self) -> float | None:
        """When the next re-read should start (monotonic seconds); ``None``: none is wanted, or one runs."""
        if self._first is None or self.running:
            return None
        return min(self._last + QUIET, self._first + MAX_WAIT)

    def start(self) -> str:
        """A re-read starts now: the ``after`` of its first page."""
        self._first = None
        self._pages = {}
        self.waiting = True
        return ""

    def presence(self, change: PresenceChanged) -> None:
        """Presence that arrived during the re-read is newer than the pages before it."""
        if self._pages is None:
            return
        if change.status == "offline" and not change.connections:
            self._pages.pop(change.user_id, None)
        elif change.user_id in self._pages or len(self._pages) < MAX_USERS:  # bounded, whatever a server sends
            self._pages[change.user_id] = RosterEntry(change.user_id, change.username, change.status,
                                                      change.connections or 1, change.verified)

    def page(self, members: list[RosterEntry], next_after: str | None) -> str | RosterRefreshed | None:
        """One page of ours arrived: the ``after`` of the next one to ask for, or the finished roster."""
        self.waiting = False
        if self._pages is None:
            return None
        for entry in members:  # newer than the presence that came before it (one connection: in order)
            if entry.status != "offline" and (entry.user_id in self._pages or len(self._pages) < MAX_USERS):
                self._pages[entry.user_id] = entry
        if next_after is not None and len(self._pages) < MAX_USERS:
            self.waiting = True
            return next_after
        users, self._pages = tuple(self._pages.values()), None
        return RosterRefreshed(users, next_after is None)

    def stop(self) -> None:
        """The connection ended: a re-read under way is dropped (the next ``connected`` has a roster)."""
        self._first, self._pages, self.waiting = None, None, False
