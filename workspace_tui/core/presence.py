"""Who is online, across every node of the workspace, and the roster that ``connected`` carries.

A user is *visible* when they have at least one non-quiet connection somewhere
and their status is not ``offline`` ("appear offline"). This node knows its own
users (:class:`~.state.User`) and what the other nodes last reported about
theirs (:attr:`Presence.remote`; always empty with a single node). Every
presence frame and roster entry carries the user's global state: status and
number of connections on all nodes.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from .encoding import encode
from .state import User


class RemoteUser(NamedTuple):
    """One user's connections on another node, as that node last reported."""

    user_id: str
    status: str
    count: int
    stamp: float  # when we heard it: the most recent status wins when the user is not here
    verified: bool = False


class Presence:
    """The registry of users: local state, remote reports, remembered statuses and the roster."""

    TAIL_MAX = 256  # users in the roster's tail before it is merged into the base
    # ``connected`` lists at most this many users (about 20 KiB); beyond it clients page the rest
    # with ``room:members`` for general, so a join costs the same with 100 or 10,000 people online.
    ROSTER_CAP = 200

    def __init__(self, status_memory: float = 300.0) -> None:
        self.users: dict[str, User] = {}  # username -> state, for users with connections here
        self.remote: dict[str, dict[str, RemoteUser]] = {}  # node -> username -> report
        self.remembered: dict[str, tuple[str, float]] = {}  # username -> (status, expiry)
        self.status_memory = status_memory
        # user_id -> encoded roster entry, globally visible users only. The ``users`` array is
        # kept as a joined base plus a short tail of users who became visible since: a join
        # appends to the tail instead of re-joining the whole roster (~1 ms per join at 10,000
        # users). Any other change drops the base (rebuilt lazily).
        self._entries: dict[str, bytes] = {}
        self._base: bytes | None = None
        self._base_ids: frozenset[str] = frozenset()
        self._tail: dict[str, bytes] = {}
        self._tail_json: bytes | None = None
        self._head: bytes | None = None  # the capped roster (see roster_head)
        self._head_ids: frozenset[str] = frozenset()  # ... and whose entries it holds
        self._names: dict[str, str] = {}  # user_id -> username, of the visible users
        self._by_name: list[str] | None = None  # their names, sorted (for room:members pages)

    # -- users here -------------------------------------------------------------

    def user(self, username: str, now: float) -> User:
        """The local state of *username*, created on first use with the status they had when
        they were last here (within ``status_memory``) or have on another node."""
        u = self.users.get(username)
        if u is None:
            status = "online"
            memo = self.remembered.pop(username, None)
            if memo and memo[1] > now:
                status = memo[0]
            u = self.users[username] = User(username, status)
            elsewhere = self._remote_status(username)
            if elsewhere is not None:
                u.status = elsewhere  # a status is the user's everywhere, "appear offline" too
        return u

    def _remote_status(self, username: str) -> str | None:
        """The status of *username*'s connections on other nodes (the latest report), if any."""
        status, stamp = None, -1.0
        for users in self.remote.values():
            r = users.get(username)
            if r is not None and r.count > 0 and r.stamp > stamp:
                status, stamp = r.status, r.stamp
        return status

    def forget_if_unused(self, u: User, now: float) -> None:
        if not u.conns and not u.quiet and not u.pending:
            if u.status != "online" and self.status_memory > 0:
                self.remembered[u.username] = (u.status, now + self.status_memory)
            if self.users.get(u.username) is u:
                del self.users[u.username]

    def prune(self, now: float) -> None:
        for name in [n for n, (_, exp) in self.remembered.items() if exp <= now]:
            del self.remembered[name]

    # -- the global view ----------------------------------------------------------

    def aggregate(self, username: str) -> tuple[str, int]:
        """The user's global (status, connections); ``("offline", 0)`` when not visible anywhere."""
        u = self.users.get(username)
        count = len(u.conns) if u else 0
        status = u.status if u is not None and u.conns else None
        stamp = -1.0
        for users in self.remote.values():
            r = users.get(username)
            if r is None or r.count <= 0:
                continue
            count += r.count
            if (u is None or not u.conns) and r.stamp > stamp:
                status, stamp = r.status, r.stamp
        if not count or status is None or status == "offline":
            return "offline", 0
        return status, count

    def verified(self, username: str) -> bool:
        """Whether *username* proved the name, here or on another node."""
        u = self.users.get(username)
        if u is not None and u.verified:
            return True
        return any(r.verified for users in self.remote.values() if (r := users.get(username)) is not None)

    def refresh(self, username: str, user_id: str) -> tuple[str, int]:
        """Recompute *username*'s roster entry after any change; returns their global state."""
        status, count = self.aggregate(username)
        if count:
            fields = {"userId": user_id, "username": username, "status": status, "connections": count}
            if self.verified(username):  # absent means not proved: most rosters stay as small as before
                fields["verified"] = True
            entry = encode(fields)
            if self._entries.get(user_id) == entry:
                return status, count
            self._drop_head(user_id)
            if self._names.get(user_id) != username:
                self._by_name = None
            self._names[user_id] = username
            self._entries[user_id] = entry
            if user_id in self._base_ids:
                self._base = None
            else:
                self._tail[user_id] = entry
                self._tail_json = None
        elif self._entries.pop(user_id, None) is not None:
            self._drop_head(user_id)
            self._names.pop(user_id, None)
            self._by_name = None
            if user_id in self._base_ids:
                self._base = None
            elif self._tail.pop(user_id, None) is not None:
                self._tail_json = None
        return status, count

    def _drop_head(self, user_id: str) -> None:
        """Forget the capped roster if *user_id*'s change shows in it. A full head holds the first
        ``ROSTER_CAP`` entries in insertion order, and a newcomer is appended after them: joins
        past the cap leave it as it is (rebuilding it cost O(cap) per join)."""
        if self._head is not None and len(self._head_ids) >= self.ROSTER_CAP and user_id not in self._head_ids:
            return
        self._head = None

    @property
    def connected_users(self) -> int:
        """Distinct users visible online, on every node."""
        return len(self._entries)

    def roster_complete(self) -> bool:
        return len(self._entries) <= self.ROSTER_CAP

    def roster_head(self) -> list[bytes]:
        """The first ``ROSTER_CAP`` entries, for ``connected`` when more users than that are online
        (rebuilt only after a change)."""
        if self._head is None:
            head, ids = [], []
            for user_id, entry in self._entries.items():
                head.append(entry)
                ids.append(user_id)
                if len(head) >= self.ROSTER_CAP:
                    break
            self._head = b",".join(head)
            self._head_ids = frozenset(ids)
        return [self._head]

    def visible_page(self, after: str, limit: int) -> tuple[list[tuple[str, str, str, bool]], str | None]:
        """Online users with names after *after*, by name: ``(username, user_id, status, verified)``,
        and the name to page on from (``None``: that was all). For ``room:members`` of general."""
        if self._by_name is None:  # sorted once per change of who is online, not once per page
            self._by_name = sorted(self._names.values())
        start = bisect_right(self._by_name, after)
        page = self._by_name[start:start + limit]
        out = []
        for name in page:
            status, _ = self.aggregate(name)
            u = self.users.get(name)
            user_id = u.user_id if u is not None else next(
                (r.user_id for users in self.remote.values() if (r := users.get(name)) is not None), "")
            out.append((name, user_id, status, self.verified(name)))
        return out, (page[-1] if len(self._by_name) > start + limit else None)

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


class Change(NamedTuple):
    """One user's presence as it became at one moment (a ``presence:update``'s encoded ``data``),
    kept for the tick's ``presence:batch``; it waits in the user's backlog like their other frames."""

    user_id: str
    data: bytes


class TickBatch:
    """The presence changes of one tick, for the connections that take ``presence:batch``
    (workspace.v1): the latest state of each user who changed, one frame for all of them."""

    def __init__(self) -> None:
        self.due: float | None = None  # when the batch goes out; None: nothing collected
        self._latest: dict[str, bytes] = {}  # user_id -> their latest data this tick

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._latest

    def add(self, change: Change, now: float, interval: float) -> None:
        if self.due is None:
            self.due = now + interval
        # Even a user who came and went within the tick is said to be gone: a connection that
        # joined in between had them in its `connected` roster (a ghost otherwise).
        self._latest[change.user_id] = change.data

    def take(self, cap: int, connected_users: int) -> bytes | None:
        """The batch frame, encoded once (``None`` when nothing is left to say); over *cap* users
        it lists none and says ``"complete":false``: the client pages the roster instead."""
        entries = self._latest
        self._latest, self.due = {}, None
        if not entries:
            return None
        count = b'"connectedUsers":' + str(connected_users).encode()
        if len(entries) > cap:
            return b'{"type":"presence:batch","data":{"users":[],"complete":false,' + count + b"}}"
        return b'{"type":"presence:batch","data":{"users":[' + b",".join(entries.values()) + b"]," + count + b"}}"
