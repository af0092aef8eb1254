"""The sidebar: rooms and direct messages, the current one marked, unread counts and mention badges.

``#general``, ``#dev 3 @1`` (3 unread, 1 of them names us), ``@ bob 1``: rooms first, then DMs by the other names. A muted
room is dim and its count hidden behind ``~``. Names are appended as plain text, never markup.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import Static

from workspace_tui.client.reads import UNREAD_CAP
from workspace_tui.tui.format import safe_name
from workspace_tui.tui.rooms import RoomView

WIDTH = 22


def count_text(n: int) -> str:
    return f"{UNREAD_CAP - 1}+" if n >= UNREAD_CAP else str(n)


class Sidebar(Static):
    """Which rooms we are in; a click opens one (the app also switches by key and by Ctrl+K)."""

    DEFAULT_CSS = f"""
    Sidebar {{
        width: {WIDTH};
        height: 1fr;
        padding: 0 1;
    }}
    """

    class RoomClicked(Message):
        """The user clicked a room in the sidebar."""

        def __init__(self, room: str) -> None:
            super().__init__()
            self.room = room

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.views: list[RoomView] = []
        self.current = "general"
        self._line_rooms: list[str | None] = []

    def show(self, views: list[RoomView], current: str) -> None:
        self.views, self.current = views, current
        self._redraw()

    def line_for(self, view: RoomView) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis")
        here = view.room == self.current
        line.append("▌" if here else " ", Style(color="#33b3e0"))
        label = safe_name(view.label) if view.is_dm else "#" + safe_name(view.room)
        style = Style(bold=here or bool(view.unread and not view.muted), dim=view.muted, reverse=False)
        line.append(("@ " if view.is_dm else "") + label, style)
        if view.muted:
            line.append(" ~", Style(dim=True))
            return line
        if view.unread:
            line.append(f" {count_text(view.unread)}", Style(color="#33b3e0", bold=True))
        if view.mentions:
            line.append(" ")
            line.append(f"@{count_text(view.mentions)}", Style(color="#1e1e1e", bgcolor="#e5a50a", bold=True))
        return line

    def _redraw(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Rooms", Style(bold=True))
        self._line_rooms = [None]
        dms_started = False
        for view in self.views:
            if view.is_dm and not dms_started:
                dms_started = True
                text.append("\n")
                text.append("Direct", Style(bold=True))
                self._line_rooms.append(None)
            text.append("\n")
            text.append_text(self.line_for(view))
            self._line_rooms.append(view.room)
        self.update(text)

    def on_click(self, event: events.Click) -> None:
        y = event.y
        if 0 <= y < len(self._line_rooms) and self._line_rooms[y] is not None:
            self.post_message(self.RoomClicked(self._line_rooms[y]))  # type: ignore[arg-type]
