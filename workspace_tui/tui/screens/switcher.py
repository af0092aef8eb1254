"""The quick switcher (Ctrl+K): type a few letters of a room or a name, Enter opens it."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from workspace_tui.tui.format import safe_name
from workspace_tui.tui.rooms import RoomView, fuzzy_rank


class SwitcherScreen(ModalScreen[str | None]):
    """A fuzzy list of rooms and DMs; dismisses with the chosen room id (``None``: cancelled)."""

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("down", "move(1)", show=False, priority=True),
        Binding("up", "move(-1)", show=False, priority=True),
    ]

    def __init__(self, views: list[RoomView], current: str) -> None:
        super().__init__()
        self.views = views
        self.current = current
        self.shown: list[RoomView] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="switcher-box"):
            yield Input(placeholder="Go to a room or a person…", id="switcher-input")
            yield OptionList(id="switcher-list")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one(Input).focus()

    def _fill(self, query: str) -> None:
        # With nothing typed, the room you are in goes last: Ctrl+K Enter goes somewhere else.
        views = fuzzy_rank(query, self.views)
        if not query:
            views = [v for v in views if v.room != self.current] + [v for v in views if v.room == self.current]
        self.shown = views
        options = self.query_one(OptionList)
        options.clear_options()
        for view in views:
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(("@ " if view.is_dm else "#") + (safe_name(view.label) if view.is_dm else safe_name(view.room)))
            if view.mentions:
                label.append(f"  @{view.mentions}", "bold #e5a50a")
            elif view.unread:
                label.append(f"  {view.unread}", "bold #33b3e0")
            if view.topic:
                label.append(f"  {safe_name(view.topic)}", "dim")
            options.add_option(Option(label, id=view.room))
        if views:
            options.highlighted = 0

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        options = self.query_one(OptionList)
        index = options.highlighted
        self.dismiss(self.shown[index].room if index is not None and index < len(self.shown) else None)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.shown:
            options.highlighted = ((options.highlighted or 0) + step) % len(self.shown)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
