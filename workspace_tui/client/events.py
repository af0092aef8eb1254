"""Typed events a :class:`~workspace_tui.client.ChatClient` hands to its consumer.

Everything the TUI and the one-liners learn from the network arrives as one of
these, in order, from ``ChatClient.events()``. Names are in the past tense.
"""

import enum
from typing import Any, NamedTuple, Union

# Presence and typing changes reach consumers as the protocol's own values.
from workspace_tui.protocol import ChatMessage, Limits, PresenceChanged, RosterEntry, TypingChanged

# Read positions: parsed in client/reads.py, where the frames about them live.
from workspace_tui.client.reads import GENERAL, ReadPositionChanged, RoomSummary
from workspace_tui.client.roster import RosterRefreshed
from workspace_tui.client.rooms import (
    ListedRoom,
    RoomInvited,
    RoomJoined,
    RoomLeft,
    RoomMember,
    RoomMemberChanged,
    RoomMembersListed,
    RoomsListed,
    RoomUpdated,
    TypingInRoom,
)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  # first attempt under way
    CONNECTED = "connected"  # open, ``connected`` frame received
    RECONNECTING = "reconnecting"  # lost; waiting ``delay`` seconds before attempt ``attempt``
    STOPPED = "stopped"  # will not try again; ``reason`` says why


class StateChanged(NamedTuple):
    """The connection moved to another state."""

    state: ConnectionState
    attempt: int = 0  # the attempt about to be made (RECONNECTING) or that succeeded
    delay: float | None = None  # seconds until the next attempt (RECONNECTING)
    reason: str | None = None  # why we are reconnecting or stopped, readable
    queued: int = 0  # messages in the outbox not yet acknowledged
    status_code: int | None = None  # HTTP status of a refused handshake (400, 401, 429), if any
    detail: str | None = None  # the reason in a few words for a status line (no URL, no retry advice); None: see reason
    # STOPPED by a refusal the server explained (``Workspace-Refusal``: key_required, invite_required...)
    refusal: str | None = None


class Joined(NamedTuple):
    """The server accepted us (``connected``): who we are, who is here, the limits."""

    user_id: str
    username: str
    connected_users: int
    users: tuple[RosterEntry, ...]
    limits: Limits
    resumed: bool  # True when this is a reconnect that resumes with ``since=``
    # Our status from now on: ours re-applied, or what the server had (set in another window of
    # ours); ``None`` for a quiet connection (``present=False``).
    status: str | None = None
    verified: bool = False  # this connection proved its name with our key
    auth: str | None = None  # the server's mode: "claim", "invite" or "open" (None: it did not say)
    # Where we stopped reading each room, and what is unread there (``connected.rooms``);
    # empty from a server that keeps no read positions.
    rooms: tuple[RoomSummary, ...] = ()


def is_verified(record: Any) -> bool:
    """Whether a message, roster entry, presence change or ``connected`` says its user proved the
    name. A server that does not say (one that predates names that belong to someone) never
    vouches for anyone: missing is ``False``."""
    return getattr(record, "verified", False) is True


class HistoryReceived(NamedTuple):
    """A ``history`` frame: ``messages`` oldest first, already de-duplicated."""

    messages: tuple[ChatMessage, ...]
    reason: str  # "join", "resume" or "page"
    has_more: bool
    gap: bool = False  # on resume: some missed messages were trimmed from the server's store
    room: str | None = GENERAL  # the frame's room; None: a resume across rooms (see ``rooms``)
    rooms: tuple[str, ...] = ()  # each message's room, parallel to ``messages`` (empty: all in ``room``)

    def room_of(self, index: int) -> str:
        """The room of ``messages[index]``."""
        return self.rooms[index] if index < len(self.rooms) else (self.room or GENERAL)


class MessageReceived(NamedTuple):
    """A new message from anyone (our own included), never delivered twice."""

    message: ChatMessage
    own: bool = False
    room: str = GENERAL  # the room (or ``dm:`` id) it was posted in


class SendPaced(NamedTuple):
    """The outbox waits before its next send: the server's rate limit (mirrored here), or a pause
    the server asked for after refusing one of ours with ``rate_limited``.

    Emitted each time the wait starts; the send itself follows by itself after ``delay``.
    """

    delay: float  # seconds until the next message may go
    per_minute: int  # the server's limit (``messagesPerMinute``; 0 when unknown or off)
    queued: int  # messages waiting in the outbox
    refused: bool = False  # True when the server refused one of ours (``rate_limited``) and asked to wait


class ErrorReceived(NamedTuple):
    """An ``error`` frame not tied to one of our outbox messages.

    Also emitted, for information, when one of ours is rate limited (``client_msg_id`` set):
    the client waits ``retry_after_ms`` and resends it by itself.
    """

    code: str
    message: str
    frame_type: str | None = None
    retry_after_ms: int | None = None
    client_msg_id: str | None = None


class OutboxEntry(NamedTuple):
    """One message we sent, as kept on disk until the server acknowledges it."""

    client_msg_id: str
    text: str
    created_at: str  # ISO 8601 UTC, when the user sent it
    failed: bool = False
    error: str | None = None  # the server's reason when failed
    room: str | None = None  # where it goes (``dev``, ``dm:alice,bob``); None: general


class MessagePending(NamedTuple):
    """Our message is in the outbox, on its way (also emitted for queued messages on start)."""

    entry: OutboxEntry


class MessageAcknowledged(NamedTuple):
    """The server stored our message: it has left the outbox."""

    client_msg_id: str
    message: ChatMessage


class MessageFailed(NamedTuple):
    """The server refused our message for good; it stays in the outbox as failed until retried or discarded."""

    entry: OutboxEntry
    code: str
    reason: str


class FrameReceived(NamedTuple):
    """A frame this client does not type (``room:list``, ``room:members``...), as its JSON object."""

    frame: dict[str, Any]


ClientEvent = Union[
    StateChanged,
    RosterRefreshed,
    Joined,
    HistoryReceived,
    MessageReceived,
    PresenceChanged,
    TypingChanged,
    ErrorReceived,
    MessagePending,
    MessageAcknowledged,
    MessageFailed,
    SendPaced,
    ReadPositionChanged,
    RoomJoined,
    RoomLeft,
    RoomUpdated,
    RoomMemberChanged,
    RoomInvited,
    RoomsListed,
    RoomMembersListed,
    TypingInRoom,
    FrameReceived,
]

__all__ = [
    "ClientEvent",
    "ConnectionState",
    "ErrorReceived",
    "FrameReceived",
    "HistoryReceived",
    "Joined",
    "MessageAcknowledged",
    "MessageFailed",
    "MessagePending",
    "MessageReceived",
    "OutboxEntry",
    "PresenceChanged",
    "ListedRoom",
    "ReadPositionChanged",
    "RoomInvited",
    "RoomJoined",
    "RoomLeft",
    "RoomMember",
    "RoomMemberChanged",
    "RoomMembersListed",
    "RoomSummary",
    "RoomUpdated",
    "RoomsListed",
    "RosterRefreshed",
    "SendPaced",
    "StateChanged",
    "TypingChanged",
    "TypingInRoom",
    "is_verified",
]
