"""The reconnecting client shared by the TUI and the one-liners.

``from workspace_tui.client import ChatClient`` plus every event type.
"""

from __future__ import annotations

from workspace_tui.client.client import ERR_TOO_LARGE, ChatClient
from workspace_tui.client.events import (
    ClientEvent,
    ConnectionState,
    ErrorReceived,
    HistoryReceived,
    Joined,
    MessageAcknowledged,
    MessageFailed,
    MessagePending,
    MessageReceived,
    OutboxEntry,
    PresenceChanged,
    StateChanged,
    TypingChanged,
)

__all__ = [
    "ERR_TOO_LARGE",
    "ChatClient",
    "ClientEvent",
    "ConnectionState",
    "ErrorReceived",
    "HistoryReceived",
    "Joined",
    "MessageAcknowledged",
    "MessageFailed",
    "MessagePending",
    "MessageReceived",
    "OutboxEntry",
    "PresenceChanged",
    "StateChanged",
    "TypingChanged",
]
