"""The reconnecting client shared by the TUI and the one-liners.

``from workspace_tui.client import ChatClient`` plus every event type::

    client = ChatClient(url, username, token)
    await client.start()
    async for event in client.events():   # one consumer; ends after close() or a fatal refusal
        ...
    await client.send("hi")                # on disk before it returns; goes out when connected

The life of one of our messages: ``MessagePending`` (also replayed by
``start()`` for what an earlier run left queued), then ``MessageAcknowledged``
(it left the outbox; carries the stored message) followed by
``MessageReceived(own=True)`` for the same message, unless the consumer
already got it, or ``MessageFailed`` (kept on disk until ``retry()`` or
``discard()``). A ``rate_limited`` answer is not a failure: the client waits
and resends by itself (an informational ``ErrorReceived`` with
``client_msg_id`` set says so), and ``SendPaced`` says how long each wait for the
rate limit is. ``reconnect_now()`` cuts a wait between attempts short.
"""

from __future__ import annotations

from workspace_tui.lazy_imports import defer_unused

defer_unused()  # before websockets is imported: see lazy_imports

from workspace_tui.client.client import ERR_TOO_LARGE, ChatClient
from workspace_tui.client.events import (
    ClientEvent,
    ConnectionState,
    ErrorReceived,
    FrameReceived,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageFailed,
    MessagePending,
    MessageReceived,
    OutboxEntry,
    PresenceChanged,
    ReadPositionChanged,
    RoomSummary,
    SendPaced,
    StateChanged,
    TypingChanged,
    is_verified,
)

__all__ = [
    "ERR_TOO_LARGE",
    "ChatClient",
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
    "ReadPositionChanged",
    "RoomSummary",
    "SendPaced",
    "StateChanged",
    "TypingChanged",
    "is_verified",
]
