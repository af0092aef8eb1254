"""The typing line: "alice is typing…", "alice and bob are typing…", "4 people are typing…".

Entries expire on their own after ``EXPIRE_SECONDS`` in case a ``false``
indicator is lost with a connection.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from workspace_tui.tui.format import typing_text

EXPIRE_SECONDS = 6.0


class TypingLine(Static):
    """One line naming who is typing right now."""

    DEFAULT_CSS = """
    TypingLine {
        height: 1;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._typing: dict[str, tuple[str, float]] = {}  # user_id -> (username, since)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._expire)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._typing.values()]

    def set_typing(self, user_id: str, username: str, is_typing: bool) -> None:
        if is_typing:
            self._typing[user_id] = (username, time.monotonic())
        elif self._typing.pop(user_id, None) is None:
            return
        self._redraw()

    def clear_user(self, user_id: str) -> None:
        if self._typing.pop(user_id, None) is not None:
            self._redraw()

    def clear(self) -> None:
        self._typing.clear()
        self._redraw()

    def _expire(self) -> None:
        now = time.monotonic()
        stale = [uid for uid, (_, since) in self._typing.items() if now - since > EXPIRE_SECONDS]
        for uid in stale:
            del self._typing[uid]
        if stale:
            self._redraw()

    def _redraw(self) -> None:
        self.update(Text(typing_text(self.names), style="italic", no_wrap=True, overflow="ellipsis"))
