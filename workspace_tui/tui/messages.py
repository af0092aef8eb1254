"""Every app-level Textual Message of the chat app, in one place.

The network worker (``ChatApp._pump_events``) turns each client event into one
of the past-tense messages below; widgets post the imperative ones when the
user asks for something. Widgets never touch the client or a socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from workspace_tui.client.events import ConnectionState, OutboxEntry, RoomSummary
from workspace_tui.protocol import GENERAL, ChatMessage, Limits, RosterEntry

# -- from the network (past tense) ---------------------------------------------


@dataclass
class ConnectionChanged(Message):
    """The client's connection state moved (connecting, connected, reconnecting, stopped)."""

    state: ConnectionState
    attempt: int = 0
    delay: float | None = None
    reason: str | None = None
    queued: int = 0
    detail: str | None = None  # the reason in a few words, for the status bar
    status_code: int | None = None  # HTTP status of a refused handshake (429...)
    refusal: str | None = None  # the server's Workspace-Refusal code (invite_required...), when it said one


@dataclass
class ChatJoined(Message):
    """The server accepted us: who we are, who is here, the limits."""

    user_id: str
    username: str
    users: tuple[RosterEntry, ...]
    limits: Limits
    resumed: bool = False
    status: str | None = None  # our status from now on (ours, or set in another window of ours)
    verified: bool = False  # we proved our name with this device's key
    auth: str | None = None  # the server's mode (claim, invite, open); None: a server that does not say
    rooms: tuple[RoomSummary, ...] = ()  # where reading stopped per room, unread and mentions (server's)


@dataclass
class RosterReloaded(Message):
    """General's roster, read afresh after presence too big to batch (replaces the one from ChatJoined)."""

    users: tuple[RosterEntry, ...]


@dataclass
class HistoryLoaded(Message):
    """A page of stored messages arrived, oldest first (``reason``: join, resume or page)."""

    messages: tuple[ChatMessage, ...]
    reason: str
    has_more: bool
    gap: bool = False
    room: str | None = GENERAL  # None: a resume across rooms (see ``rooms``)
    rooms: tuple[str, ...] = ()  # each message's room (empty: all in ``room``)


@dataclass
class ChatMessageReceived(Message):
    """A new message from anyone, ours included."""

    message: ChatMessage
    own: bool = False
    room: str = GENERAL


@dataclass
class ChatMessagesReceived(Message):
    """Several new messages in a row, batched by the network worker during a burst.

    The worker keeps appending to ``items`` until the app handles the message,
    so a burst of 1,000 costs one trip through the queue, not 1,000.
    """

    items: list[tuple[ChatMessage, bool] | tuple[ChatMessage, bool, str]]  # (message, own[, room])


@dataclass
class OwnMessagePending(Message):
    """One of our messages is in the outbox, not yet acknowledged."""

    entry: OutboxEntry


@dataclass
class OwnMessageAcknowledged(Message):
    """The server stored one of our messages."""

    client_msg_id: str
    message: ChatMessage


@dataclass
class OwnMessageFailed(Message):
    """The server refused one of our messages for good (retry or discard it)."""

    entry: OutboxEntry
    code: str
    reason: str


@dataclass
class PresenceUpdated(Message):
    """Someone's status or connection count changed."""

    user_id: str
    username: str
    status: str
    connections: int | None = None
    verified: bool = False  # the user proved the name (missing on the wire: not proved)


@dataclass
class TypingUpdated(Message):
    """Someone started or stopped typing."""

    user_id: str
    username: str
    is_typing: bool

    def can_replace(self, message: Message) -> bool:
        # A burst of indicators from one user only needs its latest value.
        return isinstance(message, TypingUpdated) and message.user_id == self.user_id


@dataclass
class ReadElsewhere(Message):
    """Another window or device of ours read ``room`` up to ``message_id``."""

    room: str
    message_id: str


@dataclass
class SendingPaced(Message):
    """Our next message waits ``delay`` seconds for the server's rate limit (``refused``: the server asked)."""

    delay: float
    per_minute: int
    queued: int
    refused: bool = False


@dataclass
class ServerErrorReceived(Message):
    """An ``error`` frame not tied to a failure of one of our messages (``client_msg_id``: one the client resends)."""

    code: str
    message: str
    client_msg_id: str | None = None
    retry_after_ms: int | None = None


@dataclass
class UnverifiedRecipients(Message):
    """The server's echo of our direct message: these recipients have not proved their name."""

    names: list[str]


# -- from widgets (imperative) -----------------------------------------------


@dataclass
class SendText(Message):
    """The user pressed Enter in the input: send this text."""

    text: str


@dataclass
class LoadOlder(Message):
    """The message list reached its top: fetch the page before ``before``."""

    before: str | None
    room: str = GENERAL


@dataclass
class UnseenChanged(Message):
    """The number of messages not yet seen (arrived while scrolled up, or unread on join) changed."""

    count: int
    mentions: int = 0  # of them, those that name us
    room: str = GENERAL  # the list that counts them


@dataclass
class MarkRead(Message):
    """The newest message is in view at the bottom: it is read, if the window has the focus."""

    message_id: str
    room: str = GENERAL


# -- rooms -------------------------------------------------------------------


@dataclass
class RoomEventReceived(Message):
    """A room event from the client (joined, left, topic, member, invited, listed, members)."""

    event: Any


@dataclass
class TypingInRoomUpdated(Message):
    """Someone started or stopped typing in a room other than general."""

    user_id: str
    username: str
    is_typing: bool
    room: str
