"""The core's records: a connection, a user, a message on its way to the store, an admission.

Plain slotted objects: the core owns their fields; the server only reads
``Conn.link`` (its own connection object) and the session it was handed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from workspace_tui.protocol import GENERAL, ChatMessage, RequestHistory, user_id_for

# A user's maps and lists start out shared and read-only, and become their own on the first
# write (User's methods): most users only ever have general and no reads, and an idle
# connection is mostly such containers (a dict is 64-232 bytes, a list 56).
NOTHING: Mapping[str, Any] = MappingProxyType({})
_general_only: list[tuple[Any, Mapping[str, Any]]] = []  # (a general RoomInfo, {general: it}), the last one


def _only_general(info: Any) -> Mapping[str, Any]:
    """``{"general": info}``, one read-only map for every user handed an equal *info* (every
    newcomer is: nothing read, nothing unread)."""
    if _general_only and _general_only[0][0] == info:
        return _general_only[0][1]
    only = MappingProxyType({GENERAL: info})
    _general_only[:] = [(info, only)]
    return only


class Session:
    """What the handshake decided about a connection; it holds one slot of the per-user cap
    from admission until :meth:`ChatCore.release` (called once the TCP connection is gone)."""

    __slots__ = (
        "username", "name_key", "quiet", "since", "history", "released", "global_slot", "address", "key", "invite",
        "verified", "document_only", "rooms", "replay",
    )

    def __init__(self, username: str, quiet: bool, since: str | None, history: int, address: str = "",
                 key: str | None = None, invite: str | None = None, name_key: str | None = None) -> None:
        self.username = username  # the stored spelling once the account is known
        # the identity of the name (case, look-alikes folded); the username itself when they are alike
        self.name_key = username if not name_key or name_key == username else name_key
        self.quiet = quiet
        self.since = since
        self.history = history
        self.released = False
        self.global_slot = False  # the backend granted a slot of the workspace-wide cap too
        self.address = address  # the client's address, for the per-address limits
        self.key = key  # the secrets offered in Sec-WebSocket-Protocol, until identity is decided
        self.invite = invite
        self.verified = False
        self.document_only = False  # offered no workspace.v1: a client written from the protocol document only
        self.rooms: Any = None  # list of core.rooms.RoomInfo: the user's rooms, read before the connection opens
        self.replay = False  # what it missed goes out as plain message:new (a document-only client)


class Refusal:
    """A handshake the core refuses: the HTTP status, a plain-text reason, and for identity
    refusals a machine-readable code (the ``Workspace-Refusal`` header) and a ``Retry-After``."""

    __slots__ = ("status", "reason", "code", "retry_after")

    def __init__(self, status: int, reason: str, code: str | None = None, retry_after: int | None = None) -> None:
        self.status = status
        self.reason = reason
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self.reason!r})"


class Conn:
    """One open WebSocket connection, as the core sees it."""

    __slots__ = (
        "user", "session", "quiet", "last_heard", "last_pong", "ping_sent", "closing", "live", "resume", "reads",
        "reading", "link",
    )

    def __init__(self, session: Session, link: Any = None) -> None:
        self.session = session
        self.quiet = session.quiet
        self.user: User = None  # type: ignore[assignment]  # set by ChatCore.open
        self.last_heard = 0.0  # the last frame (or WebSocket ping) from the client
        self.last_pong = 0.0  # the last answer to our keepalive ping
        self.ping_sent = 0.0  # our last keepalive ping
        self.closing = False
        self.live = False  # its join or resume history went out: what it is sent now is live
        self.resume: Resume | None = None  # a resume being streamed to this connection
        self.reads: list[RequestHistory] | tuple[()] = ()  # history pages asked for, served one at a time
        self.reading = False  # a history read or frame for this connection is under way
        self.link = link  # the server's object for this connection; the core never touches it


class Resume:
    """A resume in progress: messages after ``cursor`` up to ``upto`` (the newest message when the
    connection was accepted; later ones reach it live)."""

    __slots__ = ("since", "cursor", "upto", "gap")

    def __init__(self, since: str, upto: str | None) -> None:
        self.since = since
        self.cursor = since
        self.upto = upto
        self.gap: bool | None = None  # known after the first read


class User:
    """A user with at least one connection here (or a reserved slot for one)."""

    __slots__ = (
        "username", "user_id", "status", "conns", "typing", "typing_until", "backlog", "pending",
        "verified", "last_read", "rooms", "typing_room", "quiet_conns",
    )

    def __init__(self, username: str, status: str = "online", verified: bool = False) -> None:
        self.username = username
        self.user_id = user_id_for(username)
        self.verified = verified  # proved the name (a key); unverified names are marked by clients
        self.last_read: Mapping[str, str] = NOTHING  # room -> where they stopped reading it, as far as this node knows
        self.rooms: Mapping[str, Any] = NOTHING  # room -> its summary (core.rooms.RoomInfo), general included
        self.typing_room = "general"
        self.quiet_conns: tuple[Conn, ...] = ()  # its presence=none connections (they get room messages too)
        self.status = status
        # visible-capable (non-quiet) connections: at most a few, and a tuple is smaller than a set
        self.conns: tuple[Conn, ...] = ()
        self.typing = False
        self.typing_until = 0.0
        # Broadcasts about this user that wait for an earlier message of theirs to be stored, so
        # that others see everything the user did in the order they did it. None when empty.
        self.backlog: list[Any] | None = None
        self.pending = 0  # messages of this user on their way to the store

    @property
    def visible_here(self) -> bool:
        return bool(self.conns) and self.status != "offline"

    @property
    def quiet(self) -> int:
        """Its quiet (presence=none) connections, counted."""
        return len(self.quiet_conns)

    def attach(self, conn: Conn) -> None:
        if conn.quiet:
            self.quiet_conns += (conn,)
        else:
            self.conns += (conn,)

    def detach(self, conn: Conn) -> None:
        if conn.quiet:
            self.quiet_conns = tuple(c for c in self.quiet_conns if c is not conn)
        else:
            self.conns = tuple(c for c in self.conns if c is not conn)

    def put_room(self, info: Any) -> None:
        """*info* (a core.rooms.RoomInfo) is the newest summary of its room for this user."""
        if info.room == GENERAL and self.rooms.keys() <= {GENERAL}:  # still general alone: shared
            self.rooms = _only_general(info)
            return
        if type(self.rooms) is not dict:
            self.rooms = dict(self.rooms)
        self.rooms[info.room] = info  # type: ignore[index]

    def drop_room(self, room: str) -> None:
        if room in self.rooms:
            self.rooms = {r: i for r, i in self.rooms.items() if r != room}
        if room in self.last_read:
            self.last_read = {r: m for r, m in self.last_read.items() if r != room}

    def set_read(self, room: str, message_id: str) -> None:
        if type(self.last_read) is not dict:
            self.last_read = dict(self.last_read)
        self.last_read[room] = message_id  # type: ignore[index]


class Draft:
    """A message accepted from a client and on its way to the store."""

    __slots__ = ("user", "conn", "text", "client_msg_id", "done", "payload", "waiters", "room", "unverified", "echo")

    def __init__(self, user: User, conn: Conn, text: str, client_msg_id: str | None, room: str = "general") -> None:
        self.room = room
        self.unverified: list[str] | None = None  # a direct message's recipients who have not proved their name
        self.echo: bytes | None = None  # the sender's own message:new when it says more (unverifiedRecipients)
        self.user = user
        self.conn = conn
        self.text = text
        self.client_msg_id = client_msg_id
        self.done = False  # stored, or refused: the user's later broadcasts may go
        self.payload: bytes | None = None  # its message:new, once stored
        self.waiters: list[Conn] = []  # resends of the same clientMsgId meanwhile

    def message(self, message_id: str, created_at: str) -> ChatMessage:
        u = self.user
        return ChatMessage(message_id, u.user_id, u.username, self.text, created_at, self.client_msg_id, u.verified,
                           self.room)
