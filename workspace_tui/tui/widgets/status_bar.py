"""The status bar: the server, the connection state, your status, the queue.

``Reconnecting in 4 s — attempt 3 — 2 messages queued``: the countdown is
computed from the delay the client announced, refreshed every half second.
"""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from workspace_tui.client.events import ConnectionState
from workspace_tui.tui.format import STATUS_COLOURS, STATUS_GLYPHS, safe_name


class StatusBar(Static):
    """One line of connection facts, above the key hints."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
    }
    """

    def __init__(self, server: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.server = server
        self.state = ConnectionState.CONNECTING
        self.attempt = 0
        self.reason: str | None = None
        self.queued = 0
        self.status = "online"
        self.auto_away = False
        self.unseen = 0
        self._retry_at: float | None = None

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)
        self._redraw()

    def set_connection(
        self, state: ConnectionState, *, attempt: int = 0, delay: float | None = None, reason: str | None = None
    ) -> None:
        self.state, self.attempt, self.reason = state, attempt, reason
        self._retry_at = time.monotonic() + delay if delay is not None else None
        self._redraw()

    def set_queued(self, queued: int) -> None:
        if queued != self.queued:
            self.queued = queued
            self._redraw()

    def set_status(self, status: str, auto_away: bool = False) -> None:
        self.status, self.auto_away = status, auto_away
        self._redraw()

    def set_unseen(self, count: int) -> None:
        self.unseen = count
        self._redraw()

    def connection_text(self) -> str:
        """The connection part, as plain text."""
        state = self.state
        if state is ConnectionState.CONNECTED:
            text = "Connected"
        elif state is ConnectionState.CONNECTING:
            text = "Connecting…"
        elif state is ConnectionState.RECONNECTING:
            if self._retry_at is not None and (left := self._retry_at - time.monotonic()) > 0.5:
                text = f"Reconnecting in {round(left)} s"
            else:
                text = "Reconnecting…"
            if self.attempt:
                text += f" — attempt {self.attempt}"
        else:
            text = "Disconnected" + (f": {self.reason}" if self.reason else "")
        if self.queued:
            text += f" — {self.queued} message{'s' if self.queued != 1 else ''} queued"
        return text

    def _tick(self) -> None:
        if self.state is ConnectionState.RECONNECTING:
            self._redraw()

    def _redraw(self) -> None:
        colour = {
            ConnectionState.CONNECTED: "#2ec27e",
            ConnectionState.CONNECTING: "#e5a50a",
            ConnectionState.RECONNECTING: "#e5a50a",
            ConnectionState.STOPPED: "#e01b24",
        }[self.state]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("● ", Style(color=colour))
        text.append(self.connection_text(), Style(bold=self.state is not ConnectionState.CONNECTED))
        text.append("  ·  ", Style(dim=True))
        text.append(safe_name(self.server), Style(dim=True))
        text.append("  ·  you: ", Style(dim=True))
        text.append(STATUS_GLYPHS.get(self.status, "?") + " ", Style(color=STATUS_COLOURS.get(self.status)))
        text.append(self.status + (" (auto)" if self.auto_away else ""))
        if self.unseen:
            text.append(f"  ·  ↓ {self.unseen} new message{'s' if self.unseen != 1 else ''} (Ctrl+End)", Style(bold=True))
        self.update(text)
