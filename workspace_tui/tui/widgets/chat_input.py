"""The message input: Enter sends, Ctrl+J or Alt+Enter starts a new line.

Shift+Enter is not used: most terminals send the same byte for it as for
Enter. Alt+Enter arrives as ESC CR from tmux and many terminals; the app's
driver (:mod:`workspace_tui.tui.driver`) reads that as Alt+Enter too. Up on the
first line and Down on the last line walk through what you sent before; pasted
text (bracketed paste) is inserted as is, newlines included, and what is sent
is :func:`trimmed`. Tab completes names, ``#rooms`` and ``/commands`` (again: the
next candidate) and otherwise keeps the focus here; ``?`` is just a character.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import events
from textual.widgets import TextArea

from workspace_tui.tui.messages import SendText

HISTORY_MAX = 200


def trimmed(text: str) -> str:
    """What is sent of the input: without blank lines at the start or whitespace at the end.

    A paste often ends with a newline; indentation of the first line is kept (code).
    """
    lines = text.split("\n")
    while lines and not lines[0].strip():
        del lines[0]
    return "\n".join(lines).rstrip()


class ChatInput(TextArea):
    """A multi-line input for chat messages."""

    DEFAULT_CSS = """
    ChatInput {
        height: auto;
        min-height: 3;
        max-height: 10;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.sent: list[str] = []
        self._recall: int | None = None  # index into self.sent while browsing
        self._draft = ""
        # (text, cursor offset) -> Completion or None; the app gives it the names and rooms it knows.
        self.completer: Callable[[str, int], Any] | None = None
        self._completion: Any = None  # the last Tab's completion, while Tab is pressed again
        self._completion_start = 0

    def _offset(self) -> int:
        row, col = self.cursor_location
        lines = self.text.split("\n")
        return sum(len(line) + 1 for line in lines[:row]) + col

    def _location(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset].split("\n")
        return (len(before) - 1, len(before[-1]))

    def complete(self) -> bool:
        """Tab: complete the word before the cursor; Tab again: the next candidate."""
        if self.completer is None:
            return False
        from workspace_tui.tui.completion import cycle

        text, cursor = self.text, self._offset()
        last = self._completion
        if last is not None and last.text == text and last.cursor == cursor and len(last.candidates) > 1:
            done = cycle(text, self._completion_start, cursor, last)
        else:
            done = self.completer(text, cursor)
            if done is None:
                self._completion = None
                return False
            self._completion_start = done.cursor - len(done.candidates[done.index])
        self._completion = done
        self.load_text(done.text)
        self.move_cursor(self._location(done.cursor))
        return True

    def submit(self) -> None:
        text = trimmed(self.text)
        if not text:
            self.clear()  # nothing to send: blank input must not linger in front of the next message
            return
        if not self.sent or self.sent[-1] != text:
            self.sent.append(text)
            del self.sent[:-HISTORY_MAX]
        self._recall = None
        self._draft = ""
        self.clear()
        self.post_message(SendText(text))

    def insert_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)

    def recall(self, step: int) -> bool:
        """Move through sent history (-1 older, +1 newer); False when there is nowhere to go."""
        if not self.sent:
            return False
        if self._recall is None:
            if step > 0:
                return False
            self._draft = self.text
            index = len(self.sent) - 1
        else:
            index = self._recall + step
        if index < 0:
            return True  # stay on the oldest
        if index >= len(self.sent):
            self._recall = None
            self._set(self._draft)
            return True
        self._recall = index
        self._set(self.sent[index])
        return True

    def _set(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if key in ("ctrl+j", "alt+enter", "ctrl+enter", "shift+enter"):
            event.stop()
            event.prevent_default()
            self.insert_newline()
            return
        if key == "up" and self.cursor_location[0] == 0 and (self._recall is not None or not self.text):
            if self.recall(-1):
                event.stop()
                event.prevent_default()
                return
        if key == "down" and self._recall is not None and self.cursor_location[0] == self.document.line_count - 1:
            if self.recall(+1):
                event.stop()
                event.prevent_default()
                return
        if key == "tab" and self.complete():
            event.stop()
            event.prevent_default()
            return
        if key in ("tab", "shift+tab"):
            # Focus stays here: what is typed next must not go to another widget (name completion may use Tab later).
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)
