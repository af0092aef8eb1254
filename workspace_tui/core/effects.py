"""What the chat core asks the outside world to do.

The core never writes to a socket, a database or a clock. Each of its methods
appends effects to :attr:`ChatCore.out`; the server carries them out *in
order* and reports back what completed (a store, a read, a drain) by calling
the core again. Payloads are JSON already encoded to UTF-8 bytes, once, so a
broadcast costs one encoding whoever receives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .history import HistoryQuery
    from .state import Conn, Draft


class Deliver(NamedTuple):
    """Send one frame to one connection. ``payload`` is the JSON, or a list of parts to write
    back to back (``connected``: the roster bytes are shared between joins, not copied)."""

    conn: Conn
    payload: bytes | list[bytes]


class Broadcast(NamedTuple):
    """Send one frame to every attached connection except those of ``exclude_user`` (a user id)
    and ``exclude_conn``. ``lazy`` frames (presence, typing) may wait a few milliseconds to be
    coalesced with others; no frame ever overtakes an earlier one. ``document_only``: ``True``,
    only to the connections that offered no workspace.v1; ``False``, only to those that did
    (presence goes to each kind in its own frames); ``None``, to all."""

    payload: bytes
    exclude_user: str | None = None
    exclude_conn: Conn | None = None
    lazy: bool = False
    document_only: bool | None = None


class Attach(NamedTuple):
    """Start giving *conn* broadcasts. While ``held`` they are kept back (in order, counted against
    the slow-reader limit) until :class:`Release`: the history it is owed goes first."""

    conn: Conn
    held: bool = True


class Release(NamedTuple):
    """*conn* has had its history: what was held back goes out now, and broadcasts flow directly."""

    conn: Conn


class Close(NamedTuple):
    """Close *conn* with a WebSocket close frame, after what is already queued for it."""

    conn: Conn
    code: int
    reason: str


class Abort(NamedTuple):
    """Drop *conn*'s TCP connection at once: it stopped answering, there is no handshake to wait for."""

    conn: Conn


class Ping(NamedTuple):
    """Send a WebSocket ping to *conn* (keepalive)."""

    conn: Conn


class Store(NamedTuple):
    """Append *draft* to the backend; it answers with :meth:`ChatCore.stored` (and the messages
    that became visible with :meth:`ChatCore.committed`)."""

    draft: Draft


class Read(NamedTuple):
    """Read history for *conn*; the backend answers with :meth:`ChatCore.history_read`."""

    conn: Conn
    query: HistoryQuery


class WhenDrained(NamedTuple):
    """Call :meth:`ChatCore.drained` once *conn*'s outgoing buffer is low again (flow control for
    history that is produced frame by frame as the reader takes it)."""

    conn: Conn


class Relay(NamedTuple):
    """Tell the other nodes of the workspace about a local user (presence or typing)."""

    event: dict[str, object]


class Post(NamedTuple):
    """A live frame for one connection, in order with the broadcasts it gets (held back, like them,
    while its history goes out): a room's message or typing, for its members only."""

    conn: Conn
    payload: bytes


class RoomOp(NamedTuple):
    """Ask the store to create, join, leave, invite to, retitle, list or page a room; the answer
    goes to :meth:`ChatCore.room_done`."""

    conn: Conn
    request: Any  # protocol.RoomRequest
    username: str
    name_key: str


class CheckNames(NamedTuple):
    """Look up whether a direct message's recipients own their names (the answer goes to
    :meth:`ChatCore.names_checked`, before the sender's echo when the store answers at once)."""

    draft: Draft
    names: tuple[str, ...]


class SaveRead(NamedTuple):
    """Keep a user's read position in a room (forward only)."""

    name_key: str
    room: str
    message_id: str


Effect = (Deliver | Broadcast | Attach | Release | Close | Abort | Ping | Store | Read | WhenDrained | Relay | SaveRead
          | Post | RoomOp | CheckNames)
