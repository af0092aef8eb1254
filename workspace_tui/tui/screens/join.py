"""The join screen: asks for a username when none was given."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from workspace_tui.protocol import validate_username
from workspace_tui.tui.format import safe_name


class JoinScreen(Screen[str]):
    """A small form: your name, then Enter. Dismisses with the username."""

    BINDINGS = [("escape", "app.quit", "Quit")]

    def __init__(self, server: str, default: str | None = None) -> None:
        super().__init__()
        self.server = server
        self.default = default or ""

    def compose(self) -> ComposeResult:
        with Vertical(id="join-box"):
            yield Static(Text("Join the chat", style="bold"), id="join-title")
            yield Label(Text(f"Server: {safe_name(self.server)}"), id="join-server")
            yield Input(value=self.default, placeholder="your name", id="join-username", max_length=32)
            yield Static(Text("1-32 letters, digits, _ . -   ·   Enter to join, Esc to quit", style="dim"), id="join-help")
            yield Static("", id="join-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def join(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        reason = validate_username(name)
        if reason:
            self.query_one("#join-error", Static).update(Text(reason, style="bold red"))
            return
        self.dismiss(name)
