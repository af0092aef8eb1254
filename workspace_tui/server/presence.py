"""Who is online: users, their connections, status and typing state.

A user is *visible* when they have at least one non-quiet connection and their
status is not ``offline`` ("appear offline"). Only visible users are in the
roster and in ``connectedUsers``; presence changes are broadcast only when
visibility or status changes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from workspace_tui.protocol import RosterEntry, user_id_for

from .hub import encode

if TYPE_CHECKING:
    import asyncio

    from .hub import Peer


class UserState:
    """One user with at least one connection (or a reservation for one)."""

    __slots__ = ("user_id", "username", "status", "peers", "quiet", "typing", "typing_timer")

    def __init__(self, username: str, status: str = "online") -> None:
        self.username = username
        self.user_id = user_id_for(username)
        self.status = status
        # visible-capable (non-quiet) connections: at most a few, and an empty list is 160 bytes
        # smaller than an empty set (one per online user)
        self.peers: list[Peer] = []
        self.quiet = 0  # quiet (presence=none) connections
        self.typing = False
        self.typing_timer: asyncio.TimerHandle | None = None

    @property
    def visible(self) -> bool:
        return bool(self.peers) and self.status != "offline"

    def roster_entry(self) -> RosterEntry:
        return RosterEntry(self.user_id, self.username, self.status, len(self.peers))


class Presence:
    """The registry of users on this node."""

    def __init__(self, status_memory: float = 300.0) -> None:
        self.users: dict[str, UserState] = {}  # username -> state, for users with live peers
        self.visible: dict[str, UserState] = {}  # user_id -> state, visible users only
        self._entries: dict[str, bytes] = {}  # user_id -> encoded roster entry, visible users only
        # The encoded ``users`` array as a joined base plus a short tail of users who became
        # visible since: a join appends to the tail instead of re-joining the whole roster
        # (~1 ms per join at 10,000 users). Any other change drops the base (rebuilt lazily).
        self._base: bytes | None = None
        self._base_ids: frozenset[str] = frozenset()
        self._tail: dict[str, bytes] = {}
        self._tail_json: bytes | None = None
        self.remembered: dict[str, tuple[str, float]] = {}  # username -> (status, expiry)
        self.status_memory = status_memory

    def user(self, username: str) -> UserState:
        u = self.users.get(username)
        if u is None:
            status = "online"
            memo = self.remembered.pop(username, None)
            if memo and memo[1] > time.monotonic():
                status = memo[0]
            u = self.users[username] = UserState(username, status)
        return u

    def refresh(self, u: UserState) -> None:
        """Recompute *u*'s place in the visible set after a change."""
        uid = u.user_id
        if u.visible:
            self.visible[uid] = u
            entry = encode(u.roster_entry().to_wire())
            if self._entries.get(uid) == entry:
                return
            self._entries[uid] = entry
            if uid in self._base_ids:
                self._base = None
            else:
                self._tail[uid] = entry
                self._tail_json = None
        else:
            self.visible.pop(uid, None)
            if self._entries.pop(uid, None) is not None:
                if uid in self._base_ids:
                    self._base = None
                elif self._tail.pop(uid, None) is not None:
                    self._tail_json = None

    def forget_if_unused(self, u: UserState) -> None:
        if not u.peers and not u.quiet:
            if u.status != "online" and self.status_memory > 0:
                self.remembered[u.username] = (u.status, time.monotonic() + self.status_memory)
            if self.users.get(u.username) is u:
                del self.users[u.username]

    def prune(self) -> None:
        now = time.monotonic()
        for name in [n for n, (_, exp) in self.remembered.items() if exp <= now]:
            del self.remembered[name]

    @property
    def connected_users(self) -> int:
        return len(self.visible)

    TAIL_MAX = 256  # users in the tail before it is merged into the base

    def roster_parts(self) -> list[bytes]:
        """The entries of the ``users`` array, encoded and comma-separated (no brackets), as
        parts to write back to back; shared by every join until the next change."""
        if self._base is None or len(self._tail) > self.TAIL_MAX:
            self._base = b",".join(self._entries.values())
            self._base_ids = frozenset(self._entries)
            self._tail.clear()
            self._tail_json = None
        if not self._tail:
            return [self._base]
        if self._tail_json is None:
            self._tail_json = b",".join(self._tail.values())
        return [self._base, b",", self._tail_json] if self._base else [self._tail_json]
