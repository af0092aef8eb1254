"""The status bar: the server, the connection state, your status, the queue, and why.

``Reconnecting in 4 s — attempt 3 — 2 messages queued``: the countdown is
computed from the delay the client announced, refreshed every half second.
When something needs explaining a second line says it: why the connection was
refused or lost, with the key that reconnects now (``cannot reach
127.0.0.1:4000: connection refused · ^r reconnect now``), or why sends wait
(``Sending slowly: the server takes 2 messages a minute — the next in 28 s``).
On a narrow terminal the server's URL goes first, so your status stays in view.
"""

from __future__ import annotations

import math
import time
from urllib.parse import urlsplit

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from workspace_tui.client.events import ConnectionState
from workspace_tui.client.reads import UNREAD_CAP
from workspace_tui.tui.format import STATUS_COLOURS, STATUS_GLYPHS, safe_name

_COLOURS = {
    ConnectionState.CONNECTED: "#2ec27e",
    ConnectionState.CONNECTING: "#e5a50a",
    ConnectionState.RECONNECTING: "#e5a50a",
    ConnectionState.STOPPED: "#e01b24",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


class StatusBar(Static):
    """One line of connection facts above the key hints, and a second one while something needs explaining."""

    DEFAULT_CSS = """
    StatusBar {
        height: auto;
        max-height: 4;  /* the state; and a reason that may wrap once, with its key */
        padding: 0 1;
    }
    """

    def __init__(self, server: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.server = server
        self.state = ConnectionState.CONNECTING
        self.attempt = 0
        self.reason: str | None = None  # the client's full reason
        self.detail: str | None = None  # the same in a few words (no URL, no advice)
        self.status_code: int | None = None  # HTTP status of a refused handshake
        self.queued = 0
        self.status = "online"
        self.auto_away = False
        self.unseen = 0
        self.unseen_mentions = 0
        self.reconnect_key = "^r"  # shown next to a refusal; the app sets it from the keymap
        self._retry_at: float | None = None
        self._paced_until: float | None = None
        self.per_minute = 0
        self.paced_refused = False

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    # -- what the app tells us ---------------------------------------------------------------

    def set_connection(
        self,
        state: ConnectionState,
        *,
        attempt: int = 0,
        delay: float | None = None,
        reason: str | None = None,
        detail: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.state, self.attempt, self.reason = state, attempt, reason
        self.detail, self.status_code = detail, status_code
        self._retry_at = time.monotonic() + delay if delay is not None else None
        if state is not ConnectionState.CONNECTED:
            self._paced_until = None  # the reconnect is the news now
        self._redraw()

    def set_queued(self, queued: int) -> None:
        if queued != self.queued:
            self.queued = queued
            if not queued:
                self._paced_until = None
            self._redraw()

    def set_paced(self, delay: float, per_minute: int, refused: bool = False) -> None:
        """The next send waits *delay* seconds for the rate limit (``refused``: the server asked)."""
        self._paced_until = time.monotonic() + delay
        self.per_minute, self.paced_refused = per_minute, refused
        self._redraw()

    def set_status(self, status: str, auto_away: bool = False) -> None:
        self.status, self.auto_away = status, auto_away
        self._redraw()

    def set_unseen(self, count: int, mentions: int = 0) -> None:
        self.unseen, self.unseen_mentions = count, mentions
        self._redraw()

    # -- text ------------------------------------------------------------------------------

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
            text = "Disconnected"
        if self.queued:
            text += f" — {plural(self.queued, 'message')} queued"
        return text

    def why(self) -> str | None:
        """Why we are not connected, in a few words; ``None`` when connected or nothing is known."""
        if self.state in (ConnectionState.CONNECTED, ConnectionState.CONNECTING) or not self.reason:
            return None
        if self.state is ConnectionState.STOPPED and self.reason == "closed":
            return None
        detail = safe_name(self.detail or self.reason)
        if self.reason.startswith(("cannot reach ", "cannot connect to ")) and self.detail:
            where = urlsplit(self.server).netloc or self.server
            return f"cannot reach {safe_name(where)}: {detail}"
        return detail

    def notice(self) -> str | None:
        """The second line, as plain text (see :meth:`_notice_text`)."""
        text = self._notice_text(0)
        return text.plain if text is not None else None

    def paced_text(self) -> str | None:
        """Why sends wait and when the next goes, while they do."""
        if self._paced_until is None or not self.queued or self.state is not ConnectionState.CONNECTED:
            return None
        left = self._paced_until - time.monotonic()
        if left <= 0.5:
            return None
        when = f"the next in {math.ceil(left)} s"
        limit = f"{plural(self.per_minute, 'message')} a minute" if self.per_minute else "only so many messages a minute"
        if self.paced_refused:
            return f"Sending slowly: the server refused one (it takes {limit}); it goes again by itself, {when}"
        return f"Sending slowly: the server takes {limit}; {when}"

    def _notice_text(self, width: int) -> Text | None:
        why = self.why()
        if why is not None:
            hint = f"  ·  {self.reconnect_key} reconnect now"
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append("⚠ ", Style(color=_COLOURS[self.state]))
            if not width or len(why) + len(hint) + 2 <= width:
                text.append(why)
                text.append(hint, Style(bold=True))
                return text
            # Too long for one line: the reason wraps (two lines at most) rather than being cut
            # in the middle of what it says, and the key goes where it fits.
            import textwrap

            lines = textwrap.wrap(why, max(width - 2, 10)) or [why]
            if len(lines) > 2:
                lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), max(width - 2, 10), placeholder="…")]
            text.append("\n  ".join(lines))
            if len(lines[-1]) + len(hint) + 2 <= width:
                text.append(hint, Style(bold=True))
            else:
                text.append("\n  " + hint.lstrip(" ·"), Style(bold=True))
            return text
        paced = self.paced_text()
        if paced is not None:
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append("⏳ ", Style(color="#e5a50a"))
            text.append(paced)
            return text
        return None

    def _tick(self) -> None:
        if self.state is ConnectionState.RECONNECTING or self._paced_until is not None:
            if self._paced_until is not None and self._paced_until < time.monotonic() - 1:
                self._paced_until = None
            self._redraw()

    def _redraw(self) -> None:
        width = self.content_region.width if self.is_mounted else 0
        connection = self.connection_text()
        server = safe_name(self.server)
        you = STATUS_GLYPHS.get(self.status, "?") + " " + self.status + (" (auto)" if self.auto_away else "")
        count = f"{UNREAD_CAP}+" if self.unseen >= UNREAD_CAP else str(self.unseen)  # the server counts no further
        named = f", {plural(self.unseen_mentions, 'mention')}" if self.unseen_mentions else ""
        new = "new message" if self.unseen == 1 else "new messages"
        unseen = f"  ·  ↓ {count} {new}{named} (Ctrl+End)" if self.unseen else ""
        # What must stay in view on a narrow terminal: the state, your status, new messages.
        show_server = not width or len(f"● {connection}  ·  {server}  ·  you: {you}{unseen}") <= width
        if unseen and width and len(f"● {connection}  ·  you: {you}{unseen}") > width:
            # The short form: the key is in the help.
            unseen = f"  ·  ↓ {count} new" + (f", {self.unseen_mentions} @" if self.unseen_mentions else "")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("● ", Style(color=_COLOURS[self.state]))
        text.append(connection, Style(bold=self.state is not ConnectionState.CONNECTED))
        if show_server:
            text.append("  ·  ", Style(dim=True))
            text.append(server, Style(dim=True))
        text.append("  ·  you: ", Style(dim=True))
        text.append(STATUS_GLYPHS.get(self.status, "?") + " ", Style(color=STATUS_COLOURS.get(self.status)))
        text.append(self.status + (" (auto)" if self.auto_away else ""))
        if unseen:
            text.append(unseen, Style(bold=True))
        notice = self._notice_text(width)
        if notice is not None:
            text.append("\n")
            text.append_text(notice)
        self.update(text)
