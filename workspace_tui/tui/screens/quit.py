"""Asked on Ctrl+Q while messages are still queued: they are kept, and go out the next time you connect."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class QuitScreen(ModalScreen[bool]):
    """Quit anyway (Enter, Y, or Ctrl+Q again) or stay (Esc, N). Dismisses with ``True`` to quit."""

    DEFAULT_CSS = """
    QuitScreen {
        align: center middle;
    }
    #quit-box {
        width: 64;
        max-width: 95%;
        height: auto;
        border: round $warning;
        padding: 0 2;
        background: $surface;
    }
    #quit-keys {
        margin-top: 1;
    }
    """

    BINDINGS = [
        Binding("enter,y", "quit_anyway", "Quit", show=True),
        Binding("escape,n", "stay", "Stay", show=True),
    ]

    def __init__(self, queued: int, quit_key: str = "^q") -> None:
        super().__init__()
        self.queued = queued
        self.quit_key = quit_key

    def compose(self) -> ComposeResult:
        n = self.queued
        are = "message is" if n == 1 else "messages are"
        they = "it is" if n == 1 else "they are"
        go = "goes" if n == 1 else "go"
        with Vertical(id="quit-box"):
            yield Static(Text("Quit?", style="bold"), id="quit-title")
            yield Static(
                Text(f"{n} {are} still queued; {they} kept and {go} out the next time you connect. Quit anyway?"),
                id="quit-text",
            )
            yield Static(
                Text(f"Enter, Y or {self.quit_key} again: quit  ·  Esc or N: stay", style="dim"), id="quit-keys"
            )

    def action_quit_anyway(self) -> None:
        self.dismiss(True)

    def action_stay(self) -> None:
        self.dismiss(False)
